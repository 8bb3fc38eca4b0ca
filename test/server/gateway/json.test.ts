/**
 * The gateway's JSON codec and body splitter without a server: requests become exactly what
 * the gRPC handlers receive, responses take etcd's JSON form (defaults left out, int64 as
 * strings, bytes as base64, enums by name), and a body is cut into JSON values wherever the
 * chunks of the HTTP stream happen to end.
 */
import { strict as assert } from "node:assert";
import { JsonInputError, jsonMethod } from "../../../node-runtime/server/api/gateway-json";
import { httpStatusFromCode, JsonValueSplitter } from "../../../node-runtime/server/api/gateway";

describe("gateway JSON codec", () => {
  const range = jsonMethod("etcdserverpb.KV", "Range");
  const txn = jsonMethod("etcdserverpb.KV", "Txn");
  const watch = jsonMethod("etcdserverpb.Watch", "Watch");

  it("decodes a request into proto-loader's shape: Buffers, int64 strings, enum names, every field present", () => {
    const req = range.decodeRequest({ key: "Zm9v", rangeEnd: "Zm9w", limit: 5, revision: "7", sort_order: 2, sort_target: "MOD", serializable: true }) as Record<string, unknown>;
    assert.deepEqual(req["key"], Buffer.from("foo"));
    assert.deepEqual(req["range_end"], Buffer.from("fop"));
    assert.equal(req["limit"], "5");
    assert.equal(req["revision"], "7");
    assert.equal(req["sort_order"], "DESCEND");
    assert.equal(req["sort_target"], "MOD");
    assert.equal(req["serializable"], true);
    assert.equal(req["count_only"], false);
    assert.equal(req["min_mod_revision"], "0");
  });

  it("keeps int64 values beyond 2^53 exact in both directions", () => {
    const lease = jsonMethod("etcdserverpb.Lease", "LeaseRevoke");
    const big = "9223372036854775807";
    assert.equal((lease.decodeRequest({ ID: big }) as { ID: string }).ID, big);
    const grant = jsonMethod("etcdserverpb.Lease", "LeaseGrant");
    assert.deepEqual(grant.encodeResponse({ header: { revision: "1" }, ID: big, TTL: "60" }), { header: { revision: "1" }, ID: big, TTL: "60" });
  });

  it("decodes oneofs and nested messages (txn ops, watch requests)", () => {
    const t = txn.decodeRequest({ compare: [{ key: "YQ==", target: "VALUE", value: "Yg==" }], success: [{ requestPut: { key: "YQ==", value: "Yw==" } }] }) as {
      compare: Array<{ target: string; value: Buffer; target_union: string }>;
      success: Array<{ request: string; request_put: { value: Buffer } }>;
    };
    assert.equal(t.compare[0]!.target, "VALUE");
    assert.equal(t.compare[0]!.target_union, "value");
    assert.deepEqual(t.compare[0]!.value, Buffer.from("b"));
    assert.equal(t.success[0]!.request, "request_put");
    assert.deepEqual(t.success[0]!.request_put.value, Buffer.from("c"));
    const w = watch.decodeRequest({ create_request: { key: "YQ==", filters: ["NODELETE"] } }) as { request_union: string; create_request: { filters: string[] } };
    assert.equal(w.request_union, "create_request");
    assert.deepEqual(w.create_request.filters, ["NODELETE"]);
  });

  it("treats null and missing bodies as empty requests and ignores unknown fields", () => {
    assert.deepEqual((range.decodeRequest(undefined) as { key: Buffer }).key, Buffer.alloc(0));
    assert.deepEqual((range.decodeRequest(null) as { key: Buffer }).key, Buffer.alloc(0));
    assert.deepEqual((range.decodeRequest({ key: "YQ==", nope: { x: 1 } }) as { key: Buffer }).key, Buffer.from("a"));
  });

  it("rejects what etcd's gateway rejects, with Go's wording where it is fixed", () => {
    const bad: Array<[unknown, RegExp]> = [
      [[1], /cannot unmarshal array into Go value of type map\[string\]json.RawMessage/],
      [{ key: "not base64!!" }, /^illegal base64 data at input byte 3$/],
      [{ key: "Zm9" }, /^illegal base64 data at input byte 0$/],
      [{ sort_order: "BOGUS" }, /^unknown value "BOGUS" for enum etcdserverpb.RangeRequest_SortOrder$/],
      [{ key: "Zm9v_-8=" }, /^illegal base64 data at input byte 4$/],
      [{ limit: "abc" }, /^invalid character 'a' looking for beginning of value$/],
      [{ limit: 1.5 }, /^json: cannot unmarshal number 1.5 into Go value of type int64$/],
      [{ keys_only: "yes" }, /^json: cannot unmarshal string into Go value of type bool$/],
    ];
    for (const [body, re] of bad) {
      assert.throws(() => range.decodeRequest(body as never), (e: unknown) => e instanceof JsonInputError && re.test(e.message), JSON.stringify(body));
    }
  });

  it("encodes a response as etcd does: defaults omitted, empty messages kept, enums by name", () => {
    const json = watch.encodeResponse({
      header: { cluster_id: "1", member_id: "0", revision: "5", raft_term: "2" },
      watch_id: "0",
      created: false,
      canceled: false,
      compact_revision: "0",
      cancel_reason: "",
      fragment: false,
      events: [
        { type: "PUT", kv: { key: Buffer.from("a"), value: Buffer.from("b"), create_revision: "5", mod_revision: "5", version: "1", lease: "0" }, prev_kv: null },
        { type: "DELETE", kv: { key: Buffer.from("a"), mod_revision: "6" }, prev_kv: {} },
      ],
    });
    assert.deepEqual(json, {
      header: { cluster_id: "1", revision: "5", raft_term: "2" },
      events: [
        { kv: { key: "YQ==", create_revision: "5", mod_revision: "5", version: "1", value: "Yg==" } },
        { type: "DELETE", kv: { key: "YQ==", mod_revision: "6" }, prev_kv: {} },
      ],
    });
    assert.deepEqual(range.encodeResponse({ header: {}, kvs: [], more: false, count: "0" }), { header: {} });
  });

  it("maps gRPC codes to HTTP statuses as grpc-gateway 1.9 does", () => {
    const expected: Record<number, number> = { 0: 200, 1: 408, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 412, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401 };
    for (const [code, status] of Object.entries(expected)) assert.equal(httpStatusFromCode(Number(code)), status, `code ${code}`);
  });
});

