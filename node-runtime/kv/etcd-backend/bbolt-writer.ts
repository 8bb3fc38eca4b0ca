/**
 * Writes a complete bbolt database as a stream of pages, front to back, without holding more
 * than one node's entries at a time.
 *
 * A bbolt file starts with its two meta pages, which name the root page and the page count, so
 * the tree shape must be known before the first byte goes out. The writer therefore makes two
 * passes over each bucket: a planning pass over key/value lengths only (the same greedy packing
 * decides where nodes end), then the writing pass, which packs the real entries the same way and
 * checks that it produced exactly the planned pages. Trees are built bottom-up: a bucket's leaves
 * in key order, then each branch level, the bucket's root last. Layout:
 *
 *   0, 1: meta (txid 0 and 1, identical otherwise)   2: empty freelist
 *   then every bucket that does not fit inline, in name order   then the root bucket's tree
 *
 * Every page below the high-water mark is reachable, so `bbolt check` (etcdctl runs it in
 * `snapshot status`) finds nothing unreachable. Buckets whose single leaf is at most a quarter
 * page are stored inline in their parent's value, as bbolt itself does.
 */
import {
  BRANCH_PAGE,
  BUCKET_HEADER_SIZE,
  BUCKET_LEAF_FLAG,
  DEFAULT_PAGE_SIZE,
  ELEMENT_SIZE,
  FREELIST_PAGE,
  LEAF_PAGE,
  META_PAGE,
  PAGE_HEADER_SIZE,
  writeMeta,
  writePageHeader,
} from "./bbolt-format";

export interface BoltEntry {
  readonly key: Buffer;
  readonly value: Buffer;
}

export interface BucketSource {
  readonly name: Buffer;
  /** Entries in strictly ascending key order. Iterated twice; both runs must yield the same entries. */
  entries(): Iterable<BoltEntry>;
  /** The key and value lengths of entries(), in order: a cheaper planning pass when given. */
  sizes?(): Iterable<readonly [number, number]>;
}

interface NodeShape {
  bytes: number;
  firstKeyLen: number;
}

/** Elements planned between two pause points of the planning pass. */
const PLAN_SLICE = 16_384;

/**
 * Greedy packing shared by both passes: a node ends when the next element would overflow the
 * page. Yields every PLAN_SLICE elements so an async caller can let other work run.
 */
function* packShapes(elems: Iterable<readonly [number, number]>, pageSize: number): Generator<void, NodeShape[]> {
  const out: NodeShape[] = [];
  let cur: NodeShape | undefined;
  let seen = 0;
  for (const [bytes, keyLen] of elems) {
    if (++seen % PLAN_SLICE === 0) yield;
    if (cur === undefined || cur.bytes + bytes > pageSize) {
      cur = { bytes: PAGE_HEADER_SIZE, firstKeyLen: keyLen };
      out.push(cur);
    }
    cur.bytes += bytes;
  }
  if (out.length === 0) out.push({ bytes: PAGE_HEADER_SIZE, firstKeyLen: 0 });
  return out;
}

interface TreePlan {
  pages: number;
  /** Bytes of the only leaf when the tree is a single leaf (the inline candidate). */
  singleLeafBytes: number | undefined;
}

function* leafElems(sizes: Iterable<readonly [number, number]>): Iterable<readonly [number, number]> {
  for (const [k, v] of sizes) yield [ELEMENT_SIZE + k + v, k];
}

function* planTree(sizes: Iterable<readonly [number, number]>, pageSize: number): Generator<void, TreePlan> {
  let level = yield* packShapes(leafElems(sizes), pageSize);
  const pagesOf = (l: NodeShape[]): number => l.reduce((n, s) => n + Math.ceil(s.bytes / pageSize), 0);
  let pages = pagesOf(level);
  const singleLeafBytes = level.length === 1 ? level[0]!.bytes : undefined;
  while (level.length > 1) {
    level = yield* packShapes(
      level.map((s) => [ELEMENT_SIZE + s.firstKeyLen, s.firstKeyLen] as const),
      pageSize,
    );
    pages += pagesOf(level);
  }
  return { pages, singleLeafBytes };
}

function* entrySizes(src: BucketSource): Iterable<readonly [number, number]> {
  if (src.sizes) {
    yield* src.sizes();
    return;
  }
  for (const e of src.entries()) yield [e.key.length, e.value.length];
}

