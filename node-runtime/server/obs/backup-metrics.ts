/**
 * The backup agent's state (node-runtime/backup/state.ts) as series on the member's /metrics
 * (--backup-state-dir): read at each scrape, so `raftkv_backup_latest_age_seconds` is the age
 * *now* of the newest backup the agent last saw, and keeps growing when the timer stops running
 * or every run fails. Names match the agent's node_exporter textfile. Every series carries the
 * bucket location; none is exported before the agent first ran (an unlabelled gauge would read
 * 0, i.e. "a backup just now").
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { readCounters, type BackupCounters } from "../../backup/state";

export function registerBackupMetrics(registry: Registry, stateDir: string, now: () => number = Date.now): void {
  const registers = [registry];
  // Read by each series' collect (a small file, a few reads per scrape): no cache to go stale.
  const state = (): BackupCounters | undefined => {
    const c = readCounters(stateDir);
    return c.location === undefined ? undefined : c;
  };
  const gauge = (name: string, help: string, value: (c: BackupCounters) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ["location"],
      registers,
      collect() {
        this.reset();
        const c = state();
        const v = c === undefined ? undefined : value(c);
        if (c !== undefined && v !== undefined) this.set({ location: c.location! }, v);
      },
    });
  new Counter({
    name: "raftkv_backup_runs_total",
    help: "Backup agent runs on this host by result.",
    labelNames: ["location", "result"],
    registers,
    collect() {
      this.reset();
      const c = state();
      if (c === undefined) return;
      for (const result of ["uploaded", "skipped", "failed"] as const) this.inc({ location: c.location!, result }, c[result]);
    },
  });
  gauge("raftkv_backup_latest_age_seconds", "Age now of the newest backup in the bucket the agent last saw.", (c) =>
    c.latestTakenSec === undefined ? undefined : Math.max(0, Math.floor(now() / 1000) - c.latestTakenSec),
  );
  gauge("raftkv_backup_latest_timestamp_seconds", "When the newest backup in the bucket the agent last saw was taken (Unix time).", (c) => c.latestTakenSec);
  gauge("raftkv_backup_last_run_timestamp_seconds", "When the backup agent on this host last ran, whatever the result (Unix time).", (c) => c.lastRunSec);
  gauge("raftkv_backup_last_success_timestamp_seconds", "When this host last uploaded a backup (Unix time).", (c) => c.lastSuccessSec);
  gauge("raftkv_backup_last_size_bytes", "Size of the last backup this host uploaded.", (c) => c.lastSize);
  gauge("raftkv_backup_last_revision", "Store revision of the last backup this host uploaded.", (c) => c.lastRevision);
  gauge("raftkv_backup_last_duration_seconds", "Time the last upload took, snapshot included.", (c) => c.lastDurationSec);
}