describe("gateway JSON value splitter", () => {
  it("cuts concatenated and newline-separated values wherever the chunks end", () => {
    const text = '{"a":"x}y\\"{"}\n{"b":[1,{"c":2}]} [3] "s\\"t" 42 {"d":1}';
    const expected = ['{"a":"x}y\\"{"}', '{"b":[1,{"c":2}]}', "[3]", '"s\\"t"', "42", '{"d":1}'];
    for (let size = 1; size <= text.length; size++) {
      const s = new JsonValueSplitter();
      const out: string[] = [];
      for (let i = 0; i < text.length; i += size) out.push(...s.push(text.slice(i, i + size)));
      const rest = s.finish();
      if (rest !== undefined) out.push(rest);
      assert.deepEqual(out, expected, `chunk size ${size}`);
    }
  });

  it("reports a body that ends inside a value as unexpected EOF, and an earlier syntax error as such", () => {
    const cut = new JsonValueSplitter();
    cut.push('{"create_request":{"key":"Zm9v"');
    assert.throws(() => cut.finish(), /^JsonInputError: unexpected EOF$|unexpected EOF/);
    const bad = new JsonValueSplitter();
    bad.push("{bad json");
    assert.throws(() => bad.finish(), /invalid character 'b' looking for beginning of object key string/);
    assert.equal(new JsonValueSplitter().finish(), undefined);
  });
});
