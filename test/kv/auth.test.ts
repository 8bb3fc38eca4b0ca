/**
 * The replicated auth store: etcd 3.4's management rules and error strings, its permission
 * checks over byte-affine key ranges, and the state surviving the log (command codec) and
 * snapshots (format 2, with format 1 still restoring).
 */
import { strict as assert } from "node:assert";
import { KvStore, decodeCommand, encodeCommand, type KvCommand } from "../../node-runtime/kv";
import { AuthStore, type AuthRequest, type RequestAuth } from "../../node-runtime/kv/auth";
import { KvError } from "../../node-runtime/kv/errors";

const root: RequestAuth = { username: "root", revision: 1 };

function errOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof KvError, String(e));
    return e.message;
  }
  return "no error";
}

/** A store with root, and alice holding role `ten` with readwrite on /a/ (prefix) and read on key k. */
function configured(): AuthStore {
  const a = new AuthStore();
  const ops: AuthRequest[] = [
    { op: "userAdd", name: "root", hash: "$2a$04$x", noPassword: false },
    { op: "roleAdd", name: "root" },
    { op: "userGrantRole", user: "root", role: "root" },
    { op: "userAdd", name: "alice", hash: "$2a$04$y", noPassword: false },
    { op: "roleAdd", name: "ten" },
    { op: "roleGrantPermission", name: "ten", perm: { permType: "READWRITE", key: "/a/", rangeEnd: "/a0" } },
    { op: "roleGrantPermission", name: "ten", perm: { permType: "READ", key: "k", rangeEnd: "" } },
    { op: "userGrantRole", user: "alice", role: "ten" },
    { op: "enable" },
  ];
  ops.forEach((op, i) => a.apply(i + 1, op, undefined));
  return a;
}

