/**
 * A Txn of 128 Range ops each reading the whole keyspace (issue 15) against a real 3-member
 * cluster: with ~17 MiB stored its response would be over 2 GiB. etcd 3.4.23 builds it
 * (5.5 GiB peak at 20 MiB, bench/txn-ranges.ts) and answers RESOURCE_EXHAUSTED "grpc: trying to
 * send message larger than max (N vs. 2147483647)". raftkv answers the same without building it,
 * whether the txn only reads (served locally, as etcd does) or also writes (refused at apply on
 * every member, without effect), and every member stays healthy with its memory near where it was.
 */
import { strict as assert } from "node:assert";
import * as grpc from "@grpc/grpc-js";
import { loadEtcdGrpc } from "../../../node-runtime/server/proto";
import { rssMiB } from "../../abuse/support";
import { TestCluster } from "../harness/cluster";
import { adminCredentials, clientAddress, RawMember } from "./clients";

const VALUE = Buffer.alloc(100 * 1024, "r");
const KEYS = 170;
const all = { request_range: { key: Buffer.from([0]), range_end: Buffer.from([0]) } };
const TOO_LARGE = /^grpc: trying to send message larger than max \(\d+ vs\. 2147483647\)$/;

/** A Txn through a client that takes any response size, so what fails is the server's answer. */
function txn(address: string, creds: grpc.ChannelCredentials, req: object): Promise<{ responses: unknown[] }> {
  const { clients } = loadEtcdGrpc();
  const client = new clients.KV(address, creds, { "grpc.max_receive_message_length": -1 });
  const call = (client as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void>)["Txn"]!;
  return new Promise<{ responses: unknown[] }>((resolve, reject) => {
    call.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 120_000 }, (err, res) => (err ? reject(err) : resolve(res as { responses: unknown[] })));
  }).finally(() => client.close());
}

