/**
 * Bad input never crashes a member: each request below gets etcd's error (exact status message
 * where etcd defines one) and afterwards every member is still healthy and serving.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { clientCertProfile } from "../../../components/topology";
import { createCa, issueCert } from "../../../node-runtime/pki";
import { TestCluster } from "../harness/cluster";
import { RawMember, RawPool, clientAddress, rejection } from "./clients";

describe("cluster: bad input", function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  const names = () => c!.members.map((m) => m.name);
  let round = 0;

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    pool = new RawPool(c);
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  /** Every member still answers a write and a linearizable read, and reports itself healthy. */
  async function allStillServe(): Promise<void> {
    round++;
    for (const n of names()) {
      assert.ok(c!.running(n), `${n} exited:\n${c!.log(n).slice(-2000)}`);
      await pool!.of(n).put(`alive/${n}`, String(round));
      for (const r of names()) assert.equal(await pool!.of(r).value(`alive/${n}`), String(round));
      assert.equal((await c!.status(n))?.healthy, true, `${n} unhealthy`);
    }
  }

  it("refuses a put over --max-request-bytes with 'request is too large'", async () => {
    for (const n of names()) {
      assert.equal(await rejection(pool!.of(n).put("big", Buffer.alloc(1.6 * 1024 * 1024, 7))), "etcdserver: request is too large");
    }
    // Beyond the gRPC frame limit the transport itself refuses; the member must not care.
    const msg = await rejection(pool!.of(names()[0]!).put("bigger", Buffer.alloc(3 * 1024 * 1024, 7)));
    assert.ok(msg.length > 0);
    assert.equal(await pool!.of(names()[1]!).value("big"), undefined);
    await allStillServe();
  });

  it("refuses a txn of more than 128 operations", async () => {
    const op = (i: number) => ({ request_put: { key: Buffer.from(`txn/${i}`), value: Buffer.from("v") } });
    for (const n of names()) {
      const msg = await rejection(pool!.of(n).call("KV", "Txn", { compare: [], success: Array.from({ length: 129 }, (_, i) => op(i)), failure: [] }));
      assert.equal(msg, "etcdserver: too many operations in txn request");
    }
    // 128 is the limit, not beyond it.
    await pool!.of(names()[0]!).call("KV", "Txn", { compare: [], success: Array.from({ length: 128 }, (_, i) => op(i)), failure: [] });
    assert.equal((await pool!.of(names()[2]!).get("txn/", { prefix: true })).kvs.length, 128);
    await allStillServe();
  });

  it("refuses a range at a future revision, linearizable or serializable", async () => {
    const rev = Number((await pool!.of(names()[0]!).put("rev/key", "v")).header.revision);
    for (const n of names()) {
      for (const serializable of [false, true]) {
        const msg = await rejection(pool!.of(n).get("rev/key", { revision: rev + 1000, serializable }));
        assert.equal(msg, "etcdserver: mvcc: required revision is a future revision");
      }
    }
    await allStillServe();
  });

  it("refuses to revoke an unknown lease", async () => {
    for (const n of names()) {
      assert.equal(await rejection(pool!.of(n).call("Lease", "LeaseRevoke", { ID: "1234567890123" })), "etcdserver: requested lease not found");
    }
    await allStillServe();
  });

  it("refuses clients without a certificate or with one from another CA", async () => {
    const admin = c!.pki.clients["admin"]!;
    const ca = fs.readFileSync(admin.ca);
    const noCert = new RawMember(clientAddress(c!, names()[0]!), grpc.credentials.createSsl(ca));
    const stranger = await (async () => {
      const otherCa = await createCa("someone else's CA", 1);
      const leaf = await issueCert(otherCa, clientCertProfile("admin"), 1);
      return new RawMember(clientAddress(c!, names()[0]!), grpc.credentials.createSsl(ca, Buffer.from(leaf.keyPem), Buffer.from(leaf.certPem)));
    })();
    try {
      for (const client of [noCert, stranger]) {
        await assert.rejects(client.put("intruder", "x", 3000));
        await assert.rejects(client.get("alive/", { prefix: true }, 3000));
      }
    } finally {
      noCert.close();
      stranger.close();
    }
    assert.equal(await pool!.of(names()[1]!).value("intruder"), undefined);
    await allStillServe();
  });

  it("answers malformed protobuf sent over raw HTTP/2 with an error status", async () => {
    const admin = c!.pki.clients["admin"]!;
    const target = names()[1]!;
    const session = http2.connect(`https://${clientAddress(c!, target)}`, {
      ca: fs.readFileSync(admin.ca),
      key: fs.readFileSync(admin.key),
      cert: fs.readFileSync(admin.cert),
    });
    session.on("error", () => undefined);
    const frame = (payload: Buffer, declared = payload.length) => {
      const h = Buffer.alloc(5);
      h.writeUInt32BE(declared, 1);
      return Buffer.concat([h, payload]);
    };
    const send = (method: string, body: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": method, "content-type": "application/grpc", te: "trailers" });
        let status: string | undefined;
        req.on("response", (headers) => {
          if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
        });
        req.on("trailers", (t) => {
          if (t["grpc-status"] !== undefined) status = String(t["grpc-status"]);
        });
        req.on("data", () => undefined);
        req.on("end", () => resolve(status ?? "none"));
        req.on("error", reject);
        req.end(body);
      });
    try {
      const garbage = [
        frame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), // endless varint
        frame(Buffer.from([0x0a, 0x7f, 0x01])), // key declared 127 bytes long, 1 present
        frame(Buffer.from([0x0f])), // field 1 with the invalid wire type 7
        frame(Buffer.from("not a protobuf at all, just text"), 4096), // frame longer than the body
      ];
      for (const method of ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Txn", "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Cluster/MemberAdd"]) {
        for (const body of garbage) {
          const status = await send(method, body);
          assert.notEqual(status, "0", `${method} accepted ${body.toString("hex")}`);
        }
      }
    } finally {
      session.close();
    }
    await allStillServe();
  });
});
