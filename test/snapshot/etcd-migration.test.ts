/**
 * Snapshots move between raftkv and a real etcd 3.4 in both directions, checked with Debian's
 * etcd/etcdctl binaries and the shipped bundles:
 *
 *   raftkv cluster → `etcdctl snapshot save` → `etcdctl snapshot status` (= `raftkvctl snapshot status`)
 *     → `etcdctl snapshot restore` → real etcd serves the same keys, values, revisions, leases, compaction
 *   real etcd → `etcdctl snapshot save` → `raftkv snapshot restore` ×3 → a raftkv 3-member cluster serves the same
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ETCDCTL_BIN, startReferenceEtcd, type ReferenceEtcd } from "../helpers/etcd-reference";
import { runCli, type CliResult } from "../helpers/run-cli";
import { BUNDLE, REPO, TestCluster, ensureBuilt } from "../server/harness/cluster";

const RAFTKVCTL = path.join(REPO, "dist", "raftkvctl.cjs");
type Env = Record<string, string>;

async function ok(p: Promise<CliResult>, what: string): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `${what} failed (${String(r.code)}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const etcdctl = (env: Env, args: string[], stdin?: string): Promise<CliResult> => runCli(ETCDCTL_BIN, args, env, stdin === undefined ? {} : { stdin });
const node = (file: string, args: string[], env: Env = {}): Promise<CliResult> => runCli(process.execPath, [file, ...args], env);

/** Writes a history with overwrites, deletes, multi-op txns (sub revisions), a large value, a lease and a compaction. */
async function seed(env: Env): Promise<{ lease: string }> {
  const put = (k: string, v: string) => ok(etcdctl(env, ["put", k, v]), `put ${k}`);
  await put("a", "1");
  await put("b", "2");
  await put("a", "3");
  await ok(etcdctl(env, ["del", "b"]), "del b");
  for (let t = 0; t < 3; t++) {
    const ops = Array.from({ length: 100 }, (_, i) => `put k/${t}/${String(i).padStart(3, "0")} value-${t}-${i}-${"x".repeat((i * 37) % 200)}`);
    await ok(etcdctl(env, ["txn"], `\n${ops.join("\n")}\n\n\n`), `txn ${t}`);
  }
  await put("big", "B".repeat(60_000));
  const grant = await ok(etcdctl(env, ["lease", "grant", "900"]), "lease grant");
  const lease = /lease ([0-9a-f]+) granted/.exec(grant)![1]!;
  await ok(etcdctl(env, ["put", "leased/1", "l1", `--lease=${lease}`]), "put leased/1");
  await ok(etcdctl(env, ["put", "leased/2", "l2", `--lease=${lease}`]), "put leased/2");
  await put("a", "4");
  await ok(etcdctl(env, ["compaction", "4"]), "compaction");
  await put("k/1/050", "rewritten");
  return { lease };
}

interface Observed {
  revision: number;
  kvs: unknown[];
  history: unknown[];
  compactedRead: string;
  leases: string;
  ttlKeys: string[];
  grantedTtl: number;
}

/** What a client sees: every key with its revisions, a historical read, the compaction, the lease. */
async function observe(env: Env, lease: string): Promise<Observed> {
  const all = JSON.parse(await ok(etcdctl(env, ["get", "", "--prefix", "-w", "json"]), "get all")) as { header: { revision: number }; kvs: unknown[] };
  const hist = JSON.parse(await ok(etcdctl(env, ["get", "a", "--rev=5", "-w", "json"]), "get a@5")) as { kvs: unknown[] };
  const compacted = await etcdctl(env, ["get", "a", "--rev=3"]);
  const leases = await ok(etcdctl(env, ["lease", "list"]), "lease list");
  const ttl = JSON.parse(await ok(etcdctl(env, ["lease", "timetolive", lease, "--keys", "-w", "json"]), "timetolive")) as { "granted-ttl": number; keys: string[] };
  return {
    revision: all.header.revision,
    kvs: all.kvs,
    history: hist.kvs,
    compactedRead: `${String(compacted.code)} ${compacted.stderr.trim().split("\n").pop() ?? ""}`,
    leases,
    ttlKeys: [...ttl.keys].sort(),
    grantedTtl: ttl["granted-ttl"],
  };
}

function flagValue(flags: readonly string[], name: string): string {
  const f = flags.find((x) => x.startsWith(`--${name}=`));
  if (!f) throw new Error(`no --${name} in ${flags.join(" ")}`);
  return f.slice(name.length + 3);
}

const RESTORE_FLAGS = ["name", "data-dir", "initial-cluster", "initial-cluster-token", "initial-advertise-peer-urls"];
const restoreArgs = (flags: readonly string[]): string[] => RESTORE_FLAGS.map((n) => `--${n}=${flagValue(flags, n)}`);

