/**
 * State-machine snapshots in their own directory, one file each, written atomically and
 * verified on load. The newest `keep` are retained; older ones and leftover temp files from
 * an interrupted save are removed after each successful save.
 */
import { dirname, join } from "node:path";
import type { Snapshot } from "../raft/types";
import { crc32cInSteps } from "./crc32c";
import { fsyncDir, TEMP_SUFFIX, writeFileAtomic } from "./durable-fs";
import { nodeFs, type StorageFs } from "./fs";
import { SnapshotCorruptionError } from "./errors";
import { decodeSnapshotFile, encodeSnapshotFile, parseSnapshotFileName, snapshotFileName } from "./snapshot-file";
import { stderrLogger, type StorageLogger } from "./logger";

export interface SnapshotStoreOptions {
  /** How many snapshots to keep (newest first). Default 3. */
  keep?: number;
  /** Receives the warning when a damaged newest snapshot is skipped. Default: stderr. */
  logger?: StorageLogger;
  /** Default: the real file system. */
  fs?: StorageFs;
}

export const DEFAULT_SNAPSHOTS_KEPT = 3;

export class SnapshotStore {
  private readonly keep: number;
  private readonly logger: StorageLogger;
  private readonly fs: StorageFs;
  /** Saves run one at a time so pruning never races another save's temp file. */
  private tail: Promise<unknown> = Promise.resolve();

  /** `dir` is the snapshot directory itself; it is created on the first save. */
  constructor(
    readonly dir: string,
    opts: SnapshotStoreOptions = {},
  ) {
    this.keep = opts.keep ?? DEFAULT_SNAPSHOTS_KEPT;
    if (!Number.isSafeInteger(this.keep) || this.keep < 1) throw new RangeError("keep must be a positive integer");
    this.logger = opts.logger ?? stderrLogger;
    this.fs = opts.fs ?? nodeFs;
  }

  /**
   * Durably writes `snap`; resolves with its path once it (and its directory entry) is synced.
   * `pause`: awaited between steps of the file's checksum, to keep a member's event loop free.
   */
  save(snap: Snapshot, pause?: () => Promise<void>): Promise<string> {
    const run = this.tail.then(() => this.saveNow(snap, pause));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * The newest snapshot that verifies. A damaged newer file is skipped with a warning and an
   * older intact one returned; if files exist but none verifies, SnapshotCorruptionError.
   * Undefined when there is no snapshot at all.
   */
  async loadLatest(): Promise<Snapshot | undefined> {
    const files = await this.snapshotFiles();
    const problems: string[] = [];
    for (const f of files) {
      const path = join(this.dir, f.file);
      try {
        const snap = decodeSnapshotFile(await this.fs.readFile(path));
        if (snap.meta.index !== f.index || snap.meta.term !== f.term) {
          throw new Error(`header says index ${snap.meta.index} term ${snap.meta.term}, file name disagrees`);
        }
        if (problems.length > 0) {
          this.logger("newest snapshot is damaged; using an older one", { dir: this.dir, skipped: problems, using: f.file });
        }
        return snap;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // pruned meanwhile
        problems.push(`${f.file}: ${(err as Error).message}`);
      }
    }
    if (problems.length > 0) throw new SnapshotCorruptionError(`no intact snapshot in ${this.dir}: ${problems.join("; ")}`);
    return undefined;
  }

  /**
   * The snapshot the WAL's newest marker names (etcd's LoadNewestAvailable, PR 11888): the only
   * one the WAL's entries continue from. Undefined when there is no marker. A file newer than the
   * marker was written by a save or install that crashed before its marker: it is removed, since
   * nothing will ever continue from it and it would otherwise crowd the marked snapshot out of
   * the `keep` newest. A missing or damaged marked snapshot is a SnapshotCorruptionError.
   */
  async loadMarked(marker: { index: number; term: number } | undefined): Promise<Snapshot | undefined> {
    const files = await this.snapshotFiles();
    const orphans = files.filter((f) => marker === undefined || f.index > marker.index || (f.index === marker.index && f.term !== marker.term));
    if (orphans.length > 0) {
      this.logger("removing snapshot files the WAL has no marker for (a snapshot save or install was interrupted)", { dir: this.dir, files: orphans.map((f) => f.file) });
      for (const f of orphans) await this.fs.unlink(join(this.dir, f.file)).catch(() => undefined);
      await fsyncDir(this.dir, this.fs);
    }
    if (marker === undefined) return undefined;
    const f = files.find((x) => x.index === marker.index && x.term === marker.term);
    if (f === undefined) throw new SnapshotCorruptionError(`the WAL's snapshot marker (index ${marker.index}, term ${marker.term}) has no snapshot file in ${this.dir}`);
    let snap: Snapshot;
    try {
      snap = decodeSnapshotFile(await this.fs.readFile(join(this.dir, f.file)));
    } catch (err) {
      throw new SnapshotCorruptionError(`snapshot ${f.file} named by the WAL's marker is damaged: ${(err as Error).message}`);
    }
    if (snap.meta.index !== marker.index || snap.meta.term !== marker.term) {
      throw new SnapshotCorruptionError(`snapshot ${f.file} says index ${snap.meta.index} term ${snap.meta.term}, the WAL's marker index ${marker.index} term ${marker.term}`);
    }
    return snap;
  }

  private async saveNow(snap: Snapshot, pause: (() => Promise<void>) | undefined): Promise<string> {
    const dataCrc = pause ? await crc32cInSteps(snap.data, pause) : undefined;
    const created = await this.fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) await fsyncDir(dirname(created), this.fs);
    const path = join(this.dir, snapshotFileName(snap.meta));
    await writeFileAtomic(path, encodeSnapshotFile(snap, dataCrc), this.fs);
    await this.prune();
    return path;
  }

  private async prune(): Promise<void> {
    const files = await this.snapshotFiles();
    const doomed = files.slice(this.keep).map((f) => f.file);
    for (const f of await this.fs.readdir(this.dir)) if (f.endsWith(TEMP_SUFFIX)) doomed.push(f);
    if (doomed.length === 0) return;
    for (const f of doomed) await this.fs.unlink(join(this.dir, f)).catch(() => undefined);
    await fsyncDir(this.dir, this.fs);
  }

  /** Snapshot files, newest (highest index, then term) first; temp files never match. */
  private async snapshotFiles(): Promise<Array<{ file: string; index: number; term: number }>> {
    let names: string[];
    try {
      names = await this.fs.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const out: Array<{ file: string; index: number; term: number }> = [];
    for (const file of names) {
      const p = parseSnapshotFileName(file);
      if (p) out.push({ file, ...p });
    }
    return out.sort((a, b) => b.index - a.index || b.term - a.term);
  }
}
