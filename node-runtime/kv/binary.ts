/**
 * Minimal binary writer/reader shared by the command codec and the snapshot format:
 * zigzag varints for integers, length-prefixed byte strings. Deterministic: the same value
 * always encodes to the same bytes.
 *
 * Integers are JS numbers, and the varints cover the whole int64 range: every int64 field of
 * the etcd API reaches us as a number (see int64.ts), and whatever the API accepts must decode
 * again on every member, after every restart. The reader accepts exactly what the writer can
 * produce (at most 10 bytes, at most 64 bits); anything else is a corrupt entry.
 */

import { int64ToNumber } from './int64';

/** Node's undocumented-but-stable fast paths (what buf.write / toString dispatch to). */
interface Latin1Buffer extends Buffer {
  latin1Write(s: string, offset: number, length: number): number;
  latin1Slice(start: number, end: number): string;
}

export class BinWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initial = 64) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned varint of an integer in [0, 2^64). */
  uvar(n: number): void {
    if (n > Number.MAX_SAFE_INTEGER || !(n >= 0) || !Number.isInteger(n)) {
      if (Number.isInteger(n) && n >= 0 && n < 2 ** 64) return this.uvarBig(BigInt(n));
      throw new RangeError(`cannot encode ${n} as an unsigned 64-bit varint`);
    }
    this.ensure(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  /** Signed varint (zigzag) of an integer in the int64 range [-2^63, 2^63). */
  svar(n: number): void {
    // Zigzag doubles the magnitude: beyond 2^52 the float arithmetic would round.
    if (n >= -(2 ** 52) && n <= 2 ** 52 && Number.isInteger(n)) return this.uvar(n >= 0 ? n * 2 : -n * 2 - 1);
    if (!Number.isInteger(n) || n < -(2 ** 63) || n >= 2 ** 63) throw new RangeError(`cannot encode ${n} as a signed 64-bit varint`);
    const b = BigInt(n);
    this.uvarBig(b >= 0n ? b << 1n : (-b << 1n) - 1n);
  }

  private uvarBig(n: bigint): void {
    this.ensure(10);
    while (n >= 0x80n) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  bytes(b: Uint8Array): void {
    this.uvar(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A latin1 string (one byte per char): our in-memory form of keys and values. */
  latin1(s: string): void {
    this.uvar(s.length);
    this.ensure(s.length);
    this.pos += (this.buf as Latin1Buffer).latin1Write(s, this.pos, s.length);
  }

  /** Bytes as they are, no length. */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A fixed 4-byte little-endian unsigned integer. */
  u32le(n: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(n >>> 0, this.pos);
    this.pos += 4;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class BinReader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  static of(data: Uint8Array): BinReader {
    return new BinReader(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new RangeError('truncated input');
    return this.buf[this.pos++];
  }

  /** An unsigned varint of up to 64 bits (10 bytes). */
  uvar(): number {
    let n = 0;
    let mul = 1;
    // Seven bytes carry 49 bits: exact in a double. Longer varints go through bigint.
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 0x80;
    }
    return Number(this.uvarTail(BigInt(n)));
  }

  /** A zigzag varint of up to 64 bits: any int64. */
  svar(): number {
    const start = this.pos;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
      mul *= 0x80;
    }
    this.pos = start;
    let z = 0n;
    for (let i = 0; i < 7; i++) z |= BigInt(this.byte() & 0x7f) << BigInt(7 * i);
    z = this.uvarTail(z);
    return int64ToNumber((z & 1n) === 0n ? z >> 1n : -((z + 1n) >> 1n));
  }

  /** Bytes 8..10 of a varint whose first seven bytes gave `low` (49 bits). */
  private uvarTail(low: bigint): bigint {
    let n = low;
    for (let shift = 49n; ; shift += 7n) {
      const b = this.byte();
      // The tenth byte holds bit 63 only: more bits, or an eleventh byte, do not fit in 64 bits.
      if (shift === 63n && b > 1) throw new RangeError('varint overflows 64 bits');
      n |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return n;
    }
  }

  /** A view into the input (no copy): callers that keep it must copy. */
  bytes(): Buffer {
    const len = this.uvar();
    const end = this.pos + len;
    if (end > this.buf.length) throw new RangeError('truncated input');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  latin1(): string {
    const len = this.uvar();
    const end = this.pos + len;
    if (end > this.buf.length) throw new RangeError('truncated input');
    const s = (this.buf as Latin1Buffer).latin1Slice(this.pos, end);
    this.pos = end;
    return s;
  }
}