/** Lays out a leaf node: elements first, then each key followed by its value. */
function leafNode(id: number, items: readonly BoltEntry[], bytes: number, elemFlags: number, alloc: number, overflow: number): Buffer {
  const buf = Buffer.alloc(alloc);
  writePageHeader(buf, 0, id, LEAF_PAGE, items.length, overflow);
  let data = PAGE_HEADER_SIZE + ELEMENT_SIZE * items.length;
  items.forEach((e, i) => {
    const el = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    buf.writeUInt32LE(elemFlags, el);
    buf.writeUInt32LE(data - el, el + 4);
    buf.writeUInt32LE(e.key.length, el + 8);
    buf.writeUInt32LE(e.value.length, el + 12);
    e.key.copy(buf, data);
    e.value.copy(buf, data + e.key.length);
    data += e.key.length + e.value.length;
  });
  if (data !== bytes) throw new Error(`bbolt writer: leaf size ${data} != planned ${bytes}`);
  return buf;
}

interface ChildRef {
  key: Buffer;
  pgid: number;
}

/** Emits pages with consecutive ids starting at `next`. */
class PageSink {
  constructor(
    readonly pageSize: number,
    public next: number,
  ) {}

  page(bytes: number): { id: number; pages: number; alloc: number } {
    const pages = Math.ceil(bytes / this.pageSize);
    const id = this.next;
    this.next += pages;
    return { id, pages, alloc: pages * this.pageSize };
  }
}

function* writeLeaves(sink: PageSink, entries: Iterable<BoltEntry>, elemFlags: number, children: ChildRef[]): Generator<Buffer> {
  let items: BoltEntry[] = [];
  let bytes = PAGE_HEADER_SIZE;
  let prev: Buffer | undefined;
  const flush = function* (): Generator<Buffer> {
    const { id, pages, alloc } = sink.page(bytes);
    const buf = leafNode(id, items, bytes, elemFlags, alloc, pages - 1);
    children.push({ key: Buffer.from(items[0]?.key ?? Buffer.alloc(0)), pgid: id });
    yield buf;
  };
  for (const e of entries) {
    if (prev !== undefined && Buffer.compare(prev, e.key) >= 0) throw new Error("bbolt writer: keys not in ascending order");
    prev = e.key;
    const n = ELEMENT_SIZE + e.key.length + e.value.length;
    if (items.length > 0 && bytes + n > sink.pageSize) {
      yield* flush();
      items = [];
      bytes = PAGE_HEADER_SIZE;
    }
    items.push(e);
    bytes += n;
  }
  yield* flush();
}

function branchNode(id: number, kids: readonly ChildRef[], bytes: number, pages: number, pageSize: number): Buffer {
  const buf = Buffer.alloc(pages * pageSize);
  writePageHeader(buf, 0, id, BRANCH_PAGE, kids.length, pages - 1);
  let data = PAGE_HEADER_SIZE + ELEMENT_SIZE * kids.length;
  kids.forEach((k, i) => {
    const el = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    buf.writeUInt32LE(data - el, el);
    buf.writeUInt32LE(k.key.length, el + 4);
    buf.writeBigUInt64LE(BigInt(k.pgid), el + 8);
    k.key.copy(buf, data);
    data += k.key.length;
  });
  if (data !== bytes) throw new Error(`bbolt writer: branch size ${data} != planned ${bytes}`);
  return buf;
}

/** Writes one tree (leaves, then branch levels); returns the root page id. */
function* writeTree(sink: PageSink, entries: Iterable<BoltEntry>, elemFlags: number): Generator<Buffer, number> {
  let level: ChildRef[] = [];
  yield* writeLeaves(sink, entries, elemFlags, level);
  while (level.length > 1) {
    const up: ChildRef[] = [];
    let kids: ChildRef[] = [];
    let bytes = PAGE_HEADER_SIZE;
    const flush = (): Buffer => {
      const { id, pages } = sink.page(bytes);
      up.push({ key: kids[0]!.key, pgid: id });
      return branchNode(id, kids, bytes, pages, sink.pageSize);
    };
    for (const c of level) {
      const n = ELEMENT_SIZE + c.key.length;
      if (kids.length > 0 && bytes + n > sink.pageSize) {
        yield flush();
        kids = [];
        bytes = PAGE_HEADER_SIZE;
      }
      kids.push(c);
      bytes += n;
    }
    yield flush();
    level = up;
  }
  return level[0]!.pgid;
}

