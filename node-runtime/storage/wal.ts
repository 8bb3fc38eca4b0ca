/**
 * The write-ahead log of raft entries and hard state. See README.md for the format and the
 * guarantees; replay lives in wal-replay.ts, the framing in wal-record.ts.
 *
 * Writes are queued in call order. Whatever has queued up while the previous durable write ran
 * goes out as one buffer in one O_DSYNC write (group commit), so the sync rate, not the call
 * rate, bounds latency, and throughput grows with concurrency.
 */
import { constants } from "node:fs";
import { dirname, join } from "node:path";
import type { Entry, HardState, SnapshotMeta } from "../raft/types";
import { fsyncDir, writeFully } from "./durable-fs";
import { WalUnavailableError } from "./errors";
import { nodeFs, type StorageFile, type StorageFs } from "./fs";
import { LogOrderError, LogTracker } from "./log-tracker";
import { stderrLogger, type StorageLogger } from "./logger";
import { retryOnFdExhaustion } from "./wal-fd-retry";
import { replayWal } from "./wal-replay";
import {
  checkEntry,
  checkHardState,
  checkSnapshotMeta,
  encodeSegmentInfo,
  entryRecordBytes,
  HARD_STATE_RECORD_BYTES,
  markerRecordBytes,
  writeEntryRecord,
  writeHardStateRecord,
  writeMarkerRecord,
} from "./wal-record";
import { listSegments, releasableCount, segmentFileName, type SegmentName } from "./wal-segments";

export interface WalOptions {
  /** A segment is closed and a new one started once it reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Receives warnings such as a truncated torn tail. Default: one line on stderr. */
  logger?: StorageLogger;
  /** Default: the real file system. */
  fs?: StorageFs;
}

export interface WalRecovered {
  hardState: HardState;
  /** The latest snapshot marker. */
  snapshot?: SnapshotMeta;
  /** Contiguous, all after snapshot.index. */
  entries: Entry[];
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Caps one coalesced write so a long queue does not become one huge allocation. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

type Op =
  | (Waiter & { kind: "write"; buf: Buffer | undefined; hardState?: HardState; marker?: SnapshotMeta; lastAfter: number })
  | (Waiter & { kind: "release"; index: number })
  | (Waiter & { kind: "close" });

type OpRequest = Op extends infer O ? (O extends Op ? Omit<O, keyof Waiter> : never) : never;

const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_DSYNC } = constants;
const SEGMENT_CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_DSYNC;
const SEGMENT_APPEND_FLAGS = O_RDWR | O_DSYNC;

/** The state as of the last fdatasync; a new segment's info record restates it. */
interface DurableState {
  hardState: HardState;
  marker: SnapshotMeta | undefined;
  last: number;
}

