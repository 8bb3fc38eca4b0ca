/**
 * Users, roles, permissions and the enabled flag travel in etcd-format snapshots (etcd's `auth`,
 * `authUsers` and `authRoles` buckets), both ways, with Debian's etcd/etcdctl 3.4.23:
 *
 *   raftkv (auth on) → `etcdctl snapshot save` as root → `etcdctl snapshot restore` → etcd keeps
 *     the users (bcrypt hashes it verifies), roles and grants, and auth stays on
 *   etcd (auth on) → `etcdctl snapshot save` → `raftkv snapshot restore` ×3 → a raftkv cluster
 *     keeps them the same way
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ETCDCTL_BIN, startReferenceEtcd } from "../helpers/etcd-reference";
import { runCli, type CliResult } from "../helpers/run-cli";
import { BUNDLE, TestCluster, ensureBuilt } from "../server/harness/cluster";

type Env = Record<string, string>;
const etcdctl = (env: Env, args: string[]): Promise<CliResult> => runCli(ETCDCTL_BIN, args, { ...env, ETCDCTL_DIAL_TIMEOUT: "20s", ETCDCTL_COMMAND_TIMEOUT: "30s" }, { timeoutMs: 60_000 });

async function ok(env: Env, args: string[]): Promise<string> {
  const r = await etcdctl(env, args);
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")} failed (${String(r.code)}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function flagValue(flags: readonly string[], name: string): string {
  const f = flags.find((x) => x.startsWith(`--${name}=`));
  if (!f) throw new Error(`no --${name} in ${flags.join(" ")}`);
  return f.slice(name.length + 3);
}
const restoreArgs = (flags: readonly string[]): string[] =>
  ["name", "data-dir", "initial-cluster", "initial-cluster-token", "initial-advertise-peer-urls"].map((n) => `--${n}=${flagValue(flags, n)}`);

/** Two users, a prefix role, a no-password user (for CN logins), data inside and outside the prefix, auth on. */
async function seedAuth(env: Env): Promise<void> {
  await ok(env, ["put", "/t/1", "tenant"]);
  await ok(env, ["put", "/other", "secret"]);
  await ok(env, ["user", "add", "root:rootpw"]);
  await ok(env, ["user", "add", "alice:apw"]);
  await ok(env, ["user", "add", "svc", "--no-password"]);
  await ok(env, ["role", "add", "tenant"]);
  await ok(env, ["role", "grant-permission", "tenant", "readwrite", "/t/", "--prefix"]);
  await ok(env, ["role", "grant-permission", "tenant", "read", "k1", "k9"]);
  await ok(env, ["user", "grant-role", "alice", "tenant"]);
  await ok(env, ["user", "grant-role", "svc", "tenant"]);
  await ok(env, ["auth", "enable"]);
}

/** What a restored server must show: auth on, the same users and grants, passwords that still work. */
async function assertAuthKept(env: Env): Promise<void> {
  const root = ["--user", "root:rootpw"];
  assert.equal(await ok(env, [...root, "user", "list"]), "alice\nroot\nsvc\n");
  assert.equal(await ok(env, [...root, "role", "list"]), "root\ntenant\n");
  assert.equal(await ok(env, [...root, "role", "get", "tenant"]), "Role tenant\nKV Read:\n\t[/t/, /t0) (prefix /t/)\n\t[k1, k9)\nKV Write:\n\t[/t/, /t0) (prefix /t/)\n");
  assert.equal(await ok(env, [...root, "user", "get", "alice"]), "User: alice\nRoles: tenant\n");
  assert.equal(await ok(env, ["--user", "alice:apw", "get", "/t/1", "--print-value-only"]), "tenant\n");
  const denied = await etcdctl(env, ["--user", "alice:apw", "get", "/other"]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /^Error: etcdserver: permission denied$/m);
  const wrong = await etcdctl(env, ["--user", "alice:nope", "get", "/t/1"]);
  assert.match(wrong.stderr, /^Error: etcdserver: authentication failed, invalid user ID or password$/m);
  // Auth is still on: the admin certificate (CN admin, no such user) may not read.
  const anon = await etcdctl(env, ["get", "/t/1"]);
  assert.match(anon.stderr, /^Error: etcdserver: (user name not found|permission denied)$/m);
  // The no-password user (kept as one) cannot log in with a password; etcd 3.4 says so in its raw auth error.
  const svc = await etcdctl(env, ["--user", "svc:x", "get", "/t/1"]);
  assert.match(svc.stderr, /^Error: rpc error: code = Unknown desc = auth: authentication failed, password was given for no password user$/m);
}

describe("etcd-format snapshots carry the auth store both ways", function () {
  this.timeout(240_000);
  const cleanups: Array<() => Promise<void>> = [];
  let tmp: string;

  before(() => {
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-snap-auth-"));
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("raftkv → etcdctl snapshot save/restore → etcd keeps users, roles, hashes and auth on", async () => {
    const src = await TestCluster.start({ size: 3, extraFlags: ["--bcrypt-cost=4"] });
    cleanups.push(() => src.destroy());
    await seedAuth(src.ctlEnv());
    await assertAuthKept(src.ctlEnv());
    const file = path.join(tmp, "from-raftkv.db");
    await ok(src.ctlEnv([await src.leader()]), ["--user", "root:rootpw", "snapshot", "save", file]);
    const etcd = await startReferenceEtcd({
      name: "restored",
      beforeStart: async (flags) => void (await ok({}, ["snapshot", "restore", file, ...restoreArgs(flags)])),
    });
    cleanups.push(() => etcd.stop());
    await assertAuthKept(etcd.ctlEnv);
  });

  it("etcd → raftkv snapshot restore → a raftkv cluster keeps users, roles, hashes and auth on", async () => {
    process.env["ETCD_BCRYPT_COST"] = "4";
    const etcd = await startReferenceEtcd({ name: "source" }).finally(() => delete process.env["ETCD_BCRYPT_COST"]);
    cleanups.push(() => etcd.stop());
    await seedAuth(etcd.ctlEnv);
    await assertAuthKept(etcd.ctlEnv);
    const file = path.join(tmp, "from-etcd.db");
    await ok(etcd.ctlEnv, ["--user", "root:rootpw", "snapshot", "save", file]);
    const dst = await TestCluster.start({
      size: 3,
      beforeStart: async (c) => {
        for (const m of c.members) {
          const r = await runCli(process.execPath, [BUNDLE, "snapshot", "restore", file, ...restoreArgs(c.flags(m))], {}, { timeoutMs: 60_000 });
          assert.equal(r.code, 0, r.stderr);
        }
      },
    });
    cleanups.push(() => dst.destroy());
    await dst.leader();
    await assertAuthKept(dst.ctlEnv());
    // Every member holds the auth store, not only the one answering.
    for (const m of dst.members) assert.equal(await ok(dst.ctlEnv([m.name]), ["--user", "root:rootpw", "user", "list"]), "alice\nroot\nsvc\n");
  });
});
