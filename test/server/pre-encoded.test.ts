/**
 * Pre-encoded answers (issue 15): a handler that hands grpc-js an answer's bytes (a large
 * read-only Txn, written in steps) gets them to the client as that message, next to handlers that
 * answer with objects, and grpc-js sends the framed buffer itself instead of copying it once more.
 */
import { strict as assert } from "node:assert";
import * as grpc from "@grpc/grpc-js";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors";
import { acceptPreEncoded, FRAME_PREFIX_BYTES, PreEncoded, sendWithoutCopy } from "../../node-runtime/server/api/pre-encoded";
import { loadEtcdGrpc } from "../../node-runtime/server/proto";

const answer = {
  header: { cluster_id: "1", member_id: "2", revision: "3", raft_term: "4" },
  succeeded: true,
  responses: [{ response_range: { header: { revision: "3" }, kvs: [{ key: Buffer.from("k"), value: Buffer.from("v"), create_revision: "2", mod_revision: "3", version: "2", lease: "0" }], more: false, count: "1" } }],
};

function preEncoded(): PreEncoded {
  const bytes = loadEtcdGrpc().services.KV["Txn"]!.responseSerialize(answer);
  const framed = Buffer.alloc(FRAME_PREFIX_BYTES + bytes.length);
  bytes.copy(framed, FRAME_PREFIX_BYTES);
  return new PreEncoded(framed);
}

describe("pre-encoded answers", () => {
  it("grpc-js sends a pre-encoded answer's framed buffer as it is", () => {
    assert.equal(sendWithoutCopy(), true, "this grpc-js still frames responses in BaseServerInterceptingCall.serializeMessage");
    const frame = (BaseServerInterceptingCall.prototype as unknown as { serializeMessage: (v: unknown) => Buffer }).serializeMessage;
    const pre = preEncoded();
    assert.equal(frame.call({}, pre), pre.framed, "the same buffer, not a copy");
    assert.equal(pre.framed.readUInt32BE(1), pre.bytes.length, "frame prefix: message length");
    assert.equal(pre.framed[0], 0, "frame prefix: not compressed");
  });

  it("reach the client as the message, next to answers given as objects", async () => {
    sendWithoutCopy();
    const { services, clients } = loadEtcdGrpc();
    const server = new grpc.Server();
    server.addService(acceptPreEncoded(services.KV), {
      Txn: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, preEncoded()),
      Range: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { header: answer.header, kvs: [], more: false, count: "7" }),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const client = new clients.KV(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = <T>(method: string, req: object) =>
      new Promise<T>((resolve, reject) =>
        (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void>)[method]!.call(client, req, (e, r) => (e ? reject(e) : resolve(r as T))),
      );
    try {
      const txn = await call<typeof answer>("Txn", {});
      assert.equal(txn.header.raft_term, "4");
      assert.equal(txn.succeeded, true);
      const kv = txn.responses[0]!.response_range.kvs[0]!;
      assert.equal(kv.key.toString(), "k");
      assert.equal(kv.value.toString(), "v");
      assert.equal(kv.mod_revision, "3");
      assert.equal((await call<{ count: string }>("Range", { key: Buffer.from("k") })).count, "7");
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
