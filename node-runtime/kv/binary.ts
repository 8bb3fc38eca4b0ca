/**
 * Minimal binary writer/reader shared by the command codec and the snapshot format:
 * zigzag varints for integers, length-prefixed byte strings. Deterministic: the same value
 * always encodes to the same bytes.
 */

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

  /** Unsigned varint of a non-negative safe integer. */
  uvar(n: number): void {
    this.ensure(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  /** Signed varint (zigzag) of a safe integer. */
  svar(n: number): void {
    this.uvar(n >= 0 ? n * 2 : -n * 2 - 1);
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

  uvar(): number {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = this.byte();
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 0x80;
      if (mul > 2 ** 56) throw new RangeError('varint too long');
    }
  }

  svar(): number {
    const z = this.uvar();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
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
