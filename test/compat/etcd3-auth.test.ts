/**
 * The `etcd3` npm package's roles-and-auth recipes, unmodified, against a 3-member raftkv
 * cluster: users and roles created, permissions granted on a prefix and listed back, auth
 * enabled, password logins (`auth: { username, password }`) whose reads and writes are limited
 * to the granted prefix, the client's typed errors for denials and bad passwords, a password
 * change, and auth disabled again. The default bcrypt cost (10) is used, as in production.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { noop } from "cockatiel";
import { Etcd3, EtcdAuthenticationFailedError, EtcdPermissionDeniedError, EtcdRoleNotFoundError, EtcdUserNotFoundError, type IOptions } from "etcd3";
import { TestCluster } from "../server/harness/cluster";

process.env["NODE_NO_WARNINGS"] = "1";

describe("etcd3 npm client: roles and auth against a 3-member raftkv cluster", function () {
  this.timeout(60_000);
  let cluster: TestCluster | undefined;
  const clients: Etcd3[] = [];

  function client(extra: Partial<IOptions> = {}): Etcd3 {
    const admin = cluster!.pki.clients["admin"]!;
    const c = new Etcd3({
      hosts: cluster!.members.map((m) => `https://127.0.0.1:${m.clientPort}`),
      credentials: { rootCertificate: fs.readFileSync(admin.ca), privateKey: fs.readFileSync(admin.key), certChain: fs.readFileSync(admin.cert) },
      faultHandling: { host: () => noop, global: noop },
      ...extra,
    });
    clients.push(c);
    return c;
  }

  async function rejects<E extends Error>(p: Promise<unknown>, type: new (...a: never[]) => E, message: RegExp): Promise<void> {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
      assert.match((e as Error).message, message);
      return true;
    });
  }

  before(async function () {
    this.timeout(90_000);
    cluster = await TestCluster.start({ size: 3 });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.destroy();
  });

  it("creates users and roles, grants a prefix and reads it back", async () => {
    const etcd = client();
    await etcd.user("root").create("rootpw");
    await etcd.role("root").create();
    await etcd.user("root").addRole("root");
    const tenant = await etcd.role("tenant").create();
    await tenant.grant({ permission: "Readwrite", range: etcd.range({ prefix: "/tenant/" }) });
    await tenant.grant({ permission: "Read", key: "shared" });
    const alice = await etcd.user("alice").create("alicepw");
    await alice.addRole("tenant");
    assert.deepEqual((await alice.roles()).map((r) => r.name), ["tenant"]);
    assert.deepEqual((await etcd.getUsers()).map((u) => u.name).sort(), ["alice", "root"]);
    assert.deepEqual((await etcd.getRoles()).map((r) => r.name).sort(), ["root", "tenant"]);
    const perms = await tenant.permissions();
    assert.deepEqual(
      perms.map((p) => [p.permission, p.range.start.toString(), p.range.end.toString()]),
      [
        ["Readwrite", "/tenant/", "/tenant0"],
        ["Read", "shared", ""],
      ],
    );
    await rejects(etcd.role("nope").permissions(), EtcdRoleNotFoundError, /role name not found/);
    await rejects(etcd.user("nobody").roles(), EtcdUserNotFoundError, /user name not found/);
    await etcd.put("/tenant/a").value("1");
    await etcd.put("/other/a").value("2");
  });

  it("enables auth; a password login reads and writes its prefix only", async () => {
    await client().auth.authEnable();
    const alice = client({ auth: { username: "alice", password: "alicepw" } });
    assert.equal(await alice.get("/tenant/a").string(), "1");
    await alice.put("/tenant/b").value("mine");
    assert.deepEqual(await alice.getAll().prefix("/tenant/").strings(), { "/tenant/a": "1", "/tenant/b": "mine" });
    await rejects(alice.get("/other/a").string(), EtcdPermissionDeniedError, /permission denied/);
    await rejects(alice.put("/other/b").value("x").exec(), EtcdPermissionDeniedError, /permission denied/);
    await rejects(alice.getAll().prefix("/").strings(), EtcdPermissionDeniedError, /permission denied/);
    // Managing users is root's.
    await rejects(alice.user("mallory").create("x"), EtcdPermissionDeniedError, /permission denied/);
    const wrong = client({ auth: { username: "alice", password: "nope" } });
    await rejects(wrong.get("/tenant/a").string(), EtcdAuthenticationFailedError, /authentication failed/);
  });

  it("root manages users with auth on; a changed password replaces the old one", async () => {
    const root = client({ auth: { username: "root", password: "rootpw" } });
    assert.equal(await root.get("/other/a").string(), "2");
    await root.user("alice").setPassword("newpw");
    const old = client({ auth: { username: "alice", password: "alicepw" } });
    await rejects(old.get("/tenant/a").string(), EtcdAuthenticationFailedError, /authentication failed/);
    const renewed = client({ auth: { username: "alice", password: "newpw" } });
    assert.equal(await renewed.get("/tenant/b").string(), "mine");
    await root.role("tenant").revoke({ permission: "Readwrite", range: root.range({ prefix: "/tenant/" }) });
    await rejects(client({ auth: { username: "alice", password: "newpw" } }).get("/tenant/b").string(), EtcdPermissionDeniedError, /permission denied/);
    await root.auth.authDisable();
    assert.equal(await client().get("/tenant/b").string(), "mine");
  });
});
