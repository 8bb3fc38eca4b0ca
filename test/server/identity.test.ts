import { strict as assert } from "node:assert";
import fc from "fast-check";
import { MAX_INCARNATION, RequestIds, clusterIdFor, hexId, incarnationOfRequestId, memberIdFor } from "../../node-runtime/server/identity";

describe("member and cluster IDs", () => {
  it("are deterministic, positive, below 2^52 and depend on URL and token", () => {
    fc.assert(
      fc.property(fc.webUrl(), fc.string({ minLength: 1 }), (url, token) => {
        const id = memberIdFor([url], token);
        assert.ok(Number.isSafeInteger(id) && id > 0 && id < 2 ** 52);
        assert.equal(memberIdFor([url], token), id);
        assert.notEqual(memberIdFor([url], token + "x"), id);
      }),
      { numRuns: 200 },
    );
  });
  it("cluster IDs ignore member order", () => {
    assert.equal(clusterIdFor([3, 1, 2], "t"), clusterIdFor([1, 2, 3], "t"));
    assert.notEqual(clusterIdFor([1, 2, 3], "t"), clusterIdFor([1, 2], "t"));
  });
  it("prints IDs as hex without leading zeros, like etcd", () => {
    assert.equal(hexId(255), "ff");
    assert.equal(hexId("18446744073709551615"), "ffffffffffffffff");
  });
  it("request IDs of successive incarnations never meet, and the last incarnation's stay exact as float64", () => {
    const none = (): Promise<void> => Promise.resolve();
    const seen = new Set<number>();
    for (const inc of [1, 2, 3]) {
      const ids = new RequestIds(inc, none);
      for (let i = 0; i < 10_000; i++) {
        const id = ids.next();
        assert.ok(!seen.has(id), `ID ${id} of incarnation ${inc} was handed out before`);
        assert.equal(incarnationOfRequestId(id), inc);
        seen.add(id);
      }
    }
    const last = new RequestIds(MAX_INCARNATION, none);
    assert.ok(Number.isSafeInteger(last.next()));
    assert.throws(() => new RequestIds(MAX_INCARNATION + 1, none), /past the last one/);
    assert.throws(() => new RequestIds(0, none), /positive integer/);
  });

  it("a process that uses up its incarnation's IDs moves to the next one only once it is saved", async () => {
    const saves: number[] = [];
    let release: () => void = () => undefined;
    const ids = new RequestIds(5, (inc) => {
      saves.push(inc);
      return new Promise((r) => (release = r));
    }, 4); // 16 IDs per incarnation
    const got: number[] = [];
    for (let i = 0; i < 15; i++) got.push(ids.next());
    assert.deepEqual(got, Array.from({ length: 15 }, (_, i) => 5 * 16 + 1 + i));
    assert.deepEqual(saves, [6], "the next incarnation is saved once half of this one is used");
    assert.throws(() => ids.next(), /used up and the next one is not saved yet/);
    release();
    await new Promise((r) => setImmediate(r));
    assert.equal(ids.next(), 6 * 16 + 1);
    assert.equal(incarnationOfRequestId(ids.next(), 4), 6);
  });

  it("a failed save of the next incarnation is tried again", async () => {
    const saves: number[] = [];
    let fail = true;
    const ids = new RequestIds(1, (inc) => {
      saves.push(inc);
      return fail ? Promise.reject(new Error("EIO")) : Promise.resolve();
    }, 4);
    for (let i = 0; i < 9; i++) ids.next();
    await new Promise((r) => setImmediate(r));
    fail = false;
    ids.next();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(saves, [2, 2]);
    for (let i = 0; i < 5; i++) ids.next();
    assert.equal(ids.next(), 2 * 16 + 1);
  });
});
