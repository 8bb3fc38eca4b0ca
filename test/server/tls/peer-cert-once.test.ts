// The client port parses a client's certificate once per connection: grpc-js asks for it on each
// call once auth is enabled, and each getPeerCertificate() builds a new object (~70 µs). That the
// port refuses TLS renegotiation (so the certificate cannot change) is checked against the real
// bundle in test/abuse/connections.test.ts.
import { strict as assert } from "node:assert";
import type { AddressInfo } from "node:net";
import * as tls from "node:tls";
import { parsePeerCertificateOnce } from "../../../node-runtime/server/api/listener";
import { makeCa, makeLeaf } from "./certs";

describe("client certificate parsed once per connection", () => {
  it("answers every getPeerCertificate() with the first parse, plain and detailed", async () => {
    const ca = await makeCa("cert-once-ca");
    const server = await makeLeaf(ca, "server");
    const client = await makeLeaf(ca, "tenant-a");
    const accepted: tls.TLSSocket[] = [];
    const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      parsePeerCertificateOnce(s);
      s.on("error", () => undefined);
      accepted.push(s);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const c = tls.connect({ host: "127.0.0.1", port, ca: ca.certPem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined });
    c.on("error", () => undefined);
    try {
      await new Promise<void>((r) => c.once("secureConnect", () => r()));
      while (accepted.length === 0) await new Promise((r) => setTimeout(r, 5));
      const s = accepted[0]!;
      const first = s.getPeerCertificate();
      assert.equal(first.subject.CN, "tenant-a");
      assert.equal(s.getPeerCertificate(), first, "the same parse, not a new object");
      assert.equal(s.getPeerCertificate(false), first);
      const detailed = s.getPeerCertificate(true);
      assert.equal(detailed.subject.CN, "tenant-a");
      assert.ok(detailed.issuerCertificate !== undefined, "the detailed form keeps its chain");
      assert.equal(s.getPeerCertificate(true), detailed);
    } finally {
      c.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
