/**
 * `snapshot restore` and `snapshot status` without a cluster: what they accept and refuse (with
 * etcdctl's messages and exit codes, compared with Debian's etcdctl 3.4), and the data directory
 * a restore writes.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encodeCommand, KvStore, type KvCommand } from "../../node-runtime/kv";
import { etcdSnapshotChunks } from "../../node-runtime/kv/etcd-backend/export";
import { decodeSnapshot } from "../../node-runtime/kv/snapshot";
import { runCtl } from "../../node-runtime/ctl/program";
import { readMeta, SnapshotStore, WriteAheadLog } from "../../node-runtime/storage";
import { ETCDCTL_BIN } from "../helpers/etcd-reference";
import { runCli } from "../helpers/run-cli";

async function ctl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCtl(args, { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

function snapshotFile(dir: string): { file: string; store: KvStore } {
  const kv = new KvStore();
  let i = 1;
  const apply = (c: KvCommand): void => void kv.applyEntry(i++, encodeCommand(c));
  apply({ type: "leaseGrant", req: { ID: "99", TTL: 60 } } as KvCommand);
  apply({ type: "put", req: { key: Buffer.from("x"), value: Buffer.from("1") } } as KvCommand);
  apply({ type: "put", req: { key: Buffer.from("x"), value: Buffer.from("2"), lease: "99" } } as KvCommand);
  apply({ type: "put", req: { key: Buffer.from("y"), value: Buffer.from("3") } } as KvCommand);
  apply({ type: "compact", req: { revision: 3 } } as KvCommand);
  const file = path.join(dir, "s.db");
  fs.writeFileSync(file, Buffer.concat([...etcdSnapshotChunks({ kv: kv.view(), members: [], removedMembers: [] }).chunks]));
  return { file, store: kv };
}

const CLUSTER = ["--name=m1", "--initial-cluster=m1=https://127.0.0.1:2380,m2=https://127.0.0.1:2381", "--initial-advertise-peer-urls=https://127.0.0.1:2380", "--initial-cluster-token=t1"];

describe("snapshot restore / status (offline)", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-restore-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes a member data directory: member.json, a snapshot at index = members, a WAL pointing at it", async () => {
    const { file, store } = snapshotFile(dir);
    const dataDir = path.join(dir, "m1");
    const r = await ctl(["snapshot", "restore", file, ...CLUSTER, `--data-dir=${dataDir}`]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "");
    const meta = await readMeta(dataDir);
    assert.equal(meta?.name, "m1");
    assert.equal(meta?.clusterToken, "t1");
    const snap = await new SnapshotStore(path.join(dataDir, "snap")).loadLatest();
    assert.equal(snap?.meta.index, 2);
    assert.equal(snap?.meta.term, 1);
    assert.equal(snap?.meta.confState.voters.length, 2);
    const payload = Buffer.from(snap!.data);
    const msLen = payload.readUInt32LE(0);
    const membership = JSON.parse(payload.subarray(4, 4 + msLen).toString()) as { initialized: boolean; members: Array<{ name: string; id: number }> };
    assert.equal(membership.initialized, true);
    assert.deepEqual(membership.members.map((m) => m.name).sort(), ["m1", "m2"]);
    assert.equal(meta?.memberId, membership.members.find((m) => m.name === "m1")!.id.toString(16));
    const kv = decodeSnapshot(payload.subarray(4 + msLen));
    const want = decodeSnapshot(store.snapshot());
    assert.equal(kv.appliedIndex, 2);
    assert.equal(kv.revision, want.revision);
    assert.equal(kv.compactRevision, 3);
    assert.deepEqual(kv.leases, want.leases);
    assert.deepEqual(
      kv.log.map((x) => [x.ki.key, x.mod, x.sub, x.create, x.ver, x.val, x.lease]),
      want.log.map((x) => [x.ki.key, x.mod, x.sub, x.create, x.ver, x.val, x.lease]),
    );
    const { wal, recovered } = await WriteAheadLog.open(path.join(dataDir, "wal"));
    await wal.close();
    assert.equal(recovered.snapshot?.index, 2);
    assert.deepEqual(recovered.hardState, { term: 1, vote: 0, commit: 2 });
    // Nothing is left beside the data directory.
    assert.deepEqual(fs.readdirSync(dir).sort(), ["m1", "s.db"]);
  });

  it("refuses what etcdctl refuses, with its messages", async () => {
    const { file } = snapshotFile(dir);
    const cases: Array<[string[], string]> = [
      [["snapshot", "restore"], "Error: snapshot restore requires exactly one argument\n"],
      [["snapshot", "restore", file, ...CLUSTER.slice(1), "--name=m3"], 'Error: couldn\'t find local name "m3" in the initial cluster configuration\n'],
      [
        ["snapshot", "restore", file, ...CLUSTER.slice(0, 2), "--initial-advertise-peer-urls=https://127.0.0.1:9999"],
        "Error: --initial-cluster has m1=https://127.0.0.1:2380 but missing from --initial-advertise-peer-urls=https://127.0.0.1:9999\n",
      ],
      [["snapshot", "restore", file, ...CLUSTER, `--data-dir=${dir}`], `Error: data-dir ${JSON.stringify(dir)} exists\n`],
    ];
    for (const [args, err] of cases) {
      const r = await ctl(args);
      assert.equal(r.err, err, args.join(" "));
      assert.notEqual(r.code, 0);
    }
  });

  it("checks the SHA-256 like etcdctl; --skip-hash-check accepts a bare database", async () => {
    const { file } = snapshotFile(dir);
    const data = fs.readFileSync(file);
    const bad = path.join(dir, "bad.db");
    const flipped = Buffer.from(data);
    flipped[flipped.length - 1] ^= 1;
    fs.writeFileSync(bad, flipped);
    const ours = await ctl(["snapshot", "restore", bad, ...CLUSTER, `--data-dir=${path.join(dir, "a")}`]);
    const theirs = await runCli(ETCDCTL_BIN, ["snapshot", "restore", bad, "--name=m1", "--initial-cluster=m1=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380", `--data-dir=${path.join(dir, "b")}`]);
    assert.match(ours.err, /^Error: expected sha256 \[[0-9 ]+\], got \[[0-9 ]+\]\n$/);
    assert.equal(ours.err, theirs.stderr.split("\n").filter((l) => l.startsWith("Error:")).join("\n") + "\n");
    assert.equal(fs.existsSync(path.join(dir, "a")), false);

    const bare = path.join(dir, "bare.db");
    fs.writeFileSync(bare, data.subarray(0, data.length - 32));
    const refused = await ctl(["snapshot", "restore", bare, ...CLUSTER, `--data-dir=${path.join(dir, "c")}`]);
    assert.equal(refused.err, "Error: snapshot missing hash but --skip-hash-check=false\n");
    const skipped = await ctl(["snapshot", "restore", bare, ...CLUSTER, "--skip-hash-check", `--data-dir=${path.join(dir, "d")}`]);
    assert.equal(skipped.code, 0, skipped.err);
  });

  it("status refuses what is not a database as etcdctl does", async () => {
    const junk = path.join(dir, "junk");
    fs.writeFileSync(junk, Buffer.alloc(20_000, 0x41));
    const small = path.join(dir, "small");
    fs.writeFileSync(small, Buffer.alloc(100));
    for (const f of [junk, small, path.join(dir, "missing")]) {
      const ours = await ctl(["snapshot", "status", f]);
      const theirs = await runCli(ETCDCTL_BIN, ["snapshot", "status", f]);
      assert.equal(ours.err, theirs.stderr, f);
      assert.equal(ours.code, theirs.code, f);
    }
  });
});
