/**
 * Segment file naming: `<seq>-<firstIndex>.wal`, both 16 lowercase hex digits, so names sort
 * in write order. `firstIndex` is the log's last index + 1 when the segment was started: every
 * entry still surviving in older segments is below it, which is what release relies on.
 */
import { nodeFs, type StorageFs } from "./fs";

export interface SegmentName {
  seq: number;
  firstIndex: number;
  file: string;
}

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, "0")}-${firstIndex.toString(16).padStart(16, "0")}.wal`;
}

export function parseSegmentFileName(file: string): SegmentName | undefined {
  const m = SEGMENT_RE.exec(file);
  if (!m) return undefined;
  const seq = parseInt(m[1], 16);
  const firstIndex = parseInt(m[2], 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { seq, firstIndex, file };
}

/** Segment files in `dir`, oldest first; other files are returned separately so the caller can report them. */
export async function listSegments(dir: string, fs: StorageFs = nodeFs): Promise<{ segments: SegmentName[]; others: string[] }> {
  const segments: SegmentName[] = [];
  const others: string[] = [];
  for (const f of await fs.readdir(dir)) {
    const s = parseSegmentFileName(f);
    if (s) segments.push(s);
    else others.push(f);
  }
  segments.sort((a, b) => a.seq - b.seq);
  return { segments, others };
}

/**
 * How many of the oldest segments hold only entries <= `index`. A segment's surviving entries
 * are below the firstIndex of every later segment, so the bound is the minimum over later
 * ones (truncation can make firstIndex go down). The last segment is never counted: it is
 * the one being written.
 */
export function releasableCount(segments: readonly SegmentName[], index: number): number {
  let minLater = Infinity;
  const bound: number[] = new Array<number>(segments.length);
  for (let i = segments.length - 1; i >= 0; i--) {
    bound[i] = minLater - 1;
    minLater = Math.min(minLater, segments[i].firstIndex);
  }
  let n = 0;
  while (n < segments.length - 1 && bound[n] <= index) n++;
  return n;
}
