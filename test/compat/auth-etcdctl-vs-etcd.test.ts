/**
 * etcdctl 3.4's auth commands, command by command, against etcd 3.4.23 (one member) and a
 * raftkv cluster (three members, the client talking to one): users, roles, grants and revokes,
 * their errors, auth enable/disable, password logins (`--user`), a permission-denied read, and
 * a client identified by its certificate's CN (both servers run with --client-cert-auth; the
 * admin certificate's CN names no user, so without a token it gets no rights once auth is on).
 * Output, exit codes and error lines must agree after IDs and terms are replaced.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { ETCDCTL_BIN, startReferenceEtcd, type ReferenceEtcd } from "../helpers/etcd-reference";
import { cleanCtlEnv, runCli, type CliResult } from "../helpers/run-cli";
import { TestCluster } from "../server/harness/cluster";
import type { ClientCertPaths } from "../../node-runtime/pki";
import { writeClientCert } from "../helpers/client-cert";
import { assertSameResult, type Compared } from "./support";

type Env = Record<string, string | undefined>;

describe("etcdctl 3.4 auth commands: raftkv (3 members) answers as etcd 3.4", function () {
  this.timeout(60_000);
  let etcd: ReferenceEtcd | undefined;
  let cluster: TestCluster | undefined;
  let refEnv: Env;
  let oneEnv: Env;
  let refTenant: Env;
  let oneTenant: Env;

  const run = (env: Env, args: string[], stdin?: string): Promise<CliResult> =>
    runCli(ETCDCTL_BIN, args, env, { timeoutMs: 60_000, ...(stdin === undefined ? {} : { stdin }) });

  async function same(args: string[], o: { stdin?: string; tenant?: boolean } = {}): Promise<Compared> {
    const [a, b] = await Promise.all([run(o.tenant ? refTenant : refEnv, args, o.stdin), run(o.tenant ? oneTenant : oneEnv, args, o.stdin)]);
    assertSameResult(`etcdctl ${args.join(" ")}`, a, b);
    return { a, b };
  }

  /** Read-only commands whose answers do not depend on each other's order. */
  async function sameAll(cmds: string[][], o: { tenant?: boolean } = {}): Promise<void> {
    await Promise.all(cmds.map((args) => same(args, o)));
  }

  const tenantEnv = (base: Env, t: ClientCertPaths): Env => ({ ...base, ETCDCTL_CERT: t.cert, ETCDCTL_KEY: t.key });

  before(async function () {
    this.timeout(90_000);
    // Both hash with bcrypt cost 4 (etcd's minimum) instead of 10, so that ten logins side by side
    // fit this test's time on a loaded machine; etcd takes the flag from its environment.
    process.env["ETCD_BCRYPT_COST"] = "4";
    const started = Promise.allSettled([startReferenceEtcd(), TestCluster.start({ size: 3, extraFlags: ["--bcrypt-cost=4"] })]);
    const [e, c] = await started;
    delete process.env["ETCD_BCRYPT_COST"];
    if (e.status === "fulfilled") etcd = e.value;
    if (c.status === "fulfilled") cluster = c.value;
    if (e.status === "rejected") throw e.reason;
    if (c.status === "rejected") throw c.reason;
    // Generous client deadlines: on a loaded machine etcdctl's 5 s default can lapse on either server.
    const slow = { ETCDCTL_DIAL_TIMEOUT: "20s", ETCDCTL_COMMAND_TIMEOUT: "30s" };
    refEnv = cleanCtlEnv({ ...etcd!.ctlEnv, ...slow });
    oneEnv = cleanCtlEnv({ ...cluster!.ctlEnv(["raftkv-1"]), ...slow });
    // A client certificate with CN=tenant-a from each server's own client CA.
    refTenant = tenantEnv(refEnv, await writeClientCert(path.join(etcd!.dir, "tenant"), etcd!.pki.ca, etcd!.pki.caCertPath, "tenant-a"));
    oneTenant = tenantEnv(oneEnv, await writeClientCert(path.join(cluster!.dir, "tenant"), cluster!.pki.ca, cluster!.pki.caCertPath, "tenant-a"));
  });
  after(async () => {
    await Promise.all([etcd?.stop(), cluster?.destroy()]);
  });

  describe("users, roles and grants before auth is on", () => {
    it("adds users and roles, with etcd's errors for duplicates and unknown names", async () => {
      await same(["user", "add", "root:rootpw"]);
      await same(["user", "add", "alice:apw"]);
      await same(["user", "add", "alice:other"]);
      await same(["user", "add", "tenant-a:tpw"]);
      await same(["user", "add", "carol", "--interactive=false"], { stdin: "cpw\n" });
      await same(["role", "add", "root"]);
      await same(["role", "add", "tenant-a"]);
      await same(["role", "add", "tenant-a"]);
      await same(["role", "add", "r2"]);
      await same(["user", "grant-role", "root", "root"]);
      await same(["user", "grant-role", "alice", "tenant-a"]);
      await same(["user", "grant-role", "alice", "r2"]);
      await same(["user", "grant-role", "tenant-a", "tenant-a"]);
      await same(["user", "grant-role", "alice", "nope"]);
      await same(["user", "grant-role", "bob", "tenant-a"]);
    });

    it("grants key, range and prefix permissions; lists and shows them in every format", async () => {
      await same(["role", "grant-permission", "tenant-a", "readwrite", "/a/", "--prefix"]);
      await same(["role", "grant-permission", "tenant-a", "read", "k1"]);
      await same(["role", "grant-permission", "tenant-a", "write", "k2", "k4"]);
      await same(["role", "grant-permission", "r2", "read", "z", "--from-key"]);
      await same(["role", "grant-permission", "nope", "read", "x"]);
      await same(["role", "grant-permission", "r2", "sideways", "x"]);
      // Reads of an unchanging state: run side by side.
      await sameAll([
        ["user", "list"],
        ["role", "list"],
        ["user", "get", "alice"],
        ["user", "get", "alice", "--detail"],
        ["user", "get", "nobody"],
        ["role", "get", "tenant-a"],
        ["role", "get", "r2"],
        ["role", "get", "nope"],
        ["user", "list", "-w", "json"],
        ["role", "get", "tenant-a", "-w", "json"],
        ["user", "get", "alice", "-w", "json"],
      ]);
    });
  });

  describe("with auth enabled", () => {
    it("enables auth; the admin certificate's CN is no user, so it may not read", async () => {
      await same(["put", "/a/1", "one"]);
      await same(["put", "/b/1", "bee"]);
      await same(["auth", "enable"]);
      await same(["get", "/a/1"]);
      await same(["put", "/a/2", "x"]);
    });

    it("password logins: allowed keys, a permission-denied read, wrong passwords", async () => {
      await same(["--user", "alice:apw", "put", "/a/2", "two"]);
      await sameAll([
        ["--user", "alice:apw", "get", "/a/", "--prefix"],
        ["--user", "alice:apw", "get", "/b/1"],
        ["--user", "alice:apw", "put", "/b/1", "x"],
        ["--user", "alice:apw", "get", "k1"],
        ["--user", "alice:apw", "get", "k3"],
        ["--user", "alice:apw", "get", "zz"],
        ["--user", "alice:wrong", "get", "/a/1"],
        ["--user", "nobody:x", "get", "/a/1"],
      ]);
      await same(["--user", "alice:apw", "put", "k3", "w"]);
      await same(["--user", "alice:apw", "del", "/a/2", "--prev-kv"]);
      await same(["--user", "root:rootpw", "get", "/", "--prefix"]);
    });

    it("a user reads itself and its own roles, but nothing else of the auth store", async () => {
      await sameAll([
        ["--user", "alice:apw", "user", "get", "alice"],
        ["--user", "alice:apw", "role", "get", "tenant-a"],
        ["--user", "alice:apw", "user", "get", "root"],
        ["--user", "alice:apw", "user", "list"],
        ["--user", "alice:apw", "role", "add", "mine"],
        ["--user", "alice:apw", "auth", "disable"],
      ]);
    });

    it("a client identified by its certificate's CN (tenant-a) gets that user's rights", async () => {
      await same(["put", "/a/cn", "by-cert"], { tenant: true });
      await sameAll(
        [
          ["get", "/a/", "--prefix", "--keys-only"],
          ["get", "/b/1"],
          ["put", "/b/cn", "x"],
          // A token wins over the certificate (etcd uses the CN only without one).
          ["--user", "root:rootpw", "get", "/b/1"],
        ],
        { tenant: true },
      );
    });

    it("revokes, password changes and root's protections", async () => {
      await same(["--user", "root:rootpw", "role", "revoke-permission", "tenant-a", "k1"]);
      await same(["--user", "root:rootpw", "role", "revoke-permission", "tenant-a", "k1"]);
      await same(["--user", "alice:apw", "get", "k1"]);
      await same(["--user", "root:rootpw", "user", "revoke-role", "alice", "r2"]);
      await same(["--user", "root:rootpw", "user", "revoke-role", "alice", "r2"]);
      await same(["--user", "root:rootpw", "user", "passwd", "alice", "--interactive=false"], { stdin: "newpw\n" });
      await same(["--user", "alice:apw", "get", "/a/1"]);
      await same(["--user", "alice:newpw", "get", "/a/1"]);
      await sameAll([
        ["--user", "root:rootpw", "user", "delete", "root"],
        ["--user", "root:rootpw", "role", "delete", "root"],
        ["--user", "root:rootpw", "user", "revoke-role", "root", "root"],
      ]);
      await same(["--user", "root:rootpw", "user", "delete", "carol"]);
      await same(["--user", "root:rootpw", "user", "delete", "carol"]);
      await same(["--user", "root:rootpw", "role", "delete", "r2"]);
      await same(["--user", "root:rootpw", "user", "get", "alice"]);
    });

    it("admin commands need root: membership, snapshots and defragmentation", async () => {
      await sameAll(
        [
          ["member", "add", "x", "--peer-urls=https://127.0.0.1:1"],
          ["member", "remove", "1234"],
          ["defrag"],
        ],
        { tenant: true },
      );
      const [a, b] = await Promise.all([
        run(refTenant, ["snapshot", "save", path.join(etcd!.dir, "t.db")]),
        run(oneTenant, ["snapshot", "save", path.join(cluster!.dir, "t.db")]),
      ]);
      assertSameResult("etcdctl snapshot save (tenant)", a, b);
      assert.match(b.stderr, /Error: .*permission denied/);
    });

    it("disables auth as root; everyone may read again", async () => {
      await same(["--user", "root:rootpw", "auth", "disable"]);
      await same(["get", "/a/", "--prefix"]);
      await same(["auth", "disable"]);
    });
  });
});
