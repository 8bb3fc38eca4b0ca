/**
 * What the backup agent keeps between runs in its state directory (backup-counters.json): run
 * counts, the last upload's figures and when the newest backup under the prefix was taken. The
 * agent writes it after every run; the member reads it at each /metrics scrape
 * (--backup-state-dir), so the newest backup's age keeps growing there even when the agent stops
 * running, which a textfile written by the agent cannot show.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";

export const COUNTERS_FILE = "backup-counters.json";

export interface BackupCounters {
  uploaded: number;
  skipped: number;
  failed: number;
  /** s3://bucket/prefix/ the runs look at. */
  location?: string;
  /** When this host's agent last ran, whatever the result (Unix seconds). */
  lastRunSec?: number;
  /** When the newest backup under the prefix was taken, as the last successful look saw it (Unix seconds). */
  latestTakenSec?: number;
  lastSuccessSec?: number;
  lastSize?: number;
  lastRevision?: number;
  lastDurationSec?: number;
}

/** The counters in `stateDir`, zero when the agent never ran there (or the file is unreadable). */
export function readCounters(stateDir: string | undefined): BackupCounters {
  if (stateDir === undefined) return { uploaded: 0, skipped: 0, failed: 0 };
  try {
    const c = JSON.parse(readFileSync(path.join(stateDir, COUNTERS_FILE), "utf8")) as BackupCounters;
    return { ...c, uploaded: c.uploaded ?? 0, skipped: c.skipped ?? 0, failed: c.failed ?? 0 };
  } catch {
    return { uploaded: 0, skipped: 0, failed: 0 };
  }
}
