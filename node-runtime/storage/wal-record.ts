/**
 * WAL record framing and payloads. Every record is a 16-byte header followed by its payload:
 *
 *   0  u32  payload length
 *   4  u8   record type
 *   5  u8×3 zero
 *   8  u32  CRC-32C of the payload
 *   12 u32  CRC-32C of header bytes 0..11
 *
 * The header has its own checksum so a damaged length field is recognised as damage instead
 * of being trusted (which would make a mid-file corruption look like a record running past
 * the end of the file, i.e. like a torn tail). See README.md for the payload layouts.
 */
import type { Entry, HardState, SnapshotMeta } from "../raft/types";
import { checkConfState, checkU64, confStateBytes, DecodeError, Reader, Writer } from "./codec";
import { crc32c } from "./crc32c";

export const HEADER_BYTES = 16;
/** Far above any entry raft will carry; a larger length can only be damage. */
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

export enum RecordType {
  SegmentInfo = 1,
  Entry = 2,
  HardState = 3,
  SnapshotMarker = 4,
}

export const SEGMENT_MAGIC = 0x574b5652; // "RVKW" little-endian
export const SEGMENT_VERSION = 1;

/** First record of every segment: restates the durable state so the segment stands alone once older ones are released. */
export interface SegmentInfo {
  seq: number;
  firstIndex: number;
  hardState: HardState;
  snapshot?: SnapshotMeta;
}

/** A snapshot marker also records whether the log after meta.index survived (raft keeps it only if the terms match). */
export interface MarkerRecord {
  meta: SnapshotMeta;
  keepsLog: boolean;
}

// ---- encoding -------------------------------------------------------------------------

function frame(buf: Buffer, off: number, type: RecordType, payloadLen: number): number {
  const start = off + HEADER_BYTES;
  buf.writeUInt32LE(payloadLen, off);
  buf[off + 4] = type;
  buf[off + 5] = 0;
  buf[off + 6] = 0;
  buf[off + 7] = 0;
  buf.writeUInt32LE(crc32c(buf, start, start + payloadLen), off + 8);
  buf.writeUInt32LE(crc32c(buf, off, off + 12), off + 12);
  return start + payloadLen;
}

export function entryRecordBytes(e: Entry): number {
  return HEADER_BYTES + 17 + e.data.length;
}

export function checkEntry(e: Entry): void {
  checkU64("entry term", e.term);
  checkU64("entry index", e.index);
  if (e.index < 1) throw new RangeError(`entry index must be >= 1, got ${e.index}`);
  if (!Number.isInteger(e.type) || e.type < 0 || e.type > 255) throw new RangeError(`entry type out of range: ${e.type}`);
  if (e.data.length > MAX_PAYLOAD_BYTES - 17) throw new RangeError(`entry ${e.index} data too large: ${e.data.length} bytes`);
}

/** Writes one entry record at `off`; returns the offset after it. */
export function writeEntryRecord(buf: Buffer, off: number, e: Entry): number {
  const w = new Writer(buf, off + HEADER_BYTES);
  w.u64(e.term);
  w.u64(e.index);
  w.u8(e.type);
  w.bytes(e.data);
  return frame(buf, off, RecordType.Entry, 17 + e.data.length);
}

export const HARD_STATE_RECORD_BYTES = HEADER_BYTES + 24;

export function checkHardState(hs: HardState): void {
  checkU64("hard state term", hs.term);
  checkU64("hard state vote", hs.vote);
  checkU64("hard state commit", hs.commit);
}

export function writeHardStateRecord(buf: Buffer, off: number, hs: HardState): number {
  const w = new Writer(buf, off + HEADER_BYTES);
  w.u64(hs.term);
  w.u64(hs.vote);
  w.u64(hs.commit);
  return frame(buf, off, RecordType.HardState, 24);
}

export function checkSnapshotMeta(meta: SnapshotMeta): void {
  checkU64("snapshot index", meta.index);
  checkU64("snapshot term", meta.term);
  checkConfState(meta.confState);
}

export function markerRecordBytes(meta: SnapshotMeta): number {
  return HEADER_BYTES + 17 + confStateBytes(meta.confState);
}

export function writeMarkerRecord(buf: Buffer, off: number, m: MarkerRecord): number {
  const w = new Writer(buf, off + HEADER_BYTES);
  w.u64(m.meta.index);
  w.u64(m.meta.term);
  w.u8(m.keepsLog ? 1 : 0);
  w.confState(m.meta.confState);
  return frame(buf, off, RecordType.SnapshotMarker, w.offset - off - HEADER_BYTES);
}

