/**
 * The snapshot file format (see README.md):
 *
 *   0        8     magic "RKVSNAP\0"
 *   8        u32   format version (1)
 *   12       u32   H, bytes of header fields that follow
 *   16       H     index u64, term u64, conf state, data length u64
 *   16+H     u32   CRC-32C of bytes [0, 16+H)
 *   20+H     data
 *   ...      u32   CRC-32C of data
 *
 * The header has its own checksum so index/term can be trusted before the (possibly large)
 * data is checked, and a damaged length is reported as such.
 */
import type { Snapshot, SnapshotMeta } from "../raft/types";
import { checkConfState, checkU64, confStateBytes, Reader, Writer } from "./codec";
import { crc32c } from "./crc32c";

const MAGIC = Buffer.from("RKVSNAP\0", "latin1");
const VERSION = 1;

export function snapshotFileName(meta: SnapshotMeta): string {
  return `${meta.index.toString(16).padStart(16, "0")}-${meta.term.toString(16).padStart(16, "0")}.snap`;
}

const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export function parseSnapshotFileName(file: string): { index: number; term: number } | undefined {
  const m = NAME_RE.exec(file);
  return m ? { index: parseInt(m[1], 16), term: parseInt(m[2], 16) } : undefined;
}

/** The file as chunks (header, data, trailer) so a large data buffer is never copied. */
/** `dataCrc`: the CRC-32C of `snap.data` when the caller computed it already (in steps). */
export function encodeSnapshotFile(snap: Snapshot, dataCrc?: number): Uint8Array[] {
  checkU64("snapshot index", snap.meta.index);
  checkU64("snapshot term", snap.meta.term);
  checkConfState(snap.meta.confState);
  const h = 16 + confStateBytes(snap.meta.confState) + 8;
  const head = Buffer.alloc(16 + h + 4);
  const w = new Writer(head);
  w.bytes(MAGIC);
  w.u32(VERSION);
  w.u32(h);
  w.u64(snap.meta.index);
  w.u64(snap.meta.term);
  w.confState(snap.meta.confState);
  w.u64(snap.data.length);
  w.u32(crc32c(head, 0, 16 + h));
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(dataCrc ?? crc32c(snap.data));
  return [head, snap.data, trailer];
}

/** Decodes and verifies a whole snapshot file; throws an Error saying what is wrong. */
export function decodeSnapshotFile(buf: Buffer): Snapshot {
  if (buf.length < 16 + 4 || !buf.subarray(0, 8).equals(MAGIC)) throw new Error("not a snapshot file (bad magic)");
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) throw new Error(`unsupported snapshot format version ${version}`);
  const h = buf.readUInt32LE(12);
  if (16 + h + 4 > buf.length) throw new Error(`header length ${h} exceeds the file`);
  if (crc32c(buf, 0, 16 + h) !== buf.readUInt32LE(16 + h)) throw new Error("header checksum mismatch");
  const r = new Reader(buf, 16, 16 + h);
  const index = r.u64();
  const term = r.u64();
  const confState = r.confState();
  const dataLen = r.u64();
  r.expectEnd("snapshot header");
  const dataStart = 16 + h + 4;
  if (dataStart + dataLen + 4 !== buf.length) {
    throw new Error(`file is ${buf.length} bytes but the header promises ${dataStart + dataLen + 4} (truncated or extended)`);
  }
  const data = buf.subarray(dataStart, dataStart + dataLen);
  if (crc32c(data) !== buf.readUInt32LE(dataStart + dataLen)) throw new Error("data checksum mismatch");
  return { meta: { index, term, confState }, data };
}
