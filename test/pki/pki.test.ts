import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { certPaths, planLocalMembers } from "../../components/topology";
import { createCa, issueCert, writeClusterPki, type ClusterPki } from "../../node-runtime/pki";
import { cleanCtlEnv, runCli } from "../helpers/run-cli";
import { ETCDCTL_BIN, startReferenceEtcd, type ReferenceEtcd } from "../helpers/etcd-reference";

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("pki", () => {
  let dir: string;
  let pki: ClusterPki;
  const members = planLocalMembers(3);

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-pki-"));
    pki = await writeClusterPki(dir, members, ["admin", "worker-1"]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes the files certPaths() names for every member, keys readable by the owner only", () => {
    for (const m of members) {
      const p = certPaths(path.join(dir, m.name));
      assert.deepEqual(pki.members[m.name], p);
      for (const key of [p.serverKey, p.peerKey]) assert.equal(statSync(key).mode & 0o777, 0o600);
      assert.equal(readFileSync(p.ca, "utf8"), pki.ca.certPem);
      assert.equal(readFileSync(p.peerCa, "utf8"), pki.peerCa.certPem);
      assert.match(readFileSync(p.serverKey, "utf8"), /^-----BEGIN PRIVATE KEY-----/);
    }
    assert.equal(statSync(pki.caKeyPath).mode & 0o777, 0o600);
    assert.equal(statSync(pki.peerCaKeyPath).mode & 0o777, 0o600);
    assert.notEqual(pki.ca.certPem, pki.peerCa.certPem);
    assert.equal(statSync(path.join(dir, "clients", "admin.key")).mode & 0o777, 0o600);
  });

  it("issues server and client certificates from the client CA and peer certificates from the peer CA, never crossed", () => {
    const clientSigned = members.map((m) => pki.members[m.name]!.serverCert);
    clientSigned.push(pki.clients["admin"]!.cert, pki.clients["worker-1"]!.cert);
    const peers = members.map((m) => pki.members[m.name]!.peerCert);
    const ok = (out: string) => out.trim().split("\n").filter((l) => l.endsWith(": OK")).length;
    assert.equal(ok(openssl(["verify", "-CAfile", pki.caCertPath, ...clientSigned])), clientSigned.length);
    assert.equal(ok(openssl(["verify", "-CAfile", pki.peerCaCertPath, ...peers])), peers.length);
    for (const f of peers) assert.throws(() => openssl(["verify", "-CAfile", pki.caCertPath, f]), f);
    for (const f of clientSigned) assert.throws(() => openssl(["verify", "-CAfile", pki.peerCaCertPath, f]), f);
  });

  it("does not verify against a different CA", async () => {
    const other = await createCa("other CA", 1);
    const otherCa = path.join(dir, "other-ca.crt");
    writeFileSync(otherCa, other.certPem);
    assert.throws(() => openssl(["verify", "-CAfile", otherCa, pki.members["raftkv-1"]!.serverCert]));
  });

  it("puts SANs, key usages and EKUs of the profiles into the certificates", () => {
    const text = (f: string): string => openssl(["x509", "-in", f, "-noout", "-text"]);
    const server = text(pki.members["raftkv-2"]!.serverCert);
    assert.match(server, /Subject: O ?= ?raftkv, OU ?= ?raftkv server, CN ?= ?raftkv-2/);
    assert.match(server, /Issuer: O ?= ?raftkv, CN ?= ?raftkv client CA/);
    assert.doesNotMatch(server, /URI:/);
    assert.match(server, /DNS:localhost, IP Address:127\.0\.0\.1/);
    assert.match(server, /Extended Key Usage: *\n *TLS Web Server Authentication\n/);
    assert.match(server, /Key Usage: critical\n *Digital Signature, Key Encipherment/);
    assert.match(server, /CA:FALSE/);
    assert.match(server, /ASN1 OID: prime256v1/);

    const peer = text(pki.members["raftkv-2"]!.peerCert);
    assert.match(peer, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(peer, /Subject: O ?= ?raftkv, OU ?= ?raftkv peer, CN ?= ?raftkv-2/);
    assert.match(peer, /IP Address:127\.0\.0\.1, URI:urn:raftkv:member:raftkv-2/);
    assert.match(peer, /Issuer: O ?= ?raftkv, CN ?= ?raftkv peer CA/);

    const client = text(pki.clients["admin"]!.cert);
    assert.match(client, /Subject: O ?= ?raftkv, OU ?= ?raftkv client, CN ?= ?admin/);
    assert.match(client, /Extended Key Usage: *\n *TLS Web Client Authentication\n/);
    assert.doesNotMatch(client, /Subject Alternative Name/);

    const ca = text(pki.caCertPath);
    assert.match(ca, /CA:TRUE/);
    assert.match(ca, /Certificate Sign, CRL Sign/);
  });

  it("rejects a non-positive validity", async () => {
    await assert.rejects(createCa("x", 0), RangeError);
    await assert.rejects(issueCert(pki.ca, { id: "a", kind: "client", commonName: "a", organizationalUnit: "x", dnsNames: [], ipAddresses: [], uris: [], usages: ["client_auth"] }, -1), RangeError);
  });

  describe("TLS handshake on loopback with client certificates required", () => {
    let server: tls.Server;
    let port: number;
    before(async () => {
      const p = pki.members["raftkv-1"]!;
      server = tls.createServer(
        {
          cert: readFileSync(p.serverCert),
          key: readFileSync(p.serverKey),
          ca: readFileSync(p.ca),
          requestCert: true,
          rejectUnauthorized: true,
        },
        (sock) => sock.end(`hello ${(sock.getPeerCertificate().subject as { CN?: string }).CN ?? "?"}\n`),
      );
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as { port: number }).port;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    function connect(opts: tls.ConnectionOptions): Promise<string> {
      return new Promise((resolve, reject) => {
        const sock = tls.connect({ host: "127.0.0.1", port, ...opts });
        let data = "";
        sock.setEncoding("utf8");
        sock.on("data", (d: string) => (data += d));
        sock.on("end", () => resolve(data));
        sock.on("error", reject);
      });
    }

    it("accepts a client certificate of the same CA and verifies the server's IP SAN", async () => {
      const c = pki.clients["admin"]!;
      const got = await connect({ ca: readFileSync(c.ca), cert: readFileSync(c.cert), key: readFileSync(c.key) });
      assert.equal(got, "hello admin\n");
    });

    it("refuses a member's peer certificate on a port that trusts the client CA", async () => {
      const p = pki.members["raftkv-3"]!;
      await assert.rejects(
        connect({ ca: readFileSync(p.ca), cert: readFileSync(p.peerCert), key: readFileSync(p.peerKey) }).then((d) => {
          if (d === "") throw new Error("closed without data");
          return d;
        }),
      );
    });

    it("refuses a client without a certificate", async () => {
      await assert.rejects(connect({ ca: readFileSync(pki.caCertPath) }).then((d) => {
        if (d === "") throw new Error("closed without data");
        return d;
      }));
    });

    it("refuses a server name its certificate does not carry", async () => {
      const c = pki.clients["admin"]!;
      await assert.rejects(
        connect({ ca: readFileSync(c.ca), cert: readFileSync(c.cert), key: readFileSync(c.key), servername: "example.com" }),
        /altnames|Hostname/,
      );
    });
  });

  describe("with Debian's etcd 3.4 (mutual TLS)", () => {
    let etcd: ReferenceEtcd;
    before(async () => {
      etcd = await startReferenceEtcd();
    });
    after(async () => {
      await etcd?.stop();
    });

    it("etcdctl put/get work with our client certificate", async () => {
      const put = await runCli(ETCDCTL_BIN, [...etcd.ctlFlags, "put", "pki-key", "pki-value"], cleanCtlEnv());
      assert.equal(put.stderr, "");
      assert.equal(put.stdout, "OK\n");
      const get = await runCli(ETCDCTL_BIN, [...etcd.ctlFlags, "get", "pki-key"], cleanCtlEnv());
      assert.equal(get.stdout, "pki-key\npki-value\n");
    });

    it("etcd refuses a client without a certificate", async () => {
      const res = await runCli(
        ETCDCTL_BIN,
        [`--endpoints=${etcd.endpoint}`, `--cacert=${etcd.client.ca}`, "--dial-timeout=1s", "--command-timeout=1s", "get", "x"],
        cleanCtlEnv(),
      );
      assert.notEqual(res.code, 0);
    });
  });
});
