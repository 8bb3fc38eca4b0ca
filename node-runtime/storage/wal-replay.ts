/**
 * Reads a WAL directory back into the state its records describe. Read-only: it reports a
 * torn tail instead of cutting it, so the caller decides (and logs) what happens on disk.
 *
 * A damaged record is a torn tail only if it is in the last segment and no intact record
 * follows it anywhere in that file: a crash mid-write leaves garbage only after the last
 * good record. Anything else is corruption and stops recovery with the file and offset.
 */
import { nodeFs, type StorageFs } from "./fs";
import { join } from "node:path";
import type { Entry, HardState, SnapshotMeta } from "../raft/types";
import { DecodeError } from "./codec";
import { WalCorruptionError } from "./errors";
import { LogOrderError, LogTracker } from "./log-tracker";
import type { SegmentName } from "./wal-segments";
import {
  decodeEntry,
  decodeHardState,
  decodeMarker,
  decodeSegmentInfo,
  HEADER_BYTES,
  readFrame,
  RecordType,
  type SegmentInfo,
} from "./wal-record";

export interface TornTail {
  file: string;
  offset: number;
  fileBytes: number;
  reason: string;
}

export interface ReplayResult {
  hardState: HardState;
  snapshot: SnapshotMeta | undefined;
  /** Contiguous, all after snapshot.index. */
  entries: Entry[];
  /** Bytes of intact records in the last segment (0: it needs its info record rewritten). */
  activeBytes: number;
  torn: TornTail | undefined;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: 0, commit: 0 };

function findIntactRecord(buf: Buffer, from: number): number {
  for (let p = from; p + HEADER_BYTES <= buf.length; p++) {
    if (readFrame(buf, p, buf.length).ok) return p;
  }
  return -1;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameMarker(a: SnapshotMeta | undefined, b: SnapshotMeta | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.index === b.index && a.term === b.term);
}

export async function replayWal(dir: string, segments: readonly SegmentName[], fs: StorageFs = nodeFs): Promise<ReplayResult> {
  if (segments.length === 0) {
    return { hardState: EMPTY_HARD_STATE, snapshot: undefined, entries: [], activeBytes: 0, torn: undefined };
  }
  for (let i = 1; i < segments.length; i++) {
    if (segments[i].seq !== segments[i - 1].seq + 1) {
      throw new WalCorruptionError(segments[i].file, 0, `segment sequence jumps from ${segments[i - 1].seq} to ${segments[i].seq}; a segment is missing`);
    }
  }
  // Segment 0 starts the log; a later oldest segment means older ones were released and the
  // log prefix is unknown until the first entry (see LogTracker.append).
  const tracker = new LogTracker({ last: segments[0].seq === 0 ? 0 : undefined, keepEntries: true });
  let hardState = EMPTY_HARD_STATE;
  let activeBytes = 0;
  let torn: TornTail | undefined;

  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const isLast = i === segments.length - 1;
    const data = await fs.readFile(join(dir, seg.file));
    let off = 0;
    while (off < data.length) {
      const fr = readFrame(data, off, data.length);
      if (!fr.ok) {
        if (!isLast) throw new WalCorruptionError(seg.file, off, fr.reason);
        // Past a record whose header verified, so entry data that happens to contain a
        // valid-looking record is never mistaken for one.
        const intact = findIntactRecord(data, Math.max(off + 1, fr.end ?? 0));
        if (intact >= 0) {
          throw new WalCorruptionError(seg.file, off, `${fr.reason}; an intact record follows at offset ${intact}, so this is not a torn tail`);
        }
        torn = { file: seg.file, offset: off, fileBytes: data.length, reason: fr.reason };
        break;
      }
      if ((off === 0) !== (fr.type === RecordType.SegmentInfo)) {
        throw new WalCorruptionError(seg.file, off, off === 0 ? "segment does not start with a segment info record" : "segment info record in the middle of a segment");
      }
      try {
        switch (fr.type) {
          case RecordType.SegmentInfo: {
            const info = decodeSegmentInfo(data, fr.payloadStart, fr.payloadEnd);
            const problem = checkInfo(info, seg, i === 0, tracker, hardState);
            if (problem) throw new DecodeError(problem);
            if (i === 0) {
              hardState = info.hardState;
              if (info.snapshot) tracker.applyMarker(info.snapshot, true);
            }
            break;
          }
          case RecordType.Entry:
            tracker.append(decodeEntry(data, fr.payloadStart, fr.payloadEnd));
            break;
          case RecordType.HardState:
            hardState = decodeHardState(data, fr.payloadStart, fr.payloadEnd);
            break;
          case RecordType.SnapshotMarker: {
            const m = decodeMarker(data, fr.payloadStart, fr.payloadEnd);
            tracker.applyMarker(m.meta, m.keepsLog);
            break;
          }
        }
      } catch (err) {
        if (err instanceof DecodeError || err instanceof LogOrderError || err instanceof RangeError) {
          throw new WalCorruptionError(seg.file, off, err.message);
        }
        throw err;
      }
      off = fr.payloadEnd;
    }
    if (isLast) activeBytes = off;
    else if (off === 0) throw new WalCorruptionError(seg.file, 0, "empty segment before the last one");
  }

  const snapshot = tracker.marker;
  const kept = tracker.entries ?? [];
  const entries = snapshot ? kept.filter((e) => e.index > snapshot.index) : kept;
  if (snapshot && entries.length > 0 && entries[0].index !== snapshot.index + 1) {
    throw new WalCorruptionError(segments[0].file, 0, `surviving log starts at index ${entries[0].index} but the snapshot marker covers only up to ${snapshot.index}`);
  }
  if (!snapshot && segments[0].seq !== 0) {
    throw new WalCorruptionError(segments[0].file, 0, `oldest segment has sequence ${segments[0].seq} but no snapshot marker covers the released log`);
  }
  return { hardState, snapshot, entries, activeBytes, torn };
}

/** A segment's info restates the state at its start; a mismatch means files were mixed up. */
function checkInfo(info: SegmentInfo, seg: SegmentName, first: boolean, tracker: LogTracker, hs: HardState): string | undefined {
  if (info.seq !== seg.seq || info.firstIndex !== seg.firstIndex) {
    return `segment info (seq ${info.seq}, first index ${info.firstIndex}) does not match the file name`;
  }
  if (first) return undefined;
  if (tracker.last !== undefined && tracker.last !== info.firstIndex - 1) {
    return `segment starts at index ${info.firstIndex} but the previous segments end at ${tracker.last}`;
  }
  if (!sameHardState(info.hardState, hs) || !sameMarker(info.snapshot, tracker.marker)) {
    return "segment info disagrees with the state at the end of the previous segment";
  }
  return undefined;
}
