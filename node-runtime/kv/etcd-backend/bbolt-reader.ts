/**
 * Reads a bbolt database page by page (random access through a PageSource), so a file of any
 * size is read with memory bounded by the tree depth times the page size. Walks buckets in key
 * order and can run the structural checks `bbolt check` does (page bounds and types, pages
 * referenced twice, pages neither reachable nor free).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import {
  BRANCH_PAGE,
  BUCKET_HEADER_SIZE,
  BUCKET_LEAF_FLAG,
  DEFAULT_PAGE_SIZE,
  ELEMENT_SIZE,
  FREELIST_PAGE,
  LEAF_PAGE,
  PAGE_HEADER_SIZE,
  readMeta,
  type Meta,
} from "./bbolt-format";

/** What bbolt says of a file that is not a database ("invalid database", "file size too small"). */
export class BoltInvalidError extends Error {}

export interface PageSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
  close(): void;
}

export function bufferSource(buf: Buffer): PageSource {
  return {
    size: buf.length,
    read: (offset, length) => buf.subarray(offset, offset + length),
    close: () => undefined,
  };
}

export function fileSource(path: string): PageSource {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return got === length ? buf : buf.subarray(0, got);
    },
    close: () => closeSync(fd),
  };
}

export interface BoltEntryView {
  key: Buffer;
  /** For a nested bucket: the bucket header (+ inline page). */
  value: Buffer;
  flags: number;
}

/** A bucket: its root page, or (inline) the leaf page stored in its parent's value. */
export interface BucketRef {
  root: number;
  inline?: Buffer;
}

const NO_FREELIST = 0xffffffffffffffffn;

export class BoltReader {
  readonly meta: Meta;
  /** Page ids seen by the walk, when checking. */
  private seen: Uint8Array | undefined;
  private problems: string[] = [];

  private constructor(private readonly src: PageSource) {
    // bbolt reads the first 4 KiB to learn the page size; a shorter file is not a database.
    if (src.size < DEFAULT_PAGE_SIZE) throw new BoltInvalidError("invalid database");
    const first = src.read(0, DEFAULT_PAGE_SIZE);
    const m0 = readMeta(first, PAGE_HEADER_SIZE);
    // Like bbolt: take the page size from meta 0 if it is valid, else assume the default.
    const pageSize = typeof m0 === "string" ? DEFAULT_PAGE_SIZE : m0.pageSize;
    if (src.size < 2 * pageSize) throw new BoltInvalidError("file size too small");
    const m1 = readMeta(src.read(pageSize, pageSize), PAGE_HEADER_SIZE);
    const valid = [m0, m1].filter((m): m is Meta => typeof m !== "string").sort((a, b) => (a.txid > b.txid ? -1 : a.txid < b.txid ? 1 : 0));
    const best = valid[0];
    if (best === undefined || best.pageSize < 1024 || best.pageSize % 512 !== 0) throw new BoltInvalidError("invalid database");
    this.meta = best;
  }

