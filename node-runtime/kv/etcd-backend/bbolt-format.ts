/**
 * Facts about bbolt's on-disk page format (etcd-io/bbolt page.go, db.go, bucket.go), shared by
 * the writer and the reader. All integers are little-endian (bbolt writes native order; etcd's
 * files come from amd64/arm64 hosts).
 *
 *   page header (16 bytes): id u64, flags u16, count u16, overflow u32
 *   leaf element (16):      flags u32, pos u32, ksize u32, vsize u32   (pos: from the element to its key; value follows the key)
 *   branch element (16):    pos u32, ksize u32, pgid u64               (key = first key of the child page)
 *   meta (at page offset 16): magic u32, version u32, pageSize u32, flags u32, root bucket (root pgid u64,
 *                             sequence u64), freelist pgid u64, pgid (high-water mark) u64, txid u64,
 *                             checksum u64 = FNV-1a 64 of the 56 bytes before it
 *   bucket value (16):      root pgid u64, sequence u64; root pgid 0 = inline: a leaf page follows in the value
 *   freelist page:          count ids (u64 each); count 0xFFFF = the real count is the first u64
 */
export const PAGE_HEADER_SIZE = 16;
export const ELEMENT_SIZE = 16;
export const BUCKET_HEADER_SIZE = 16;
export const META_SIZE = 64;

export const BRANCH_PAGE = 0x01;
export const LEAF_PAGE = 0x02;
export const META_PAGE = 0x04;
export const FREELIST_PAGE = 0x10;
/** Leaf element flag: the value is a nested bucket. */
export const BUCKET_LEAF_FLAG = 0x01;

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
export const DEFAULT_PAGE_SIZE = 4096;

export interface Meta {
  pageSize: number;
  flags: number;
  root: number;
  sequence: bigint;
  freelist: bigint;
  /** First page id past the end of the data (the file holds pgid × pageSize bytes). */
  pgid: number;
  txid: bigint;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

export function fnv64a(buf: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (const b of buf) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  return h;
}

/** Writes a meta struct at `off` (the page body) including its checksum. */
export function writeMeta(page: Buffer, off: number, m: Meta): void {
  page.writeUInt32LE(MAGIC, off);
  page.writeUInt32LE(VERSION, off + 4);
  page.writeUInt32LE(m.pageSize, off + 8);
  page.writeUInt32LE(m.flags, off + 12);
  page.writeBigUInt64LE(BigInt(m.root), off + 16);
  page.writeBigUInt64LE(m.sequence, off + 24);
  page.writeBigUInt64LE(m.freelist, off + 32);
  page.writeBigUInt64LE(BigInt(m.pgid), off + 40);
  page.writeBigUInt64LE(m.txid, off + 48);
  page.writeBigUInt64LE(fnv64a(page.subarray(off, off + 56)), off + 56);
}

/** The meta at `off`, or a reason it is not valid. */
export function readMeta(page: Buffer, off: number): Meta | string {
  if (page.length < off + META_SIZE) return "short meta page";
  if (page.readUInt32LE(off) !== MAGIC) return "invalid magic";
  if (page.readUInt32LE(off + 4) !== VERSION) return "version mismatch";
  if (page.readBigUInt64LE(off + 56) !== fnv64a(page.subarray(off, off + 56))) return "checksum error";
  return {
    pageSize: page.readUInt32LE(off + 8),
    flags: page.readUInt32LE(off + 12),
    root: Number(page.readBigUInt64LE(off + 16)),
    sequence: page.readBigUInt64LE(off + 24),
    freelist: page.readBigUInt64LE(off + 32),
    pgid: Number(page.readBigUInt64LE(off + 40)),
    txid: page.readBigUInt64LE(off + 48),
  };
}

export function writePageHeader(page: Buffer, off: number, id: number, flags: number, count: number, overflow: number): void {
  page.writeBigUInt64LE(BigInt(id), off);
  page.writeUInt16LE(flags, off + 8);
  page.writeUInt16LE(count, off + 10);
  page.writeUInt32LE(overflow, off + 12);
}
