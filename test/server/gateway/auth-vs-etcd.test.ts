/**
 * The gateway's /v3/auth/* routes answer like etcd 3.4.23's: users, roles and a prefix grant
 * made over JSON, auth enabled, a password login (`/v3/auth/authenticate`), then requests that
 * carry the token in the Authorization header (as grpc-gateway passes it to etcd): an allowed
 * read, a permission-denied read and write, an unknown token, a request without a token, a bad
 * password, and root disabling auth. Statuses and JSON bodies must match; what names a
 * cluster (IDs, terms) and the token itself (random per server) are masked.
 */
import { strict as assert } from "node:assert";
import { assertSameAnswer, curl, IDENTITY_FIELDS, json, useGatewayPair, type GatewayTarget, type HttpResult } from "./support";

interface Target extends GatewayTarget {
  tokens: Record<string, string>;
}

const b64 = (s: string): string => Buffer.from(s).toString("base64");
const MASKED = [...IDENTITY_FIELDS, "token"];

describe("HTTP/JSON gateway /v3/auth/* answers like etcd 3.4", function () {
  this.timeout(60_000);
  // bcrypt cost 4 on both, so logins stay quick on a loaded machine.
  const pair = useGatewayPair({ extraFlags: ["--bcrypt-cost=4"], etcdEnv: { ETCD_BCRYPT_COST: "4" } });
  let ours: Target;
  let ref: Target;

  before(() => {
    ours = { ...pair.ours, tokens: {} };
    ref = { ...pair.ref, tokens: {} };
  });

  const call = (t: Target, path: string, body: string, as?: string): Promise<HttpResult> => {
    const token = as === undefined ? undefined : (t.tokens[as] ?? as);
    return curl(t.base, path, body, t.files, token === undefined ? [] : ["-H", `Authorization: ${token}`]);
  };

  /** The same request to both (with the same user's token); equal status and masked JSON. */
  async function same(path: string, body: string, as?: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const [a, b] = await Promise.all([call(ours, path, body, as), call(ref, path, body, as)]);
    return { status: a.status, body: assertSameAnswer(`${path} ${body}`, a, b, MASKED) };
  }

  /** Logs in on both servers and keeps each server's own token under the user's name. */
  async function login(name: string, password: string): Promise<void> {
    const r = await same("/v3/auth/authenticate", JSON.stringify({ name, password }));
    assert.equal(r.status, 200);
    for (const t of [ours, ref]) {
      const res = json(await call(t, "/v3/auth/authenticate", JSON.stringify({ name, password }))) as { token?: string };
      assert.ok(res.token, `a token from ${t.base}`);
      t.tokens[name] = res.token;
    }
  }

  it("manages users, roles and grants over JSON", async () => {
    await same("/v3/auth/user/add", '{"name":"root","password":"rootpw"}');
    await same("/v3/auth/user/add", '{"name":"alice","password":"apw"}');
    await same("/v3/auth/user/add", '{"name":"alice","password":"apw"}');
    await same("/v3/auth/role/add", '{"name":"root"}');
    await same("/v3/auth/user/grant", '{"user":"root","role":"root"}');
    await same("/v3/auth/role/add", '{"name":"ra"}');
    await same("/v3/auth/role/grant", JSON.stringify({ name: "ra", perm: { permType: "READWRITE", key: b64("/a/"), range_end: b64("/a0") } }));
    await same("/v3/auth/role/grant", JSON.stringify({ name: "ra", perm: { permType: 0, key: b64("k1") } }));
    await same("/v3/auth/user/grant", '{"user":"alice","role":"ra"}');
    await same("/v3/auth/user/grant", '{"user":"alice","role":"nope"}');
    await same("/v3/auth/role/get", '{"role":"ra"}');
    await same("/v3/auth/user/get", '{"name":"alice"}');
    await same("/v3/auth/user/get", '{"name":"nobody"}');
    await same("/v3/auth/user/list", "{}");
    await same("/v3/auth/role/list", "{}");
    await same("/v3/kv/put", JSON.stringify({ key: b64("/a/1"), value: b64("one") }));
    await same("/v3/kv/put", JSON.stringify({ key: b64("/b/1"), value: b64("bee") }));
  });

  it("enables auth; authenticates over JSON; the token reads what the role allows and nothing else", async () => {
    await same("/v3/auth/enable", "{}");
    await same("/v3/auth/authenticate", '{"name":"alice","password":"wrong"}');
    await same("/v3/auth/authenticate", '{"name":"nobody","password":"x"}');
    await login("alice", "apw");
    const ok = await same("/v3/kv/range", JSON.stringify({ key: b64("/a/1") }), "alice");
    assert.equal(ok.status, 200);
    assert.equal((ok.body["kvs"] as Array<{ value: string }>)[0]!.value, b64("one"));
    await same("/v3/kv/put", JSON.stringify({ key: b64("/a/2"), value: b64("two") }), "alice");
    const denied = await same("/v3/kv/range", JSON.stringify({ key: b64("/b/1") }), "alice");
    assert.notEqual(denied.status, 200);
    assert.match(String(denied.body["error"]), /permission denied/);
    await same("/v3/kv/put", JSON.stringify({ key: b64("/b/2"), value: b64("x") }), "alice");
    await same("/v3/kv/range", JSON.stringify({ key: b64("k1") }), "alice");
    await same("/v3/kv/range", JSON.stringify({ key: b64("/a/1") }));
    await same("/v3/kv/range", JSON.stringify({ key: b64("/a/1") }), "not-a-token");
    await same("/v3/auth/user/list", "{}", "alice");
    await same("/v3/auth/user/get", '{"name":"alice"}', "alice");
  });

  it("root manages and disables auth with its token", async () => {
    await login("root", "rootpw");
    await same("/v3/auth/role/revoke", JSON.stringify({ role: "ra", key: b64("k1") }), "root");
    await same("/v3/auth/user/changepw", '{"name":"alice","password":"new"}', "root");
    await same("/v3/auth/authenticate", '{"name":"alice","password":"apw"}');
    await same("/v3/kv/range", JSON.stringify({ key: b64("/b/1") }), "root");
    await same("/v3/auth/disable", "{}", "alice");
    await same("/v3/auth/disable", "{}", "root");
    await same("/v3/kv/range", JSON.stringify({ key: b64("/b/1") }));
  });
});