/** The whole first record of a new segment, as its own buffer. */
export function encodeSegmentInfo(info: SegmentInfo): Buffer {
  const snapBytes = info.snapshot ? 16 + confStateBytes(info.snapshot.confState) : 0;
  const payloadLen = 4 + 4 + 8 + 8 + 24 + 1 + snapBytes;
  const buf = Buffer.alloc(HEADER_BYTES + payloadLen);
  const w = new Writer(buf, HEADER_BYTES);
  w.u32(SEGMENT_MAGIC);
  w.u32(SEGMENT_VERSION);
  w.u64(info.seq);
  w.u64(info.firstIndex);
  w.u64(info.hardState.term);
  w.u64(info.hardState.vote);
  w.u64(info.hardState.commit);
  w.u8(info.snapshot ? 1 : 0);
  if (info.snapshot) {
    w.u64(info.snapshot.index);
    w.u64(info.snapshot.term);
    w.confState(info.snapshot.confState);
  }
  frame(buf, 0, RecordType.SegmentInfo, payloadLen);
  return buf;
}

// ---- decoding -------------------------------------------------------------------------

export type FrameResult =
  | { ok: true; type: RecordType; payloadStart: number; payloadEnd: number }
  /** `end`: where the record ends if its header verified (its length is then trustworthy). */
  | { ok: false; reason: string; end?: number };

/** Checks the record at `off` (framing and checksums only); never throws. */
export function readFrame(buf: Buffer, off: number, end: number): FrameResult {
  if (end - off < HEADER_BYTES) return { ok: false, reason: `incomplete record header (${end - off} of ${HEADER_BYTES} bytes)` };
  if (crc32c(buf, off, off + 12) !== buf.readUInt32LE(off + 12)) return { ok: false, reason: "record header checksum mismatch" };
  const len = buf.readUInt32LE(off);
  const type = buf[off + 4];
  if (!(type in RecordType) || buf[off + 5] !== 0 || buf[off + 6] !== 0 || buf[off + 7] !== 0) {
    return { ok: false, reason: `unknown record type ${type}` };
  }
  if (len > MAX_PAYLOAD_BYTES) return { ok: false, reason: `record length ${len} exceeds the maximum` };
  const payloadStart = off + HEADER_BYTES;
  const payloadEnd = payloadStart + len;
  if (payloadEnd > end) return { ok: false, reason: `record of ${len} bytes runs past the end of the file`, end: payloadEnd };
  if (crc32c(buf, payloadStart, payloadEnd) !== buf.readUInt32LE(off + 8)) {
    return { ok: false, reason: "record payload checksum mismatch", end: payloadEnd };
  }
  return { ok: true, type: type as RecordType, payloadStart, payloadEnd };
}

export function decodeEntry(buf: Buffer, start: number, end: number): Entry {
  const r = new Reader(buf, start, end);
  const term = r.u64();
  const index = r.u64();
  const type = r.u8();
  const data = r.bytes(r.remaining);
  return { term, index, type, data };
}

export function decodeHardState(buf: Buffer, start: number, end: number): HardState {
  const r = new Reader(buf, start, end);
  const hs = { term: r.u64(), vote: r.u64(), commit: r.u64() };
  r.expectEnd("hard state record");
  return hs;
}

export function decodeMarker(buf: Buffer, start: number, end: number): MarkerRecord {
  const r = new Reader(buf, start, end);
  const index = r.u64();
  const term = r.u64();
  const flags = r.u8();
  const confState = r.confState();
  r.expectEnd("snapshot marker record");
  return { meta: { index, term, confState }, keepsLog: (flags & 1) === 1 };
}

export function decodeSegmentInfo(buf: Buffer, start: number, end: number): SegmentInfo {
  const r = new Reader(buf, start, end);
  const magic = r.u32();
  const version = r.u32();
  if (magic !== SEGMENT_MAGIC) throw new DecodeError(`bad segment magic 0x${magic.toString(16)}`);
  if (version !== SEGMENT_VERSION) throw new DecodeError(`unsupported segment version ${version}`);
  const seq = r.u64();
  const firstIndex = r.u64();
  const hardState = { term: r.u64(), vote: r.u64(), commit: r.u64() };
  const hasSnap = r.u8();
  let snapshot: SnapshotMeta | undefined;
  if (hasSnap === 1) snapshot = { index: r.u64(), term: r.u64(), confState: r.confState() };
  r.expectEnd("segment info record");
  return { seq, firstIndex, hardState, snapshot };
}
