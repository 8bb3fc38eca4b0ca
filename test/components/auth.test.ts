/**
 * The deployment's auth plan and bootstrap script (components/auth.ts): who is root, which
 * prefix each worker gets, and the script executed for real against a 3-member raftkv cluster
 * with certificates named as the deployment names them. Afterwards a worker's certificate reads
 * and writes only its prefix and cannot add members or take snapshots, the operators' admin certificate and a
 * member's ops certificate (the backup agent's) are root, and a second run changes nothing.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { AuthPlanError, planClusterAuth, possibleMemberNames, renderAuthBootstrapScript } from "../../components/auth";
import { ETCDCTL_BIN } from "../helpers/etcd-reference";
import { writeClientCert } from "../helpers/client-cert";
import { bundleRaftkvctl, type CtlBundle } from "../helpers/ctl-bundle";
import { runCli, type CliResult } from "../helpers/run-cli";
import { TestCluster } from "../server/harness/cluster";

type Env = Record<string, string>;

describe("deployment auth: plan and bootstrap script", function () {
  // ~25 raftkvctl runs per bootstrap: seconds when idle, minutes at load 30.
  this.timeout(900_000);

  it("makes root, admin and each member's ops identity root, and each worker a tenant of its prefix", () => {
    const plan = planClusterAuth({ members: ["raftkv-1", "raftkv-2", "raftkv-3"], workers: ["w1", "w2"], prefixes: { w2: "/shared/" } });
    assert.deepEqual(plan.rootUsers, ["root", "admin", "raftkv-1-ops", "raftkv-2-ops", "raftkv-3-ops"]);
    assert.deepEqual(plan.tenants, [
      { user: "w1", prefix: "/w1/" },
      { user: "w2", prefix: "/shared/" },
    ]);
    assert.throws(() => planClusterAuth({ members: ["raftkv-1"], workers: ["w1"], prefixes: { w9: "/x/" } }), AuthPlanError);
    assert.throws(() => planClusterAuth({ members: ["raftkv-1"], workers: ["w1"], prefixes: { w1: "" } }), /non-empty/);
    assert.throws(() => planClusterAuth({ members: ["raftkv-1"], workers: ["admin"] }), /name of a root identity/);
    const script = renderAuthBootstrapScript(plan);
    assert.match(script, /^\$RAFTKVCTL role grant-permission 'tenant-w2' readwrite '\/shared\/' --prefix >\/dev\/null$/m);
    assert.match(script, /\$RAFTKVCTL auth enable >\/dev\/null\n[^\n]*\n$/);
  });

  describe("run against a 3-member cluster", () => {
    let cluster: TestCluster | undefined;
    let bundle: CtlBundle | undefined;
    const envs: Record<string, Env> = {};
    const etcdctl = (who: string, args: string[], extra: Env = {}): Promise<CliResult> =>
      runCli(ETCDCTL_BIN, args, { ...envs[who]!, ETCDCTL_DIAL_TIMEOUT: "20s", ETCDCTL_COMMAND_TIMEOUT: "30s", ...extra }, { timeoutMs: 60_000 });

    before(async function () {
      this.timeout(120_000);
      [cluster, bundle] = await Promise.all([TestCluster.start({ size: 3 }), bundleRaftkvctl()]);
      const base = cluster.ctlEnv();
      envs["admin"] = base;
      // raftkv-5-ops: the ops identity of a member a scale-up to 5 adds after auth is on.
      for (const cn of ["raftkv-1-ops", "raftkv-5-ops", "w1", "w2"]) {
        const c = await writeClientCert(path.join(cluster.dir, "auth-certs"), cluster.pki.ca, cluster.pki.caCertPath, cn);
        envs[cn] = { ...base, ETCDCTL_CERT: c.cert, ETCDCTL_KEY: c.key };
      }
    });
    after(async () => {
      bundle?.dispose();
      await cluster?.destroy();
    });

    async function bootstrap(): Promise<CliResult> {
      // As RaftkvCluster plans it: every member name the cluster can have (components/cluster.ts).
      const plan = planClusterAuth({ members: possibleMemberNames("raftkv"), workers: ["w1", "w2"], prefixes: { w2: "/shared/" } });
      const ops = envs["raftkv-1-ops"]!;
      // What the host's raftkvctl wrapper does: the bundle with the member's ops certificate.
      const ctl = [process.execPath, bundle!.file, `--endpoints=127.0.0.1:${cluster!.member("raftkv-1").clientPort}`, `--cacert=${ops["ETCDCTL_CACERT"]!}`, `--cert=${ops["ETCDCTL_CERT"]!}`, `--key=${ops["ETCDCTL_KEY"]!}`].join(" ");
      return runCli("bash", ["-c", renderAuthBootstrapScript(plan)], { ...bundle!.env, RAFTKVCTL: ctl }, { timeoutMs: 400_000 });
    }

    it("limits each worker to its prefix; admin and ops stay root; a second run changes nothing", async () => {
      const first = await bootstrap();
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, "raftkv-auth: auth enabled\n");

      assert.equal((await etcdctl("w1", ["put", "/w1/a", "1"])).stdout, "OK\n");
      assert.equal((await etcdctl("w1", ["get", "/w1/a", "--print-value-only"])).stdout, "1\n");
      assert.equal((await etcdctl("w2", ["put", "/shared/b", "2"])).stdout, "OK\n");
      for (const [who, args] of [
        ["w1", ["get", "/shared/b"]],
        ["w1", ["put", "/other", "x"]],
        ["w2", ["get", "/w1/a"]],
        ["w1", ["member", "add", "x", "--peer-urls=https://127.0.0.1:1"]],
      ] as const) {
        const r = await etcdctl(who, [...args]);
        assert.equal(r.code, 1, `${who} ${args.join(" ")}: ${r.stdout}`);
        assert.match(r.stderr, /^Error: .*permission denied$/m);
      }
      // snapshot save talks to one member.
      const one = { ETCDCTL_ENDPOINTS: `127.0.0.1:${cluster!.member("raftkv-1").clientPort}` };
      const tenantSnap = await etcdctl("w1", ["snapshot", "save", path.join(cluster!.dir, "w1.db")], one);
      assert.notEqual(tenantSnap.code, 0);
      assert.match(tenantSnap.stderr, /permission denied/);

      // The backup agent's identity (a member's ops certificate) takes snapshots; admin manages membership.
      const opsSnap = await etcdctl("raftkv-1-ops", ["snapshot", "save", path.join(cluster!.dir, "ops.db")], one);
      assert.equal(opsSnap.code, 0, opsSnap.stderr);
      assert.equal((await etcdctl("admin", ["member", "list"])).code, 0);
      // A member a later scale-up adds is root from the start: its join (member add) and health checks work.
      const joiner = await etcdctl("raftkv-5-ops", ["member", "list"]);
      assert.equal(joiner.code, 0, joiner.stderr);
      const ops = [1, 2, 3, 4, 5, 6, 7].map((i) => `raftkv-${i}-ops\n`).join("");
      assert.equal((await etcdctl("admin", ["user", "list"])).stdout, `admin\n${ops}root\nw1\nw2\n`);

      const second = await bootstrap();
      assert.equal(second.code, 0, second.stderr);
      assert.equal((await etcdctl("admin", ["role", "get", "tenant-w2"])).stdout, "Role tenant-w2\nKV Read:\n\t[/shared/, /shared0) (prefix /shared/)\nKV Write:\n\t[/shared/, /shared0) (prefix /shared/)\n");
    });
  });
});