  static open(src: PageSource): BoltReader {
    try {
      return new BoltReader(src);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  static openFile(path: string): BoltReader {
    return BoltReader.open(fileSource(path));
  }

  close(): void {
    this.src.close();
  }

  /** Bytes of the database: pgid × page size (what bbolt's tx.Size() reports). */
  get dataSize(): number {
    return this.meta.pgid * this.meta.pageSize;
  }

  private page(pgid: number): Buffer {
    const ps = this.meta.pageSize;
    if (pgid >= this.meta.pgid) throw new Error(`page ${pgid}: out of bounds: ${this.meta.pgid}`);
    let buf = this.src.read(pgid * ps, ps);
    if (buf.length < PAGE_HEADER_SIZE) throw new Error(`page ${pgid}: beyond the end of the file`);
    const overflow = buf.readUInt32LE(12);
    if (overflow > 0) {
      if (pgid + overflow >= this.meta.pgid) throw new Error(`page ${pgid}: overflow out of bounds: ${this.meta.pgid}`);
      buf = this.src.read(pgid * ps, (overflow + 1) * ps);
    }
    if (buf.length < (overflow + 1) * ps) throw new Error(`page ${pgid}: beyond the end of the file`);
    if (this.seen) {
      for (let i = pgid; i <= pgid + overflow; i++) {
        if (this.seen[i]) this.problems.push(`page ${i}: multiple references`);
        this.seen[i] = 1;
      }
    }
    return buf;
  }

  get rootBucket(): BucketRef {
    return { root: this.meta.root };
  }

  /** The entries of a bucket in key order; key and value are views valid until the next step. */
  *entries(b: BucketRef): Generator<BoltEntryView> {
    if (b.inline !== undefined) {
      yield* leafEntries(b.inline, "inline bucket");
      return;
    }
    yield* this.walk(b.root, 0);
  }

  private *walk(pgid: number, depth: number): Generator<BoltEntryView> {
    if (depth > 64) throw new Error(`page ${pgid}: tree deeper than 64 levels`);
    const p = this.page(pgid);
    const id = Number(p.readBigUInt64LE(0));
    if (id !== pgid) throw new Error(`page ${pgid}: header names page ${id}`);
    const flags = p.readUInt16LE(8);
    const count = p.readUInt16LE(10);
    if (flags & BRANCH_PAGE) {
      for (let i = 0; i < count; i++) {
        const el = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
        const child = Number(p.readBigUInt64LE(el + 8));
        yield* this.walk(child, depth + 1);
      }
    } else if (flags & LEAF_PAGE) {
      yield* leafEntries(p, `page ${pgid}`);
    } else {
      throw new Error(`page ${pgid}: invalid type: ${flags}`);
    }
  }

  /** Nested buckets of `b` (the top-level buckets for the root bucket), in name order. */
  *buckets(b: BucketRef = this.rootBucket): Generator<{ name: Buffer; bucket: BucketRef }> {
    for (const e of this.entries(b)) {
      if (!(e.flags & BUCKET_LEAF_FLAG)) continue;
      yield { name: Buffer.from(e.key), bucket: bucketRef(e.value) };
    }
  }

  bucket(name: string): BucketRef | undefined {
    for (const b of this.buckets()) if (b.name.toString("latin1") === name) return b.bucket;
    return undefined;
  }

  /** Like `bbolt check`: an empty list for a consistent file, else one line per problem. */
  check(): string[] {
    this.seen = new Uint8Array(this.meta.pgid);
    this.problems = [];
    try {
      this.seen[0] = 1;
      this.seen[1] = 1;
      const freed = new Set<number>();
      if (this.meta.freelist !== NO_FREELIST) {
        const fl = this.page(Number(this.meta.freelist));
        if (!(fl.readUInt16LE(8) & FREELIST_PAGE)) this.problems.push(`page ${this.meta.freelist}: invalid freelist page`);
        for (const id of freelistIds(fl)) {
          if (freed.has(id)) this.problems.push(`page ${id}: already freed`);
          freed.add(id);
        }
      }
      const visit = (b: BucketRef): void => {
        for (const e of this.entries(b)) if (e.flags & BUCKET_LEAF_FLAG) visit(bucketRef(e.value));
      };
      visit(this.rootBucket);
      // Without a stored freelist (etcd runs bbolt with NoFreelistSync) the free pages are by
      // definition the unreachable ones.
      if (this.meta.freelist !== NO_FREELIST) {
        for (let i = 0; i < this.meta.pgid; i++) if (!this.seen[i] && !freed.has(i)) this.problems.push(`page ${i}: unreachable unfreed`);
      }
    } catch (e) {
      this.problems.push((e as Error).message);
    } finally {
      this.seen = undefined;
    }
    return this.problems;
  }
}

function bucketRef(value: Buffer): BucketRef {
  if (value.length < BUCKET_HEADER_SIZE) throw new Error("bucket header too short");
  const root = Number(value.readBigUInt64LE(0));
  return root === 0 ? { root, inline: value.subarray(BUCKET_HEADER_SIZE) } : { root };
}

function* leafEntries(p: Buffer, where: string): Generator<BoltEntryView> {
  if (p.length < PAGE_HEADER_SIZE) throw new Error(`${where}: short leaf page`);
  if (!(p.readUInt16LE(8) & LEAF_PAGE)) throw new Error(`${where}: invalid type: ${p.readUInt16LE(8)}`);
  const count = p.readUInt16LE(10);
  for (let i = 0; i < count; i++) {
    const el = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    const flags = p.readUInt32LE(el);
    const start = el + p.readUInt32LE(el + 4);
    const ksize = p.readUInt32LE(el + 8);
    const vsize = p.readUInt32LE(el + 12);
    if (start + ksize + vsize > p.length) throw new Error(`${where}: element ${i} runs past the page`);
    yield { key: p.subarray(start, start + ksize), value: p.subarray(start + ksize, start + ksize + vsize), flags };
  }
}

function freelistIds(p: Buffer): number[] {
  let count = p.readUInt16LE(10);
  let off = PAGE_HEADER_SIZE;
  if (count === 0xffff) {
    count = Number(p.readBigUInt64LE(off));
    off += 8;
  }
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(Number(p.readBigUInt64LE(off + 8 * i)));
  return ids;
}
