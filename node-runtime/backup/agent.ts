/**
 * One run of the backup agent (`raftkvctl backup run`, started by the raftkv-backup.timer on
 * every master): if this member leads the cluster (or the run is not leader-gated), stream a
 * snapshot from it into a local file, check it, upload it, then drop backups older than the
 * retention (never the newest). Every run, uploaded or skipped, reports the age of the newest
 * backup under the prefix: in its log line, in a node-exporter textfile and in its state file,
 * which the member serves on /metrics (--backup-state-dir, node-runtime/server/obs/backup-metrics.ts),
 * so an alert on `raftkv_backup_latest_age_seconds` fires when backups stop, on any master.
 */
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { BoltReader } from "../kv/etcd-backend/bbolt-reader";
import { snapshotStatus } from "../kv/etcd-backend/status";
import { backupKey, backupsNewestFirst, BackupError, expiredBackups, isS3Url, normalizePrefix, parseS3Url, type BackupReason } from "./naming";
import type { BackupStore } from "./s3-store";
import { COUNTERS_FILE, readCounters, type BackupCounters } from "./state";

/** What the agent needs from the member it talks to. */
export interface MemberView {
  /** This member's name, and the leader's (undefined while there is none). */
  identify(): Promise<{ name: string; leader: string | undefined }>;
  /** Streams an etcd-format snapshot of this member into `file`. */
  snapshot(file: string): Promise<void>;
}

export interface BackupRunOptions {
  bucket: string;
  prefix: string;
  reason: BackupReason;
  /** Upload only if this member is the leader (the timer on every master sets it). */
  ifLeader: boolean;
  /** Skip when a backup for the same reason is younger than this (one pre-change backup per change). */
  skipIfNewerSec?: number;
  retentionDays: number;
  /** Where the snapshot file is staged (it is removed after the upload). */
  workDir: string;
  /** Where the textfile metrics and counters live; none written when undefined. */
  stateDir?: string;
  now?: () => Date;
}

export interface BackupOutcome {
  uploaded: boolean;
  /** Why nothing was uploaded. */
  skipped?: string;
  key?: string;
  size?: number;
  revision?: number;
  keys?: number;
  tookSec?: number;
  /** Age of the newest backup under the prefix after this run; undefined when there is none. */
  latestAgeSec?: number;
  latestKey?: string;
  pruned: string[];
  /** The one line the run logs. */
  line: string;
}

export const METRICS_FILE = "raftkv_backup.prom";

export async function runBackup(member: MemberView, store: BackupStore, opts: BackupRunOptions): Promise<BackupOutcome> {
  const now = opts.now ?? (() => new Date());
  const prefix = normalizePrefix(opts.prefix);
  const counters = readCounters(opts.stateDir);
  counters.location = `s3://${opts.bucket}/${prefix}`;
  counters.lastRunSec = Math.floor(now().getTime() / 1000);
  try {
    const outcome = await attempt(member, store, opts, prefix, now);
    if (outcome.latestAgeSec !== undefined) counters.latestTakenSec = counters.lastRunSec - outcome.latestAgeSec;
    else delete counters.latestTakenSec;
    if (outcome.uploaded) {
      counters.uploaded++;
      counters.lastSuccessSec = Math.floor(now().getTime() / 1000);
      counters.lastSize = outcome.size;
      counters.lastRevision = outcome.revision;
      counters.lastDurationSec = outcome.tookSec;
    } else counters.skipped++;
    writeState(opts.stateDir, counters, outcome.latestAgeSec);
    return outcome;
  } catch (err) {
    counters.failed++;
    writeState(opts.stateDir, counters, undefined);
    throw err;
  }
}

