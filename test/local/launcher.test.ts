/**
 * `npm start` end to end: the bundled launcher starts real member processes in a temp --dir on
 * ports of its own, and the user's tools (Debian's etcdctl, our raftkvctl) talk to it through
 * the env file exactly as the quick start tells a new user to.
 *
 * The cases run in order and share one cluster directory, like a user's session: start, use,
 * kill the leader, stop, start again, restart policies, reset. Every process is stopped in
 * `after`, also when a case fails.
 */
import { strict as assert } from "node:assert";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { planLocalMembers, type MemberEndpoint } from "../../components/topology";
import { isRaftkvProcess, livePids, readPids, type PidFile } from "../../node-runtime/cli/local-files";
import { fetchAll, waitHealthy, type MemberStatus } from "../../node-runtime/cli/local-status";
import { reservePorts, type PortReservation } from "../helpers/free-port";
import { REPO, ensureBuilt } from "../server/harness/cluster";

const LAUNCHER = path.join(REPO, "dist", "raftkv-local.cjs");

function launcher(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [LAUNCHER, ...args], { cwd: REPO, encoding: "utf8", timeout: 90_000 });
}

/** Runs shell commands after sourcing the cluster's env file, as a user would. */
function sh(envFile: string, commands: string): SpawnSyncReturns<string> {
  return spawnSync("bash", ["-c", `source '${envFile}' && ${commands}`], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, NODE_NO_WARNINGS: "1" },
  });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (status ${String(r.status)}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Ports for a cluster of `size` (planLocalMembers: base + 10 * i), held against other test processes. */
async function reserveBase(size: number): Promise<number> {
  const r = await reservePorts(size * 10);
  reservations.push(r);
  return r.base;
}
const reservations: PortReservation[] = [];

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function pidsOf(dir: string): PidFile {
  const pf = readPids(dir);
  assert.ok(pf !== undefined, `no pid file in ${dir}`);
  return pf;
}

async function statuses(members: MemberEndpoint[]): Promise<MemberStatus[]> {
  return waitHealthy(members, 30_000, () => true);
}

describe("local cluster launcher (npm start), end to end", function () {
  this.timeout(90_000);
  let root: string;
  let dir: string;
  let env: string;
  let base: number;
  let members: MemberEndpoint[];
  const dirs: string[] = [];

  before(async () => {
    ensureBuilt();
    root = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-local-test-"));
    dir = path.join(root, "cluster");
    env = path.join(dir, "cluster.env");
    dirs.push(dir);
    base = await reserveBase(3);
    members = planLocalMembers(3, "127.0.0.1", base);
  });

  after(() => {
    for (const d of dirs) {
      if (readPids(d) === undefined) continue;
      launcher(["stop", "--dir", d]);
      for (const pid of livePids(readPids(d))) process.kill(pid, "SIGKILL");
    }
    fs.rmSync(root, { recursive: true, force: true });
    for (const r of reservations.splice(0)) r.release();
  });

  it("rejects --size 4 with the plan's reason in one line and exit code 1", () => {
    const r = launcher(["start", "--size", "4", "--dir", dir, "--base-port", String(base)]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^raftkv-local: --size 4: masters must be 3, 5 or 7; got 4: an even size adds cost without adding tolerance .*\n$/);
    assert.equal(r.stderr.split("\n").length, 2);
    assert.equal(fs.existsSync(dir), false, "nothing is created for a rejected size");
  });

  let ids: string[];
  it("start --detach returns once healthy and prints members, leader, quorum and the commands to try", async () => {
    const out = ok(launcher(["start", "--detach", "--dir", dir, "--base-port", String(base)]), "start --detach");
    assert.match(out, /3 members · quorum 2 · tolerates 1 failed member\n/);
    for (const m of members) assert.match(out, new RegExp(`  ${m.name} +https://127\\.0\\.0\\.1:${m.clientPort}`));
    assert.equal(out.match(/  leader\n/g)?.length, 1, "exactly one member is marked leader");
    for (const line of [`source ${env}`, "etcdctl put name john", "etcdctl get name", "etcdctl get / --prefix --keys-only", "raftkvctl get / --prefix --keys-only"]) {
      assert.ok(out.includes(`\n  ${line}\n`), `summary lacks "${line}"`);
    }
    assert.match(out, new RegExp(`stop it with: npm run stop -- --dir ${dir}\n`));
    const pf = pidsOf(dir);
    assert.ok(isRaftkvProcess(pf.supervisor), "the supervisor runs in the background");
    assert.deepEqual(Object.keys(pf.members).sort(), members.map((m) => m.name));
    for (const pid of Object.values(pf.members)) assert.ok(isRaftkvProcess(pid));
    const st = await statuses(members);
    assert.ok(st.every((s) => s.healthy));
    ids = st.map((s) => s.id);
  });

  it("cluster.env points at the CA file and puts raftkvctl on PATH", () => {
    const text = fs.readFileSync(env, "utf8");
    assert.match(text, new RegExp(`^export ETCDCTL_CACERT=${path.join(dir, "pki", "ca.crt")}$`, "m"));
    assert.match(text, new RegExp(`^export ETCDCTL_ENDPOINTS=${members.map((m) => `127\\.0\\.0\\.1:${m.clientPort}`).join(",")}$`, "m"));
    assert.match(text, /^export ETCDCTL_API=3$/m);
    assert.match(text, /^export RAFTKVCTL_KEY=/m);
    assert.equal(ok(sh(env, "command -v raftkvctl"), "command -v").trim(), path.join(REPO, "dist", "bin", "raftkvctl"));
    const caPem = fs.readFileSync(path.join(dir, "pki", "ca.crt"), "utf8");
    assert.match(caPem, /^-----BEGIN CERTIFICATE-----/);
  });

  it("etcdctl and raftkvctl give the same output for the quick-start commands", () => {
    const script = (ctl: string) =>
      `${ctl} put name john && ${ctl} get name && ${ctl} put /greeting hello && ${ctl} get / --prefix --keys-only`;
    const viaEtcdctl = ok(sh(env, script("etcdctl")), "etcdctl");
    const viaRaftkvctl = ok(sh(env, script("raftkvctl")), "raftkvctl");
    assert.equal(viaEtcdctl, "OK\nname\njohn\nOK\n/greeting\n\n");
    assert.equal(viaRaftkvctl, viaEtcdctl);
  });

  it("a second start refuses while the cluster runs, and busy ports are named before anything starts", () => {
    const again = launcher(["start", "--dir", dir]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^raftkv-local: a local cluster is already running from .* \(supervisor pid \d+\); run npm run stop -- --dir .* first\n$/);
    const other = path.join(root, "other");
    const busy = launcher(["start", "--detach", "--dir", other, "--base-port", String(base)]);
    assert.equal(busy.status, 1);
    assert.equal(
      busy.stderr,
      `raftkv-local: cannot start: 127.0.0.1:${base}, the client port of raftkv-1, is in use (and 8 more ports); ` +
        "stop whatever listens there (another etcd or raftkv?), or choose other ports with --base-port <n>\n",
    );
    assert.equal(fs.existsSync(path.join(other, "pki")), false);
  });

  it("kill -9 of the leader: writes still succeed and the supervisor restarts it with a visible line", async () => {
    const leader = (await statuses(members)).find((s) => s.isLeader)!;
    const pid = pidsOf(dir).members[leader.name]!;
    process.kill(pid, "SIGKILL");
    // A write in flight at the moment of the crash may time out (as with etcd); the next succeeds.
    await until("a write after the leader died", 30_000, () => {
      const r = sh(env, "etcdctl --command-timeout=3s put after-kill yes");
      return r.status === 0 && r.stdout === "OK\n" ? true : undefined;
    });
    const log = path.join(dir, "logs", "supervisor.log");
    const restarted = await until("the restart line", 30_000, () => {
      const m = new RegExp(`${leader.name} restarted \\(pid (\\d+)\\)`).exec(fs.readFileSync(log, "utf8"));
      return m ? Number(m[1]) : undefined;
    });
    const text = fs.readFileSync(log, "utf8");
    assert.match(text, new RegExp(`${leader.name} \\(pid ${pid}\\) stopped: killed by SIGKILL; restarting in 0\\.5 s \\(attempt 1, log `));
    assert.equal(isRaftkvProcess(pid), false);
    assert.equal(pidsOf(dir).members[leader.name], restarted);
    await until("the restarted member healthy", 30_000, async () =>
      (await fetchAll(members)).every((s) => s?.healthy === true) ? true : undefined,
    );
    assert.equal(ok(sh(env, "raftkvctl get after-kill --print-value-only"), "get"), "yes\n");
  });

  it("stop leaves no process of the cluster behind", () => {
    const pf = pidsOf(dir);
    const all = [pf.supervisor, ...Object.values(pf.members)];
    const out = ok(launcher(["stop", "--dir", dir]), "stop");
    assert.match(out, /stopped the local cluster in .* \(supervisor and 3 members\)/);
    for (const pid of all) assert.equal(isRaftkvProcess(pid), false, `pid ${pid} still runs`);
    assert.equal(readPids(dir), undefined);
    assert.match(ok(launcher(["stop", "--dir", dir]), "second stop"), /no local cluster is running/);
  });

  it("start again resumes the same cluster: same member IDs, same data", async () => {
    ok(launcher(["start", "--detach", "--dir", dir]), "restart");
    assert.deepEqual((await statuses(members)).map((s) => s.id), ids);
    assert.equal(ok(sh(env, "etcdctl get name --print-value-only && etcdctl get after-kill --print-value-only"), "get"), "john\nyes\n");
    const wrongSize = launcher(["start", "--size", "5", "--dir", dir]);
    assert.equal(wrongSize.status, 1);
    ok(launcher(["stop", "--dir", dir]), "stop");
  });

  it("--no-restart leaves a killed member down while the others keep serving", async () => {
    const log = path.join(dir, "logs", "supervisor.log");
    // The supervisor log is appended to across runs: look only at what this run writes.
    const from = fs.existsSync(log) ? fs.statSync(log).size : 0;
    const thisRun = () => fs.readFileSync(log).subarray(from).toString("utf8");
    ok(launcher(["start", "--detach", "--no-restart", "--dir", dir]), "start --no-restart");
    const follower = (await statuses(members)).find((s) => !s.isLeader)!;
    const pid = pidsOf(dir).members[follower.name]!;
    process.kill(pid, "SIGKILL");
    await until("the stays-down line", 20_000, () =>
      thisRun().includes(`${follower.name} (pid ${pid}) stopped: killed by SIGKILL; --no-restart, so it stays down`) ? true : undefined,
    );
    assert.equal(ok(sh(env, "etcdctl put while-down yes"), "put with one member down"), "OK\n");
    assert.equal(pidsOf(dir).members[follower.name], undefined);
    assert.doesNotMatch(thisRun(), new RegExp(`${follower.name} restarted`));
    ok(launcher(["stop", "--dir", dir]), "stop");
  });

  it("--reset starts an empty cluster", async () => {
    const out = ok(launcher(["start", "--detach", "--reset", "--dir", dir]), "start --reset");
    assert.match(out, /--reset: removed /);
    assert.match(out, /issuing a client CA, a peer CA and certificates for 3 members/);
    await statuses(members);
    assert.equal(ok(sh(env, "etcdctl get '' --prefix --keys-only"), "get all"), "");
    ok(launcher(["stop", "--dir", dir]), "stop");
  });

  it("--size 5 starts five members with quorum 3", async () => {
    const dir5 = path.join(root, "five");
    dirs.push(dir5);
    const base5 = await reserveBase(5);
    const out = ok(launcher(["start", "--detach", "--size", "5", "--dir", dir5, "--base-port", String(base5)]), "start --size 5");
    assert.match(out, /5 members · quorum 3 · tolerates 2 failed members\n/);
    assert.match(out, /raftkv-5 +https:\/\/127\.0\.0\.1:/);
    const env5 = path.join(dir5, "cluster.env");
    assert.equal(ok(sh(env5, "etcdctl put five yes && raftkvctl get five --print-value-only"), "put/get"), "OK\nyes\n");
    const pf = pidsOf(dir5);
    assert.equal(Object.keys(pf.members).length, 5);
    ok(launcher(["stop", "--dir", dir5]), "stop");
    for (const pid of [pf.supervisor, ...Object.values(pf.members)]) assert.equal(isRaftkvProcess(pid), false);
  });
});