export class WriteAheadLog {
  private readonly queue: Op[] = [];
  private draining = false;
  /** Set once closed or after a failed write; every later call rejects with it. */
  private unavailable: WalUnavailableError | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    private readonly segments: SegmentName[],
    private fh: StorageFile,
    private size: number,
    /** Validates each call against everything queued before it. */
    private readonly accepted: LogTracker,
    private readonly durable: DurableState,
    private readonly logger: StorageLogger,
    private readonly fs: StorageFs,
  ) {}

  /** Opens (creating if needed) the WAL in `dir` itself and recovers what it holds. */
  static async open(dir: string, opts: WalOptions = {}): Promise<{ wal: WriteAheadLog; recovered: WalRecovered }> {
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) throw new RangeError(`segmentBytes must be a positive integer`);
    const logger = opts.logger ?? stderrLogger;
    const fs = opts.fs ?? nodeFs;

    // Like etcd's WAL directory: readable by the member's user only.
    const created = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    if (created === undefined) await tightenMode(dir, logger, fs);
    if (created !== undefined) {
      await fsyncDir(dirname(created), fs);
      if (created !== dir) await fsyncDir(dirname(dir), fs);
    }
    const { segments, others } = await listSegments(dir, fs);
    for (const f of others) logger("ignoring a file that is not a WAL segment", { dir, file: f });

    const rep = await replayWal(dir, segments, fs);
    const last = rep.entries.length > 0 ? rep.entries[rep.entries.length - 1].index : (rep.snapshot?.index ?? 0);
    const durable: DurableState = { hardState: rep.hardState, marker: rep.snapshot, last };

    let fh: StorageFile;
    let size = rep.activeBytes;
    if (segments.length === 0) {
      const seg = { seq: 0, firstIndex: 1, file: segmentFileName(0, 1) };
      fh = await fs.open(join(dir, seg.file), SEGMENT_CREATE_FLAGS, 0o600);
      size = await startSegment(fh, dir, seg, durable, logger, fs);
      segments.push(seg);
    } else {
      const active = segments[segments.length - 1];
      fh = await fs.open(join(dir, active.file), SEGMENT_APPEND_FLAGS);
      try {
        if (rep.torn) {
          logger("truncating torn WAL tail left by an interrupted write", {
            dir,
            file: rep.torn.file,
            offset: rep.torn.offset,
            discardedBytes: rep.torn.fileBytes - rep.torn.offset,
            reason: rep.torn.reason,
          });
          await fh.truncate(rep.torn.offset);
          await fh.datasync();
        }
        // The crash hit while the segment's first record was being written.
        if (size === 0) size = await startSegment(fh, dir, active, durable, logger, fs);
      } catch (err) {
        await fh.close();
        throw err;
      }
    }
    const accepted = LogTracker.fromRecovered(rep.snapshot, rep.entries);
    const wal = new WriteAheadLog(dir, segmentBytes, segments, fh, size, accepted, durable, logger, fs);
    return { wal, recovered: { hardState: rep.hardState, snapshot: rep.snapshot, entries: rep.entries } };
  }

  /**
   * Appends `entries` (contiguous; the first may be at or below the last index, which
   * replaces the log from there) and then `hardState`. Durable when the promise resolves.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    if (this.unavailable) return Promise.reject(this.unavailable);
    try {
      if (hardState) checkHardState(hardState);
      this.checkAppend(entries);
    } catch (err) {
      return Promise.reject(err);
    }
    let bytes = hardState ? HARD_STATE_RECORD_BYTES : 0;
    for (const e of entries) bytes += entryRecordBytes(e);
    let buf: Buffer | undefined;
    if (bytes > 0) {
      buf = Buffer.allocUnsafe(bytes);
      let off = 0;
      for (const e of entries) off = writeEntryRecord(buf, off, e);
      if (hardState) writeHardStateRecord(buf, off, hardState);
    }
    for (const e of entries) this.accepted.append(e);
    const hs = hardState ? { term: hardState.term, vote: hardState.vote, commit: hardState.commit } : undefined;
    return this.enqueue({ kind: "write", buf, hardState: hs, lastAfter: this.lastAccepted() });
  }

  /** Durably records that the log up to meta.index is covered by a snapshot. */
  markSnapshot(meta: SnapshotMeta): Promise<void> {
    if (this.unavailable) return Promise.reject(this.unavailable);
    try {
      checkSnapshotMeta(meta);
      const prev = this.accepted.marker;
      if (prev && meta.index < prev.index) throw new RangeError(`snapshot marker ${meta.index} is older than marker ${prev.index}`);
    } catch (err) {
      return Promise.reject(err);
    }
    const copy: SnapshotMeta = {
      index: meta.index,
      term: meta.term,
      confState: { voters: [...meta.confState.voters], learners: [...meta.confState.learners] },
    };
    const keepsLog = this.accepted.keepsLog(copy);
    const buf = Buffer.allocUnsafe(markerRecordBytes(copy));
    writeMarkerRecord(buf, 0, { meta: copy, keepsLog });
    this.accepted.applyMarker(copy, keepsLog);
    return this.enqueue({ kind: "write", buf, marker: copy, lastAfter: this.lastAccepted() });
  }

  /** Deletes the oldest segments whose entries are all <= index (at most the latest snapshot marker). */
  releaseTo(index: number): Promise<void> {
    if (this.unavailable) return Promise.reject(this.unavailable);
    const marker = this.accepted.marker;
    if (!marker || index > marker.index) {
      return Promise.reject(new RangeError(`cannot release the log to ${index}: no snapshot marker covers it (latest marker ${marker?.index ?? "none"})`));
    }
    return this.enqueue({ kind: "release", index });
  }

  /** Waits for queued work, then closes the file. Later calls reject with WalUnavailableError. */
  close(): Promise<void> {
    if (!this.closing) {
      // After a failure the queue is already empty and rejected; just release the file.
      this.closing = this.unavailable ? this.fh.close().catch(() => undefined) : this.enqueue({ kind: "close" });
      this.unavailable ??= new WalUnavailableError("WAL is closed");
    }
    return this.closing;
  }

  /** Segment files currently on disk, oldest first (for tests and status output). */
  segmentFiles(): string[] {
    return this.segments.map((s) => s.file);
  }

  private checkAppend(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    for (let i = 0; i < entries.length; i++) {
      checkEntry(entries[i]);
      if (i > 0 && entries[i].index !== entries[i - 1].index + 1) {
        throw new LogOrderError(`entries are not contiguous: ${entries[i - 1].index} then ${entries[i].index}`);
      }
    }
    const first = entries[0].index;
    const marker = this.accepted.marker;
    if (marker && first <= marker.index) {
      throw new LogOrderError(`entry ${first} is covered by the snapshot at ${marker.index} and cannot be rewritten`);
    }
    const last = this.lastAccepted();
    if (first > last + 1) throw new LogOrderError(`entry ${first} leaves a gap after index ${last}`);
  }

  private lastAccepted(): number {
    return this.accepted.last ?? 0;
  }

  private enqueue(op: OpRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ...op, resolve, reject } as Op);
      if (!this.draining) {
        this.draining = true;
        void this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const op = this.queue[0];
        if (op.kind === "write") {
          const batch = this.takeWriteBatch();
          try {
            await this.writeBatch(batch);
          } catch (err) {
            this.fail(err, batch);
            return;
          }
          for (const o of batch) o.resolve();
        } else if (op.kind === "release") {
          this.queue.shift();
          // A failed unlink loses no data: report it and keep writing.
          await this.release(op.index).then(op.resolve, op.reject);
        } else {
          this.queue.shift();
          await this.fh.close().then(op.resolve, op.reject);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private takeWriteBatch(): Array<Extract<Op, { kind: "write" }>> {
    const batch: Array<Extract<Op, { kind: "write" }>> = [];
    let bytes = 0;
    while (this.queue.length > 0) {
      const op = this.queue[0];
      if (op.kind !== "write") break;
      const n = op.buf?.length ?? 0;
      if (batch.length > 0 && bytes + n > MAX_BATCH_BYTES) break;
      batch.push(op);
      bytes += n;
      this.queue.shift();
    }
    return batch;
  }

  private async writeBatch(batch: ReadonlyArray<Extract<Op, { kind: "write" }>>): Promise<void> {
    const bufs: Buffer[] = [];
    for (const o of batch) if (o.buf) bufs.push(o.buf);
    if (bufs.length > 0) {
      if (this.size >= this.segmentBytes) await this.rotate();
      const buf = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
      await writeFully(this.fh, buf, this.size);
      this.size += buf.length;
      // Segments are opened with O_DSYNC: the write returns once the data is durable, which
      // costs one thread-pool round trip instead of two (write, then fdatasync).
    }
    for (const o of batch) {
      if (o.hardState) this.durable.hardState = o.hardState;
      if (o.marker) this.durable.marker = o.marker;
      this.durable.last = o.lastAfter;
    }
  }

  private async rotate(): Promise<void> {
    const prev = this.segments[this.segments.length - 1];
    const seg = { seq: prev.seq + 1, firstIndex: this.durable.last + 1, file: "" };
    seg.file = segmentFileName(seg.seq, seg.firstIndex);
    const path = join(this.dir, seg.file);
    const fh = await retryOnFdExhaustion("open new segment", () => this.fs.open(path, SEGMENT_CREATE_FLAGS, 0o600), this.logger);
    let size: number;
    try {
      size = await startSegment(fh, this.dir, seg, this.durable, this.logger, this.fs);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    const old = this.fh;
    this.fh = fh;
    this.size = size;
    this.segments.push(seg);
    await old.close();
  }

  private async release(index: number): Promise<void> {
    const n = releasableCount(this.segments, index);
    if (n === 0) return;
    // Oldest first, so a crash part-way leaves a contiguous run of segments.
    for (let i = 0; i < n; i++) {
      await this.fs.unlink(join(this.dir, this.segments[0].file));
      this.segments.shift();
    }
    await retryOnFdExhaustion("fsync WAL directory", () => fsyncDir(this.dir, this.fs), this.logger);
  }

  private fail(err: unknown, inflight: ReadonlyArray<Waiter>): void {
    const cause = err instanceof Error ? err : new Error(String(err));
    this.unavailable = new WalUnavailableError(`WAL write failed, reopen to recover: ${cause.message}`, { cause });
    for (const o of inflight) o.reject(cause);
    for (const o of this.queue.splice(0)) {
      if (o.kind === "close") void this.fh.close().then(o.resolve, () => o.resolve());
      else o.reject(this.unavailable);
    }
  }
}

/** Writes a segment's info record and makes the file and its name durable. Returns its size. */
async function startSegment(fh: StorageFile, dir: string, seg: SegmentName, state: DurableState, logger: StorageLogger, fs: StorageFs): Promise<number> {
  const info = encodeSegmentInfo({ seq: seg.seq, firstIndex: seg.firstIndex, hardState: state.hardState, snapshot: state.marker });
  await writeFully(fh, info, 0);
  await fh.datasync();
  await retryOnFdExhaustion("fsync WAL directory", () => fsyncDir(dir, fs), logger);
  return info.length;
}

/** An existing WAL directory left readable by others (older versions made it 0755) is closed up. */
async function tightenMode(dir: string, logger: StorageLogger, fs: StorageFs): Promise<void> {
  const st = await fs.stat(dir);
  if ((st.mode & 0o077) === 0) return;
  try {
    await fs.chmod(dir, st.mode & 0o700);
  } catch (err) {
    logger("cannot restrict the WAL directory to its owner", { dir, error: (err as Error).message });
  }
}