async function attempt(member: MemberView, store: BackupStore, opts: BackupRunOptions, prefix: string, now: () => Date): Promise<BackupOutcome> {
  const { name, leader } = await member.identify();
  const where = `s3://${opts.bucket}/${prefix}`;
  const latest = async () => {
    const newest = backupsNewestFirst(await store.list(opts.bucket, prefix))[0];
    return newest === undefined ? undefined : { key: newest.key, ageSec: Math.max(0, Math.round((now().getTime() - newest.taken.getTime()) / 1000)), newest };
  };
  const ageText = (l: { key: string; ageSec: number } | undefined) => (l === undefined ? `no backup under ${where} yet` : `newest backup s3://${opts.bucket}/${l.key} is ${l.ageSec} s old`);

  if (opts.ifLeader && leader !== name) {
    const l = await latest();
    const why = leader === undefined ? "the cluster has no leader" : `${name} is not the leader (${leader} is)`;
    return { uploaded: false, skipped: why, pruned: [], ...(l ? { latestAgeSec: l.ageSec, latestKey: l.key } : {}), line: `backup skipped: ${why}; ${ageText(l)}` };
  }
  if (opts.skipIfNewerSec !== undefined) {
    const recent = backupsNewestFirst(await store.list(opts.bucket, prefix)).find((b) => b.reason === opts.reason);
    if (recent !== undefined && now().getTime() - recent.taken.getTime() < opts.skipIfNewerSec * 1000) {
      const l = await latest();
      const why = `a ${opts.reason} backup (s3://${opts.bucket}/${recent.key}) is younger than ${opts.skipIfNewerSec} s`;
      return { uploaded: false, skipped: why, pruned: [], ...(l ? { latestAgeSec: l.ageSec, latestKey: l.key } : {}), line: `backup skipped: ${why}; ${ageText(l)}` };
    }
  }

  const before = await latest();
  mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  const started = now();
  const file = path.join(opts.workDir, `backup-${process.pid}-${started.getTime()}.db`);
  try {
    await member.snapshot(file);
    const reader = BoltReader.openFile(file);
    let status;
    try {
      status = snapshotStatus(reader);
    } finally {
      reader.close();
    }
    const key = backupKey(prefix, started, opts.reason, name, status.revision);
    await store.put(opts.bucket, key, file);
    const tookSec = Math.round((now().getTime() - started.getTime()) / 100) / 10;
    const pruned = expiredBackups(await store.list(opts.bucket, prefix), now(), opts.retentionDays);
    for (const k of pruned) await store.delete(opts.bucket, k);
    const previous = before === undefined ? "it is the first backup" : `the previous one was ${before.ageSec} s old`;
    return {
      uploaded: true,
      key,
      size: status.totalSize,
      revision: status.revision,
      keys: status.totalKey,
      tookSec,
      latestAgeSec: 0,
      latestKey: key,
      pruned,
      line:
        `backup uploaded: s3://${opts.bucket}/${key} (${opts.reason}, ${status.totalSize} bytes, revision ${status.revision}, ${status.totalKey} keys) in ${tookSec} s; ` +
        `newest backup is 0 s old, ${previous}${pruned.length > 0 ? `; removed ${pruned.length} older than ${opts.retentionDays} days` : ""}`,
    };
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`backup from ${name} failed: ${(err as Error).message}`);
  } finally {
    rmSync(file, { force: true });
    rmSync(`${file}.part`, { force: true });
  }
}

/** The textfile metrics (node_exporter's textfile collector format). */
export function renderMetrics(c: BackupCounters, latestAgeSec: number | undefined): string {
  const lines: string[] = [];
  const metric = (name: string, type: "gauge" | "counter", help: string, samples: Array<[string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
  };
  metric("raftkv_backup_runs_total", "counter", "Backup agent runs on this host by result.", [
    ['{result="uploaded"}', c.uploaded],
    ['{result="skipped"}', c.skipped],
    ['{result="failed"}', c.failed],
  ]);
  if (latestAgeSec !== undefined) metric("raftkv_backup_latest_age_seconds", "gauge", "Age of the newest backup in the bucket when this host last looked.", [["", latestAgeSec]]);
  if (c.lastSuccessSec !== undefined) metric("raftkv_backup_last_success_timestamp_seconds", "gauge", "When this host last uploaded a backup (Unix time).", [["", c.lastSuccessSec]]);
  if (c.lastSize !== undefined) metric("raftkv_backup_last_size_bytes", "gauge", "Size of the last backup this host uploaded.", [["", c.lastSize]]);
  if (c.lastRevision !== undefined) metric("raftkv_backup_last_revision", "gauge", "Store revision of the last backup this host uploaded.", [["", c.lastRevision]]);
  if (c.lastDurationSec !== undefined) metric("raftkv_backup_last_duration_seconds", "gauge", "Time the last upload took, snapshot included.", [["", c.lastDurationSec]]);
  return lines.join("\n") + "\n";
}

function writeState(stateDir: string | undefined, c: BackupCounters, latestAgeSec: number | undefined): void {
  if (stateDir === undefined) return;
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  const put = (name: string, text: string) => {
    const tmp = path.join(stateDir, `.${name}.tmp`);
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, path.join(stateDir, name));
  };
  put(COUNTERS_FILE, JSON.stringify(c) + "\n");
  put(METRICS_FILE, renderMetrics(c, latestAgeSec));
}

/** Resolves a restore source into a local file: an s3:// object, the newest backup under an s3:// prefix, or a local path. */
export async function fetchSnapshot(source: string, store: () => BackupStore, file: string): Promise<{ from: string }> {
  if (!isS3Url(source)) {
    try {
      copyFileSync(source, `${file}.part`);
      renameSync(`${file}.part`, file);
    } catch (err) {
      throw new BackupError(`reading ${source}: ${(err as Error).message}`);
    }
    return { from: source };
  }
  const loc = parseS3Url(source);
  const s = store();
  let key = loc.key;
  if (key === "" || key.endsWith("/")) {
    const newest = backupsNewestFirst(await s.list(loc.bucket, key))[0];
    if (newest === undefined) throw new BackupError(`no backup under ${source}`);
    key = newest.key;
  }
  await s.get(loc.bucket, key, file);
  return { from: `s3://${loc.bucket}/${key}` };
}