describe("auth store", () => {
  it("refuses to enable without root, or root without the root role (etcd's messages)", () => {
    const a = new AuthStore();
    assert.equal(errOf(() => a.apply(1, { op: "enable" }, undefined)), "etcdserver: root user does not exist");
    a.apply(2, { op: "userAdd", name: "root", hash: "h", noPassword: false }, undefined);
    assert.equal(errOf(() => a.apply(3, { op: "enable" }, undefined)), "etcdserver: root user does not have root role");
    assert.equal(errOf(() => a.apply(4, { op: "userGrantRole", user: "root", role: "nope" }, undefined)), "etcdserver: role name not found");
    // The root role need not exist to be granted (etcd special-cases it).
    a.apply(5, { op: "userGrantRole", user: "root", role: "root" }, undefined);
    a.apply(6, { op: "enable" }, undefined);
    assert.ok(a.enabled);
  });

  it("management errors match etcd 3.4", () => {
    const a = configured();
    const cases: Array<[AuthRequest, string]> = [
      [{ op: "userAdd", name: "alice", hash: "h", noPassword: false }, "etcdserver: user name already exists"],
      [{ op: "userAdd", name: "", hash: "h", noPassword: false }, "etcdserver: user name is empty"],
      [{ op: "roleAdd", name: "" }, "etcdserver: role name is empty"],
      [{ op: "roleAdd", name: "ten" }, "etcdserver: role name already exists"],
      [{ op: "userDelete", name: "nobody" }, "etcdserver: user name not found"],
      [{ op: "userDelete", name: "root" }, "etcdserver: invalid auth management"],
      [{ op: "roleDelete", role: "root" }, "etcdserver: invalid auth management"],
      [{ op: "userRevokeRole", name: "root", role: "root" }, "etcdserver: invalid auth management"],
      [{ op: "userRevokeRole", name: "alice", role: "other" }, "etcdserver: role is not granted to the user"],
      [{ op: "roleRevokePermission", role: "ten", key: "zz", rangeEnd: "" }, "etcdserver: permission is not granted to the role"],
      [{ op: "roleGrantPermission", name: "nope", perm: { permType: "READ", key: "a", rangeEnd: "" } }, "etcdserver: role name not found"],
    ];
    for (const [req, msg] of cases) assert.equal(errOf(() => a.apply(100, req, { ...root, revision: a.revision })), msg, JSON.stringify(req));
  });

  it("with auth on, only root manages (anonymous: user name is empty; others: permission denied)", () => {
    const a = configured();
    assert.equal(errOf(() => a.apply(50, { op: "roleAdd", name: "x" }, undefined)), "etcdserver: user name is empty");
    assert.equal(errOf(() => a.apply(50, { op: "roleAdd", name: "x" }, { username: "alice", revision: a.revision })), "etcdserver: permission denied");
    assert.equal(errOf(() => a.apply(50, { op: "roleAdd", name: "x" }, { username: "ghost", revision: a.revision })), "etcdserver: user name not found");
    a.apply(51, { op: "roleAdd", name: "x" }, root);
  });

  it("checks keys and ranges as etcd's interval tree does", () => {
    const a = configured();
    const alice: RequestAuth = { username: "alice", revision: a.revision };
    const ok = (f: () => void) => assert.equal(errOf(f), "no error");
    const denied = (f: () => void) => assert.equal(errOf(f), "etcdserver: permission denied");
    ok(() => a.checkPut(alice, "/a/x"));
    ok(() => a.checkRange(alice, "/a/", "/a0"));
    ok(() => a.checkRange(alice, "/a/b", "/a/c"));
    denied(() => a.checkRange(alice, "/a/", "\0")); // to the end of the key space
    denied(() => a.checkPut(alice, "/b/x"));
    denied(() => a.checkRange(alice, "/", "0"));
    ok(() => a.checkRange(alice, "k"));
    denied(() => a.checkPut(alice, "k"));
    denied(() => a.checkRange(alice, "k", "l")); // a single key does not cover a range
    ok(() => a.checkPut({ ...root, revision: a.revision }, "anything"));
    assert.equal(errOf(() => a.checkRange(undefined, "/a/x")), "etcdserver: user name is empty");
    assert.equal(errOf(() => a.checkRange({ username: "alice", revision: a.revision - 1 }, "/a/x")), "etcdserver: revision of auth store is old");
    assert.equal(errOf(() => a.checkRange({ username: "ghost", revision: a.revision }, "/a/x")), "etcdserver: permission denied");
  });

  it("adjacent grants cover a range together; a from-key grant covers everything after it", () => {
    const a = configured();
    a.apply(60, { op: "roleGrantPermission", name: "ten", perm: { permType: "READ", key: "/a0", rangeEnd: "/b" } }, root);
    a.apply(61, { op: "roleGrantPermission", name: "ten", perm: { permType: "WRITE", key: "z", rangeEnd: "\0" } }, root);
    const alice: RequestAuth = { username: "alice", revision: a.revision };
    a.checkRange(alice, "/a/", "/b");
    a.checkDelete(alice, "z", "\0");
    a.checkPut(alice, "zzzz");
    assert.equal(errOf(() => a.checkRange(alice, "/a/", "/c")), "etcdserver: permission denied");
  });

  it("deleting a role takes it from its users; revoking a permission takes the access", () => {
    const a = configured();
    a.apply(70, { op: "roleRevokePermission", role: "ten", key: "k", rangeEnd: "" }, root);
    assert.equal(errOf(() => a.checkRange({ username: "alice", revision: a.revision }, "k")), "etcdserver: permission denied");
    a.apply(71, { op: "roleDelete", role: "ten" }, root);
    assert.deepEqual(a.user("alice")!.roles, []);
  });

  it("authenticate yields etcd's simple token (prefix.index); no-password users cannot", () => {
    const a = configured();
    assert.equal(a.apply(77, { op: "authenticate", name: "alice", prefix: "abcdefghijklmnop" }, undefined).token, "abcdefghijklmnop.77");
    a.apply(78, { op: "userAdd", name: "np", hash: "", noPassword: true }, root);
    assert.equal(errOf(() => a.apply(79, { op: "authenticate", name: "np", prefix: "p" }, undefined)), "etcdserver: authentication failed, invalid user ID or password");
  });

  it("auth commands and identities round-trip through the command codec", () => {
    const cmds: KvCommand[] = [
      { type: "auth", req: { op: "roleGrantPermission", name: "rôle", perm: { permType: "READWRITE", key: "\xff\x00", rangeEnd: "\0" } }, auth: { username: "ünï", revision: 7 } },
      { type: "auth", req: { op: "userAdd", name: "u", hash: "$2a$10$abc", noPassword: false } },
      { type: "put", req: { prev_kv: false, ignore_value: false, ignore_lease: false, key: Buffer.from("k"), value: Buffer.from("v"), lease: "0" }, auth: { username: "alice", revision: 2 ** 40 } },
    ];
    for (const c of cmds) assert.deepEqual(decodeCommand(encodeCommand(c)), c);
    // Without an identity the bytes are format 1, as before auth existed.
    assert.equal(encodeCommand({ type: "put", req: { key: Buffer.from("k"), value: Buffer.from("v"), lease: "0" } })[0], 1);
  });

  it("is part of the snapshot; a store that never used auth keeps the old format", () => {
    const kv = new KvStore();
    kv.apply(1, { type: "put", req: { key: Buffer.from("a"), value: Buffer.from("1") } });
    const before = kv.snapshot();
    assert.equal(before[4], 1);
    assert.equal(KvStore.restore(before).auth.pristine, true);
    let i = 2;
    for (const req of [
      { op: "userAdd", name: "root", hash: "$2a$04$h", noPassword: false },
      { op: "roleAdd", name: "root" },
      { op: "userGrantRole", user: "root", role: "root" },
      { op: "roleAdd", name: "ten" },
      { op: "roleGrantPermission", name: "ten", perm: { permType: "WRITE", key: "/t/", rangeEnd: "/t0" } },
      { op: "enable" },
    ] as AuthRequest[]) {
      const r = kv.apply(i++, { type: "auth", req, auth: { username: "root", revision: kv.auth.revision } });
      assert.equal(r.kind, "ok", JSON.stringify(r));
    }
    const snap = kv.snapshot();
    assert.equal(snap[4], 2);
    const back = KvStore.restore(snap);
    assert.deepEqual(back.auth.state(), kv.auth.state());
    assert.equal(back.auth.enabled, true);
    assert.equal(back.range({ key: Buffer.from("a") }).kvs[0]!.value.toString(), "1");
    // Permission checks at apply: an anonymous put is refused, root's passes.
    const anon = back.apply(i++, { type: "put", req: { key: Buffer.from("x"), value: Buffer.from("1") } });
    assert.equal(anon.kind === "error" && anon.error.message, "etcdserver: user name is empty");
    const byRoot = back.apply(i++, { type: "put", req: { key: Buffer.from("x"), value: Buffer.from("1") }, auth: { username: "root", revision: back.auth.revision } });
    assert.equal(byRoot.kind, "ok");
  });

  it("a txn is refused if any compare or op on either branch is not permitted, nested ones included", () => {
    const kv = new KvStore();
    let i = 1;
    const admin = () => ({ username: "root", revision: kv.auth.revision });
    for (const req of [
      { op: "userAdd", name: "root", hash: "h", noPassword: false },
      { op: "userGrantRole", user: "root", role: "root" },
      { op: "userAdd", name: "t", hash: "h", noPassword: false },
      { op: "roleAdd", name: "t" },
      { op: "roleGrantPermission", name: "t", perm: { permType: "READWRITE", key: "/t/", rangeEnd: "/t0" } },
      { op: "userGrantRole", user: "t", role: "t" },
      { op: "enable" },
    ] as AuthRequest[]) assert.equal(kv.apply(i++, { type: "auth", req, auth: admin() }).kind, "ok");
    const t = (): RequestAuth => ({ username: "t", revision: kv.auth.revision });
    const put = (k: string) => ({ request_put: { key: Buffer.from(k), value: Buffer.from("v") } });
    const inside = kv.apply(i++, { type: "txn", req: { compare: [], success: [put("/t/1")], failure: [put("/t/2")] }, auth: t() });
    assert.equal(inside.kind, "ok");
    const cases = [
      { compare: [{ result: "EQUAL" as const, target: "VERSION" as const, key: Buffer.from("/x"), version: 0 }], success: [put("/t/1")] },
      { success: [put("/t/1")], failure: [put("/x")] },
      { success: [{ request_txn: { success: [put("/x")] } }] },
      { success: [{ request_range: { key: Buffer.from("/t/"), range_end: Buffer.from("\0") } }] },
    ];
    for (const req of cases) {
      const r = kv.apply(i++, { type: "txn", req, auth: t() });
      assert.equal(r.kind === "error" && r.error.message, "etcdserver: permission denied", JSON.stringify(req));
    }
  });
});
