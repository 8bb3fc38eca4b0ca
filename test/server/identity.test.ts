import { strict as assert } from "node:assert";
import fc from "fast-check";
import { RequestIds, clusterIdFor, hexId, memberIdFor } from "../../node-runtime/server/identity";

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
  it("request IDs of a restarted member start above the previous process's, even with the clock set back", () => {
    const t0 = Date.UTC(2026, 11, 6);
    const before = new RequestIds(t0);
    let last = 0;
    for (let i = 0; i < 100_000; i++) last = before.next(); // 100k requests within the first second
    const after = new RequestIds(t0 + 1000);
    assert.ok(after.next() > last);
    const clockBack = new RequestIds(t0 - 60_000, last);
    assert.ok(clockBack.next() > last);
    assert.ok(Number.isSafeInteger(new RequestIds(Date.UTC(2100, 0, 1)).next()));
  });
});