function bucketHeader(root: number): Buffer {
  const h = Buffer.alloc(BUCKET_HEADER_SIZE);
  h.writeBigUInt64LE(BigInt(root), 0);
  return h;
}

export interface BoltStream {
  /** Bytes the pages will add up to (page count × page size). */
  size: number;
  /** The pages in file order. */
  pages: Generator<Buffer>;
}

/**
 * Plans a bbolt database holding `buckets` (top-level buckets, no nesting) and returns its size
 * and a lazy stream of its pages. The sources are read again while the pages are produced.
 */
export function writeBolt(buckets: readonly BucketSource[], pageSize = DEFAULT_PAGE_SIZE): BoltStream {
  const plan = planBolt(buckets, pageSize);
  for (;;) {
    const r = plan.next();
    if (r.done) return r.value;
  }
}

/** writeBolt that lets the event loop run (`pause`) every few thousand entries of the planning pass. */
export async function writeBoltAsync(
  buckets: readonly BucketSource[],
  pageSize = DEFAULT_PAGE_SIZE,
  pause: () => Promise<void> = () => new Promise((r) => setImmediate(r)),
): Promise<BoltStream> {
  const plan = planBolt(buckets, pageSize);
  for (;;) {
    const r = plan.next();
    if (r.done) return r.value;
    await pause();
  }
}

function* planBolt(buckets: readonly BucketSource[], pageSize: number): Generator<void, BoltStream> {
  const sorted = [...buckets].sort((a, b) => Buffer.compare(a.name, b.name));
  // Planning pass.
  let next = 3;
  const plans: BucketPlan[] = [];
  for (const b of sorted) {
    const tp = yield* planTree(entrySizes(b), pageSize);
    const inline = tp.singleLeafBytes !== undefined && tp.singleLeafBytes <= pageSize / 4;
    if (inline) {
      plans.push({ inline: true, base: 0, root: 0, valueLen: BUCKET_HEADER_SIZE + tp.singleLeafBytes! });
      continue;
    }
    const base = next;
    next += tp.pages;
    plans.push({ inline: false, base, root: next - 1, valueLen: BUCKET_HEADER_SIZE });
  }
  const rootPlan = yield* planTree(
    sorted.map((b, i) => [b.name.length, plans[i]!.valueLen] as const),
    pageSize,
  );
  const rootBase = next;
  const rootRoot = next + rootPlan.pages - 1;
  const highWater = next + rootPlan.pages;
  return {
    size: highWater * pageSize,
    pages: writePages(sorted, plans, { pageSize, rootBase, rootRoot, highWater }),
  };
}

interface BucketPlan {
  inline: boolean;
  base: number;
  root: number;
  valueLen: number;
}

function* writePages(
  sorted: readonly BucketSource[],
  plans: readonly BucketPlan[],
  { pageSize, rootBase, rootRoot, highWater }: { pageSize: number; rootBase: number; rootRoot: number; highWater: number },
): Generator<Buffer> {
  for (const txid of [0n, 1n]) {
    const p = Buffer.alloc(pageSize);
    writePageHeader(p, 0, Number(txid), META_PAGE, 0, 0);
    writeMeta(p, PAGE_HEADER_SIZE, { pageSize, flags: 0, root: rootRoot, sequence: 0n, freelist: 2n, pgid: highWater, txid });
    yield p;
  }
  const freelist = Buffer.alloc(pageSize);
  writePageHeader(freelist, 0, 2, FREELIST_PAGE, 0, 0);
  yield freelist;

  // Writing pass.
  const values: Buffer[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const b = sorted[i]!;
    const plan = plans[i]!;
    if (plan.inline) {
      const items = [...b.entries()];
      const bytes = plan.valueLen - BUCKET_HEADER_SIZE;
      values.push(Buffer.concat([bucketHeader(0), leafNode(0, items, bytes, 0, bytes, 0)]));
      continue;
    }
    const sink = new PageSink(pageSize, plan.base);
    const root = yield* writeTree(sink, b.entries(), 0);
    if (root !== plan.root) throw new Error(`bbolt writer: bucket ${b.name.toString()} changed between passes`);
    values.push(bucketHeader(root));
  }
  const sink = new PageSink(pageSize, rootBase);
  const root = yield* writeTree(
    sink,
    sorted.map((b, i) => ({ key: b.name, value: values[i]! })),
    BUCKET_LEAF_FLAG,
  );
  if (root !== rootRoot || sink.next !== highWater) throw new Error("bbolt writer: root bucket layout differs from plan");
}
