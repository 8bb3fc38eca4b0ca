/**
 * The wire bytes of a read-only Txn's answer (etcdserverpb.TxnResponse), written straight from
 * the selected records into one buffer of the exact size, in steps with the event loop free in
 * between (issue 15): a Txn of 128 ranges over the whole keyspace answers with up to 2 GiB, and
 * building it as objects and encoding those with protobufjs in one synchronous call stopped the
 * member for 18 s. Here nothing but the answer itself is allocated (no key-value objects, no
 * encoder op list), and no step writes more than about a MiB.
 *
 * The bytes are exactly those protobufjs writes (through proto-loader) for the answer as objects,
 * i.e. for what KvStore.readTxn returns under the server's header: every field present on the
 * objects is written, zeros included (see wire-size.ts); test/kv/read-encoder.test.ts compares.
 */
import type { Rec } from './mvcc';
import { MAX_RESPONSE_BYTES, intField, keyValueSize, lenField } from './wire-size';

/** A response header as the server sends it (IDs and term as decimal strings or numbers). */
export interface WireHeader {
  cluster_id: string | number;
  member_id: string | number;
  revision: string | number;
  raft_term: string | number;
}

/** The records one range of the txn answers with (references into the store), as selected. */
export interface RangeSelection {
  recs: readonly Rec[];
  more: boolean;
  count: number;
  keysOnly: boolean;
  /** The revision the range read at (its own header's revision). */
  revision: number;
}

/** A read-only txn, evaluated: the branch taken and what each of its ranges read. */
export interface ReadTxnSelection {
  /** The store revision the txn read at (the answer's header revision). */
  revision: number;
  succeeded: boolean;
  ranges: RangeSelection[];
}

/** Bytes written between two pauses (a step is never cut inside a key-value). */
const STEP_BYTES = 1024 * 1024;

function valueLen(r: Rec, keysOnly: boolean): number {
  return keysOnly || r.val === null ? 0 : r.val.length;
}

function kvSize(r: Rec, keysOnly: boolean): number {
  return keyValueSize(r.ki.key.length, r.create, r.mod, r.ver, valueLen(r, keysOnly), r.lease);
}

/** The store's own response header inside each range answer: IDs and term 0, as kv/types' header(). */
function innerHeaderSize(revision: number): number {
  return intField(0) + intField(0) + intField(revision) + intField(0);
}

function headerSize(h: WireHeader): number {
  return intField(h.cluster_id) + intField(h.member_id) + intField(h.revision) + intField(h.raft_term);
}

function rangeSize(s: RangeSelection): number {
  let n = lenField(innerHeaderSize(s.revision)) + 2 + intField(s.count);
  for (const r of s.recs) n += lenField(kvSize(r, s.keysOnly));
  return n;
}

/** The exact encoded size of the answer. */
export function txnAnswerSize(sel: ReadTxnSelection, header: WireHeader): number {
  let n = lenField(headerSize(header)) + 2;
  for (const s of sel.ranges) n += lenField(lenField(rangeSize(s)));
  return n;
}

/** A cursor writing protobuf's wire format into a buffer sized beforehand. */
class Out {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** A varint of an int64/uint64 (negative values as their two's complement, ten bytes). */
  varint(v: number | string): void {
    if (typeof v === 'string') v = v.length < 16 ? Number(v === '' ? 0 : v) : v;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      while (v > 127) {
        this.buf[this.pos++] = (v % 128) | 128;
        v = Math.floor(v / 128);
      }
      this.buf[this.pos++] = v;
      return;
    }
    let n = BigInt.asUintN(64, BigInt(v));
    while (n > 127n) {
      this.buf[this.pos++] = Number(n & 127n) | 128;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  /** Tag of field `field` (below 16) with wire type `type`. */
  tag(field: number, type: 0 | 2): void {
    this.byte((field << 3) | type);
  }

  int(field: number, v: number | string): void {
    this.tag(field, 0);
    this.varint(v);
  }

  bool(field: number, v: boolean): void {
    this.tag(field, 0);
    this.byte(v ? 1 : 0);
  }

  len(field: number, n: number): void {
    this.tag(field, 2);
    this.varint(n);
  }

  /** A bytes field from a latin1 string (one char per byte, as the store holds keys and values). */
  latin1(field: number, s: string): void {
    this.len(field, s.length);
    this.pos += this.buf.write(s, this.pos, s.length, 'latin1');
  }

  header(h: WireHeader): void {
    this.len(1, headerSize(h));
    this.int(1, h.cluster_id);
    this.int(2, h.member_id);
    this.int(3, h.revision);
    this.int(4, h.raft_term);
  }

  kv(r: Rec, keysOnly: boolean): void {
    this.len(2, kvSize(r, keysOnly));
    this.latin1(1, r.ki.key);
    this.int(2, r.create);
    this.int(3, r.mod);
    this.int(4, r.ver);
    if (valueLen(r, keysOnly) === 0) this.len(5, 0);
    else this.latin1(5, r.val!);
    this.int(6, r.lease);
  }
}

/**
 * The answer's bytes, `pause()` awaited after each step of about a MiB written (a small answer is
 * written without any pause), after `reserve` bytes left for the caller (a frame prefix). The records must stay as selected meanwhile: they are immutable, so
 * the store may move on. Refuses (throws) an answer over gRPC's send limit; the store refuses
 * those earlier, before selecting anything for them, with etcd's message.
 */
export async function encodeTxnAnswer(sel: ReadTxnSelection, header: WireHeader, pause: () => Promise<void>, reserve = 0): Promise<Buffer> {
  const size = txnAnswerSize(sel, header);
  if (size > MAX_RESPONSE_BYTES) throw new Error(`txn answer of ${size} bytes is over the send limit`);
  const out = new Out(Buffer.allocUnsafeSlow(reserve + size));
  out.pos = reserve;
  let stepEnd = reserve + STEP_BYTES;
  out.header(header);
  out.bool(2, sel.succeeded);
  for (const s of sel.ranges) {
    const body = rangeSize(s);
    out.len(3, lenField(body)); // ResponseOp
    out.len(1, body); // .response_range
    out.len(1, innerHeaderSize(s.revision));
    out.int(1, 0);
    out.int(2, 0);
    out.int(3, s.revision);
    out.int(4, 0);
    for (const r of s.recs) {
      out.kv(r, s.keysOnly);
      if (out.pos >= stepEnd) {
        await pause();
        stepEnd = out.pos + STEP_BYTES;
      }
    }
    out.bool(3, s.more);
    out.int(4, s.count);
  }
  if (out.pos !== reserve + size) throw new Error(`txn answer: wrote ${out.pos - reserve} bytes of ${size}`);
  return out.buf;
}