async function statusBoth(file: string): Promise<void> {
  for (const w of ["json", "table", "simple"]) {
    const theirs = await ok(etcdctl({}, ["snapshot", "status", file, "-w", w]), `etcdctl snapshot status -w ${w}`);
    const ours = await ok(node(RAFTKVCTL, ["snapshot", "status", file, "-w", w]), `raftkvctl snapshot status -w ${w}`);
    assert.equal(ours, theirs, `snapshot status -w ${w}`);
  }
}

describe("snapshots move between raftkv and etcd 3.4", function () {
  this.timeout(180_000);
  const cleanups: Array<() => Promise<void>> = [];
  let tmp: string;

  before(() => {
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-snap-"));
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("raftkv snapshot → etcdctl snapshot status and restore → etcd serves the same data", async () => {
    const src = await TestCluster.start({ size: 3 });
    cleanups.push(() => src.destroy());
    const env = src.ctlEnv();
    const { lease } = await seed(env);
    const before = await observe(env, lease);
    // snapshot save talks to one member.
    const one = src.ctlEnv([(await src.leader())]);

    const file = path.join(tmp, "from-raftkv.db");
    const saved = await ok(etcdctl(one, ["snapshot", "save", file]), "etcdctl snapshot save");
    assert.match(saved, /Snapshot saved at/);
    await statusBoth(file);
    const st = JSON.parse(await ok(etcdctl({}, ["snapshot", "status", file, "-w", "json"]), "status")) as { revision: number };
    assert.equal(st.revision, before.revision);

    // raftkvctl saves the same format from the same member.
    const file2 = path.join(tmp, "from-raftkv-ctl.db");
    await ok(node(RAFTKVCTL, ["snapshot", "save", file2], one), "raftkvctl snapshot save");
    await statusBoth(file2);

    const etcd: ReferenceEtcd = await startReferenceEtcd({
      name: "restored",
      beforeStart: async (flags) => {
        await ok(etcdctl({}, ["snapshot", "restore", file, ...restoreArgs(flags)]), "etcdctl snapshot restore");
      },
    });
    cleanups.push(() => etcd.stop());
    const after = await observe(etcd.ctlEnv, lease);
    assert.deepEqual(after, before);
  });

  it("etcd snapshot → raftkv snapshot restore → a raftkv 3-member cluster serves the same data", async () => {
    const etcd = await startReferenceEtcd({ name: "source" });
    cleanups.push(() => etcd.stop());
    const { lease } = await seed(etcd.ctlEnv);
    const before = await observe(etcd.ctlEnv, lease);
    const file = path.join(tmp, "from-etcd.db");
    await ok(etcdctl(etcd.ctlEnv, ["snapshot", "save", file]), "etcdctl snapshot save");
    await statusBoth(file);

    const dst = await TestCluster.start({
      size: 3,
      beforeStart: async (c) => {
        for (const m of c.members) {
          const r = await node(BUNDLE, ["snapshot", "restore", file, ...restoreArgs(c.flags(m))]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stderr, /^restored snapshot .* revision \d+, compacted at 4,/);
        }
      },
    });
    cleanups.push(() => dst.destroy());
    const env = dst.ctlEnv();
    await dst.leader();
    const after = await observe(env, lease);
    assert.deepEqual(after, before);
    // Every member holds the data, not only the one answering.
    for (const m of dst.members) {
      const one = dst.ctlEnv([m.name]);
      const r = JSON.parse(await ok(etcdctl(one, ["get", "big", "--consistency=s", "-w", "json"]), `get big from ${m.name}`)) as { kvs: Array<{ value: string }> };
      assert.equal(Buffer.from(r.kvs[0]!.value, "base64").toString(), "B".repeat(60_000));
    }
    // The restored cluster continues from the restored revision.
    await ok(etcdctl(env, ["put", "after", "restore"]), "put after restore");
    const next = JSON.parse(await ok(etcdctl(env, ["get", "after", "-w", "json"]), "get after")) as { kvs: Array<{ mod_revision: number }> };
    assert.equal(next.kvs[0]!.mod_revision, before.revision + 1);

    // The restored data directories survive a full-cluster restart (snapshot + WAL as written by restore).
    for (const m of dst.members) await dst.kill(m.name);
    for (const m of dst.members) dst.startMember(m.name);
    await dst.waitHealthy();
    await dst.leader();
    const restarted = await observe(env, lease);
    assert.equal(restarted.revision, before.revision + 1);
    assert.deepEqual({ ...restarted, revision: 0, kvs: restarted.kvs.length }, { ...before, revision: 0, kvs: before.kvs.length + 1 });

    // And back: a snapshot of the restored cluster reads the same in etcdctl.
    const back = path.join(tmp, "back.db");
    await ok(etcdctl(dst.ctlEnv([dst.members[0]!.name]), ["snapshot", "save", back]), "snapshot save back");
    await statusBoth(back);
  });
});
