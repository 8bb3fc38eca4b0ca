/**
 * The HTTP/JSON gateway answers like etcd 3.4.23's: every request goes, with curl over mutual
 * TLS, to a member of a 3-member raftkv cluster and to a real etcd started from Debian's
 * package (plain HTTP, see startPlainEtcd), and the answers must match — status, JSON field names and types, revisions,
 * values, error bodies — except for what names a cluster (IDs, terms), which is masked.
 */
import { strict as assert } from "node:assert";
import { assertSameAnswer, curl, IDENTITY_FIELDS, json, jsonLines, LineStream, mask, useGatewayPair, type HttpResult } from "./support";

describe("HTTP/JSON gateway answers like etcd 3.4", function () {
  this.timeout(60_000);
  const pair = useGatewayPair();

  async function both(path: string, body: string | undefined): Promise<[HttpResult, HttpResult]> {
    return Promise.all([curl(pair.ours.base, path, body, pair.ours.files), curl(pair.ref.base, path, body, pair.ref.files)]);
  }

  /** Sends the request to both and asserts equal status and equal (masked) JSON; returns pair.ours. */
  async function same(path: string, body: string, masked: readonly string[] = IDENTITY_FIELDS): Promise<Record<string, unknown>> {
    const [a, b] = await both(path, body);
    return assertSameAnswer(`${path} ${body}`, a, b, masked);
  }

  it("answers the seed's curl put and the KV range/delete calls with etcd's JSON", async () => {
    await same("/v3/kv/put", '{"key":"Zm9v","value":"YmFy"}');
    const prev = await same("/v3/kv/put", '{"key":"Zm9v","value":"YmF6","prev_kv":true}');
    assert.deepEqual(prev["prev_kv"], { key: "Zm9v", create_revision: "2", mod_revision: "2", version: "1", value: "YmFy" });
    await same("/v3/kv/put", '{"key":"Zm9vMg==","value":""}');
    const got = await same("/v3/kv/range", '{"key":"Zm9v"}');
    assert.equal(got["count"], "1");
    await same("/v3/kv/range", '{"key":"bm8="}');
    // lowerCamelCase names, int64 as numbers and enum numbers are accepted as etcd accepts them.
    await same("/v3/kv/range", '{"key":"Zm9v","rangeEnd":"Zm9w","keysOnly":true,"limit":1,"sort_order":2,"sort_target":"MOD"}');
    await same("/v3/kv/range", '{"key":"AA==","range_end":"AA==","count_only":true}');
    await same("/v3/kv/range", '{"key":"Zm9v","range_end":"Zm9w","serializable":true,"unknown_field":1}');
    await same("/v3/kv/deleterange", '{"key":"Zm9vMg==","prev_kv":true}');
    await same("/v3/kv/deleterange", '{"key":"bm8="}');
  });

  it("answers txn and compaction like etcd, compacted and future revisions included", async () => {
    await same(
      "/v3/kv/txn",
      '{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],' +
        '"success":[{"request_range":{"key":"Zm9v"}},{"request_put":{"key":"YQ==","value":"Yg==","prev_kv":true}},{"request_delete_range":{"key":"eA=="}}],' +
        '"failure":[]}',
    );
    await same(
      "/v3/kv/txn",
      '{"compare":[{"key":"Zm9v","target":"VERSION","result":"GREATER","version":"10"}],"success":[],"failure":[{"requestRange":{"key":"YQ==","count_only":true}}]}',
    );
    await same("/v3/kv/range", '{"key":"Zm9v","revision":"100"}');
    await same("/v3/kv/compaction", '{"revision":"3"}');
    await same("/v3/kv/compaction", '{"revision":"3"}');
    await same("/v3/kv/range", '{"key":"Zm9v","revision":2}');
  });

  it("answers the lease calls like etcd, keep-alive as a stream of results", async () => {
    await same("/v3/lease/grant", '{"TTL":"60","ID":"1234"}');
    const [a, b] = await both("/v3/lease/grant", '{"TTL":30}');
    assert.deepEqual(mask(json(a), [...IDENTITY_FIELDS, "ID"]), mask(json(b), [...IDENTITY_FIELDS, "ID"]));
    const rnd = [(json(a) as { ID: string }).ID, (json(b) as { ID: string }).ID];
    assert.match(rnd[0]!, /^\d+$/);
    const [ra, rb] = await Promise.all([
      curl(pair.ours.base, "/v3/lease/revoke", JSON.stringify({ ID: rnd[0] }), pair.ours.files),
      curl(pair.ref.base, "/v3/lease/revoke", JSON.stringify({ ID: rnd[1] }), pair.ref.files),
    ]);
    assert.deepEqual(mask(json(ra), IDENTITY_FIELDS), mask(json(rb), IDENTITY_FIELDS));
    await same("/v3/kv/put", '{"key":"bA==","value":"dg==","lease":"1234"}');
    await same("/v3/lease/timetolive", '{"ID":"1234","keys":true}', [...IDENTITY_FIELDS, "TTL"]);
    await same("/v3/lease/timetolive", '{"ID":"999"}');
    await same("/v3/lease/leases", "{}");
    await same("/v3/kv/lease/leases", "{}");
    for (const body of ['{"ID":"1234"}{"ID":"1234"}', '{"ID":"999"}']) {
      const [ka, kb] = await both("/v3/lease/keepalive", body);
      assert.equal(ka.status, kb.status);
      assert.deepEqual(jsonLines(ka).map((l) => mask(l, IDENTITY_FIELDS)), jsonLines(kb).map((l) => mask(l, IDENTITY_FIELDS)), body);
    }
    await same("/v3/lease/revoke", '{"ID":"1234"}');
    await same("/v3/lease/revoke", '{"ID":"1234"}');
    await same("/v3/kv/range", '{"key":"bA=="}');
  });

  it("keeps every digit of int64 values beyond 2^53 sent as JSON numbers, as etcd does", async () => {
    // 2^53 + 1: a double rounds it to 2^53. Before, the lease got ID 9007199254740992.
    const [a, b] = await both("/v3/lease/grant", '{"TTL":60,"ID":9007199254740993}');
    assert.equal(a.status, 200, a.body);
    assert.equal(b.status, 200, b.body);
    assert.equal((json(a) as { ID: string }).ID, "9007199254740993");
    assert.equal((json(b) as { ID: string }).ID, "9007199254740993");
    await same("/v3/lease/timetolive", '{"ID":9007199254740993}', [...IDENTITY_FIELDS, "TTL"]);
    await same("/v3/kv/range", '{"key":"Zm9v","revision":9223372036854775807}');
    // Beyond int64: Go's decoder refuses it, in its words.
    await same("/v3/lease/grant", '{"TTL":60,"ID":99999999999999999999}');
    await same("/v3/lease/revoke", '{"ID":9007199254740993}');
  });

  it("streams watch events as etcd does: created first, then one result line per event batch", async () => {
    const body = '{"create_request":{"key":"dw==","prev_kv":true}}';
    const wa = new LineStream(`${pair.ours.base}/v3/watch`, body, pair.ours.files);
    const wb = new LineStream(`${pair.ref.base}/v3/watch`, body, pair.ref.files);
    try {
      assert.deepEqual(mask(await wa.next(), IDENTITY_FIELDS), mask(await wb.next(), IDENTITY_FIELDS));
      await same("/v3/kv/put", '{"key":"dw==","value":"MQ=="}');
      await same("/v3/kv/put", '{"key":"dw==","value":"Mg=="}');
      await same("/v3/kv/deleterange", '{"key":"dw=="}');
      for (let i = 0; i < 3; i++) assert.deepEqual(mask(await wa.next(), IDENTITY_FIELDS), mask(await wb.next(), IDENTITY_FIELDS));
      assert.equal(wa.status, 200);
    } finally {
      wa.close();
      wb.close();
    }
  });

  it("replays history to a watch from a past revision and cancels one below the compaction", async () => {
    const body = '{"create_request":{"key":"Zm9v","start_revision":"3"}}\n{"create_request":{"key":"Zm9v","start_revision":"2"}}';
    const wa = new LineStream(`${pair.ours.base}/v3/watch`, body, pair.ours.files);
    const wb = new LineStream(`${pair.ref.base}/v3/watch`, body, pair.ref.files);
    type Line = { result: Record<string, unknown> & { header: Record<string, unknown> } };
    try {
      // Two created, the history of watch 0, the cancellation of watch 1; the order between
      // the two watches is not defined (etcd replays history asynchronously).
      const [la, lb] = [[] as Line[], [] as Line[]];
      for (let i = 0; i < 4; i++) {
        la.push((await wa.next()) as Line);
        lb.push((await wb.next()) as Line);
      }
      const cancelA = la.find((l) => l.result["canceled"] === true);
      const cancelB = lb.find((l) => l.result["canceled"] === true);
      assert.ok(cancelA && cancelB, "a cancellation on both");
      assert.equal(cancelB.result["compact_revision"], "3");
      // Like etcd 3.4: no cancel_reason and no header revision on a compacted watch.
      assert.equal(cancelA.result["cancel_reason"], undefined);
      assert.equal(cancelA.result.header["revision"], undefined);
      const sorted = (ls: Line[]) => ls.map((l) => JSON.stringify(mask(l, IDENTITY_FIELDS))).sort();
      assert.deepEqual(sorted(la), sorted(lb));
    } finally {
      wa.close();
      wb.close();
    }
  });

  it("answers member list and status with etcd's fields", async () => {
    const [a, b] = await both("/v3/cluster/member/list", "{}");
    const [ja, jb] = [json(a) as { header: unknown; members: object[] }, json(b) as { header: unknown; members: object[] }];
    assert.equal(a.status, 200);
    assert.deepEqual(mask(ja.header, IDENTITY_FIELDS), mask(jb.header, IDENTITY_FIELDS));
    assert.equal(ja.members.length, 3);
    for (const m of ja.members) assert.deepEqual(Object.keys(m), Object.keys(jb.members[0]!));
    await same("/v3/maintenance/status", "{}", [...IDENTITY_FIELDS, "version", "dbSize", "dbSizeInUse", "leader", "raftIndex", "raftAppliedIndex"]);
  });

  it("rejects bad requests with etcd's status codes and error bodies", async () => {
    const exact: Array<[string, string]> = [
      ["/v3/kv/range", "{bad json"],
      ["/v3/kv/range", "[1]"],
      ["/v3/kv/range", '{"key":"not base64!!"}'],
      ["/v3/kv/range", '{"key":"Zm9v","sort_order":"BOGUS"}'],
      ["/v3/kv/range", ""],
      ["/v3/kv/put", '{"value":"YQ=="}'],
      ["/v3/kv/range", '{"key":"Zm9v_-8="}'],
      ["/v3/kv/range", '{"key":"Zm9v","limit":"abc"}'],
      ["/v3/kv/range", '{"key":"Zm9v","limit":1.5}'],
      ["/v3/kv/range", '{"key":"Zm9v","keys_only":"yes"}'],
      ["/v3/lease/revoke", '{"ID":"5"}'],
      ["/v3/watch", '{"create_request":{"key":"Zm9v"'],
    ];
    for (const [path, body] of exact) {
      const [a, b] = await both(path, body);
      assert.equal(a.status, b.status, `${path} ${body}`);
      assert.deepEqual(json(a), json(b), `${path} ${body}`);
    }
    for (const [path, body] of [["/v3/kv/nothing", "{}"], ["/v3/kv/range", undefined]] as const) {
      const [x, y] = await both(path, body);
      assert.equal(x.status, y.status, `${path}`);
      assert.equal(x.body, y.body, `${path}`);
    }
  });
});
