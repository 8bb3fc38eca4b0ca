/**
 * Backup and restore times in etcd's snapshot format, written to bench/results/snapshot.md.
 * For N keys (default 100k and 1M; 60-byte keys, 100-byte values, one version each):
 *
 *   backup:   the store's etcd-format snapshot (bbolt + SHA-256) streamed to a file and fsynced —
 *             what Maintenance/Snapshot produces, minus the network
 *   status:   `raftkvctl snapshot status` (our reader) and Debian's `etcdctl snapshot status` on it
 *   restore:  `raftkv snapshot restore` into a fresh data directory (read, verify the hash, build
 *             the state machine snapshot, write snap + WAL + member.json), and for comparison
 *             `etcdctl snapshot restore` of the same file
 *
 *   node --expose-gc --max-old-space-size=6144 --import tsx bench/snapshot.bench.ts [N ...]
 */
import { spawnSync } from "node:child_process";
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { KvStore } from "../node-runtime/kv/store";
import { etcdSnapshotChunks } from "../node-runtime/kv/etcd-backend/export";
import { BoltReader } from "../node-runtime/kv/etcd-backend/bbolt-reader";
import { snapshotStatus } from "../node-runtime/kv/etcd-backend/status";
import { restoreSnapshot } from "../node-runtime/server/snapshot-restore";

const VALUE = Buffer.alloc(100, "v");
const gc = (globalThis as { gc?: () => void }).gc;
const key = (i: number): Buffer => Buffer.from(`/registry/pods/ns-${i % 100}/pod-${i.toString().padStart(7, "0")}-abcdefghijklmnopqrst`);

async function timed<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [v, Number(process.hrtime.bigint() - t) / 1e6];
}

interface Row {
  n: number;
  fileBytes: number;
  backupMs: number;
  backupHeapMiB: number;
  statusMs: number;
  etcdctlStatusMs: number;
  restoreMs: number;
  etcdctlRestoreMs: number;
}

async function measure(n: number, dir: string): Promise<Row> {
  let store: KvStore | undefined = new KvStore();
  for (let i = 0; i < n; i++) store.apply(i + 1, { type: "put", req: { key: key(i), value: VALUE } });
  gc?.();
  const file = path.join(dir, `snap-${n}.db`);
  const heapBefore = process.memoryUsage().heapUsed;
  let heapPeak = heapBefore;
  const [, backupMs] = await timed(() => {
    const fd = openSync(file, "w");
    const snap = etcdSnapshotChunks({
      kv: store!.view(),
      members: [{ id: 1, name: "m1", peerURLs: ["https://127.0.0.1:2380"], clientURLs: [], isLearner: false }],
      removedMembers: [],
    });
    let chunks = 0;
    for (const c of snap.chunks) {
      writeSync(fd, c);
      if (++chunks % 256 === 0) heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    }
    fsyncSync(fd);
    closeSync(fd);
  });
  store = undefined;
  gc?.();
  const [status, statusMs] = await timed(() => {
    const r = BoltReader.openFile(file);
    try {
      return snapshotStatus(r);
    } finally {
      r.close();
    }
  });
  const [etcdStatus, etcdctlStatusMs] = await timed(() => spawnSync("etcdctl", ["snapshot", "status", file, "-w", "json"], { encoding: "utf8" }));
  const theirs = JSON.parse(etcdStatus.stdout) as { hash: number; totalKey: number };
  if (theirs.hash !== status.hash || theirs.totalKey !== status.totalKey) throw new Error(`status differs: ${etcdStatus.stdout} vs ${JSON.stringify(status)}`);

  const flags = {
    file,
    name: "m1",
    initialCluster: "m1=https://127.0.0.1:2380",
    initialClusterToken: "bench",
    initialAdvertisePeerUrls: "https://127.0.0.1:2380",
  };
  const [, restoreMs] = await timed(() => restoreSnapshot({ ...flags, dataDir: path.join(dir, `raftkv-${n}`) }));
  gc?.();
  const [er, etcdctlRestoreMs] = await timed(() =>
    spawnSync(
      "etcdctl",
      ["snapshot", "restore", file, "--name=m1", "--initial-cluster=m1=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380", `--data-dir=${path.join(dir, `etcd-${n}`)}`],
      { encoding: "utf8" },
    ),
  );
  if (er.status !== 0) throw new Error(`etcdctl snapshot restore failed: ${er.stderr}`);
  const row: Row = {
    n,
    fileBytes: statSync(file).size,
    backupMs,
    backupHeapMiB: (heapPeak - heapBefore) / 2 ** 20,
    statusMs,
    etcdctlStatusMs,
    restoreMs,
    etcdctlRestoreMs,
  };
  for (const d of [`raftkv-${n}`, `etcd-${n}`]) rmSync(path.join(dir, d), { recursive: true, force: true });
  rmSync(file, { force: true });
  return row;
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((x) => x > 0);
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-snapbench-"));
  const rows: Row[] = [];
  try {
    for (const n of sizes.length > 0 ? sizes : [100_000, 1_000_000]) {
      const row = await measure(n, dir);
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (x: number): string => x.toFixed(0);
  const md = [
    "# Snapshot backup and restore (etcd format)",
    "",
    `Measured ${new Date().toISOString()} on ${os.cpus().length} cores (load average ${os.loadavg()[0]!.toFixed(1)} at the end: the box is shared),`,
    `Node ${process.version}. Keys ~60 bytes, values 100 bytes, one version each. \`node --expose-gc --max-old-space-size=6144 --import tsx bench/snapshot.bench.ts\`.`,
    "",
    "| keys | file | backup (stream + fsync) | backup heap growth | status (ours) | etcdctl status | restore (raftkv) | etcdctl restore |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.n.toLocaleString("en")} | ${(r.fileBytes / 2 ** 20).toFixed(1)} MiB | ${f(r.backupMs)} ms | ${r.backupHeapMiB.toFixed(1)} MiB | ${f(r.statusMs)} ms | ${f(r.etcdctlStatusMs)} ms | ${f(r.restoreMs)} ms | ${f(r.etcdctlRestoreMs)} ms |`,
    ),
    "",
    "Backup heap growth is the heap above the store itself while the file is produced (sampled every 256 chunks of 64 KiB):",
    "the export holds one chunk, the planning pass's per-leaf sizes and the branch keys, not the file.",
    "",
  ].join("\n");
  mkdirSync(path.join(__dirname, "results"), { recursive: true });
  writeFileSync(path.join(__dirname, "results", "snapshot.md"), md);
  process.stdout.write(md);
}

void main();