describe("txn of 128 full-range reads", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  const kvs: RawMember[] = [];

  let leader = "";
  let creds: grpc.ChannelCredentials;
  let address = "";
  let kv: RawMember;

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    leader = await c.leader();
    creds = adminCredentials(c);
    address = clientAddress(c, leader);
    kv = new RawMember(address, creds);
    kvs.push(kv);
    for (let i = 0; i < KEYS; i += 10) {
      const puts = Array.from({ length: Math.min(10, KEYS - i) }, (_, j) => ({ request_put: { key: Buffer.from(`big/${String(i + j).padStart(4, "0")}`), value: VALUE } }));
      await kv.call("KV", "Txn", { compare: [], success: puts, failure: [] }, 30_000);
    }
  });

  after(async () => {
    for (const k of kvs) k.close();
    await c?.destroy();
  });

  it("is refused with etcd's answer before it is built; the members stay healthy and bounded", async () => {
    const cl = c!;
    const pids = cl.members.map((m) => cl.procs.get(m.name)!.pid!);
    const before = pids.map(rssMiB);

    // Reads only: served by the member asked, like a range.
    const ranges = Array.from({ length: 128 }, () => all);
    const readErr = (await txn(address, creds, { compare: [], success: ranges, failure: [] }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    ))!;
    assert.ok(readErr, "the read-only txn was refused");
    assert.equal(readErr.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(readErr.details, TOO_LARGE);

    // With a write it goes through the log: refused at apply on every member, nothing written.
    const writeErr = (await txn(address, creds, { compare: [], success: [{ request_put: { key: Buffer.from("written"), value: Buffer.from("x") } }, ...ranges.slice(1)], failure: [] }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    ))!;
    assert.ok(writeErr, "the write txn was refused");
    assert.equal(writeErr.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(writeErr.details, TOO_LARGE);

    const after = pids.map(rssMiB);
    after.forEach((a, i) => assert.ok(a - before[i]! < 400, `member ${i} RSS grew from ${before[i]!.toFixed(0)} to ${a.toFixed(0)} MiB`));

    // The same 128 ranges without values are small and answered; a follower answers a
    // serializable txn itself.
    const keysOnly = { request_range: { ...all.request_range, keys_only: true } };
    const small = await txn(address, creds, { compare: [], success: Array.from({ length: 128 }, () => keysOnly), failure: [] });
    assert.equal(small.responses.length, 128);
    assert.equal((small.responses[127] as { response_range: { kvs: unknown[] } }).response_range.kvs.length, KEYS);
    const follower = cl.members.map((m) => m.name).find((n) => n !== leader)!;
    const local = await txn(clientAddress(cl, follower), creds, { compare: [], success: [{ request_range: { ...all.request_range, serializable: true, count_only: true } }], failure: [] });
    assert.equal((local.responses[0] as { response_range: { count: string } }).response_range.count, String(KEYS));

    await cl.waitHealthy();
    for (const m of cl.members) {
      const member: RawMember = new RawMember(clientAddress(cl, m.name), creds);
      kvs.push(member);
      assert.equal((await member.get("written", { serializable: true })).kvs.length, 0, `${m.name} did not apply the refused write`);
    }
    await kv.put("after", "ok");
    assert.equal(await kv.value("after"), "ok");
  });

  it("serves writes while a large read-only answer is written (the answer is built in steps)", async () => {
    // 128 ranges of 10 keys each: a 128 MiB answer, below the limit, built by the leader.
    const tenKeys = { request_range: { ...all.request_range, limit: 10 } };
    const { res, during } = await whilePutting<{ header: { revision: string }; responses: unknown[] }>("KV", "Txn", {
      compare: [],
      success: Array.from({ length: 128 }, () => tenKeys),
      failure: [],
    });
    assert.equal(res.responses.length, 128);
    assert.equal((res.responses[127] as { response_range: { kvs: unknown[] } }).response_range.kvs.length, 10);
    assert.ok(during.served > 0, `no put was served while the answer was built (${during.text})`);
    await c!.waitHealthy();
  });

  it("serves writes while Maintenance Hash and HashKV digest the store (in steps)", async () => {
    // Each digest of the 17 MiB store is short next to the txn above: several of each, and at
    // least one put served during one of them.
    let served = 0;
    const texts: string[] = [];
    for (let i = 0; i < 4 && served === 0; i++) {
      for (const method of ["Hash", "HashKV"] as const) {
        const { res, during } = await whilePutting<{ header: { revision: string }; hash: number }>("Maintenance", method, method === "HashKV" ? { revision: "0" } : {});
        assert.equal(typeof res.hash, "number");
        served += during.served;
        texts.push(`${method}: ${during.text}`);
      }
    }
    assert.ok(served > 0, `no put was served while the store was digested (${texts.join("; ")})`);
  });

  /**
   * Calls `method` on the leader while puts are in flight all along, each recording its revision
   * and when its answer came, counted against the moment the call's answer began to arrive (its
   * response headers). A put applied after the call read the store (a revision above the answer's
   * header revision) and answered before the call's answer was sent can only have been served
   * while the answer was being computed.
   */
  async function whilePutting<Res extends { header: { revision: string } }>(service: "KV" | "Maintenance", method: string, req: object): Promise<{ res: Res; during: { served: number; text: string } }> {
    const writer = new RawMember(address, creds);
    kvs.push(writer);
    let seq = 0;
    let headersAt = Infinity;
    let stop = false;
    const done: { revision: number; at: number }[] = [];
    const loops = Array.from({ length: 4 }, async (_, n) => {
      for (let i = 0; !stop; i++) {
        const res = await writer.put(`probe/${n}`, String(i), 30_000);
        done.push({ revision: Number(res.header.revision), at: ++seq });
      }
    });
    try {
      while (done.length < 8) await new Promise((r) => setTimeout(r, 10));
      const { clients } = loadEtcdGrpc();
      const client = new clients[service](address, creds, { "grpc.max_receive_message_length": -1 });
      const call = (client as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => grpc.ClientUnaryCall>)[method]!;
      const res = await new Promise<Res>((resolve, reject) => {
        const unary = call.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 120_000 }, (err, r) => (err ? reject(err) : resolve(r as Res)));
        unary.on("metadata", () => (headersAt = ++seq));
      }).finally(() => client.close());
      const rev = Number(res.header.revision);
      const served = done.filter((d) => d.revision > rev && d.at < headersAt).length;
      return { res, during: { served, text: `read at ${rev}; ${done.filter((d) => d.at < headersAt).length} puts before its answer, ${done.length} in all` } };
    } finally {
      stop = true;
      await Promise.all(loops);
    }
  }
});
