/**
 * Little-endian binary helpers shared by the WAL record and snapshot file formats. Indexes,
 * terms and member IDs are JavaScript safe integers stored in 8 bytes (two u32 halves), so
 * the format has room for etcd-sized values without BigInt on the hot path.
 */
import type { ConfState } from "../raft/types";

const TWO_32 = 0x1_0000_0000;

/** Thrown when a buffer that passed its checksum does not decode: a format bug, not a torn write. */
export class DecodeError extends Error {}

export function checkU64(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${n}`);
}

export class Writer {
  private pos: number;
  constructor(readonly buf: Buffer, start = 0) {
    this.pos = start;
  }
  get offset(): number {
    return this.pos;
  }
  u8(v: number): void {
    this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }
  u64(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.buf.writeUInt32LE(Math.floor(v / TWO_32), this.pos + 4);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  confState(cs: ConfState): void {
    this.u32(cs.voters.length);
    for (const id of cs.voters) this.u64(id);
    this.u32(cs.learners.length);
    for (const id of cs.learners) this.u64(id);
  }
}

export function confStateBytes(cs: ConfState): number {
  return 8 + 8 * (cs.voters.length + cs.learners.length);
}

export function checkConfState(cs: ConfState): void {
  for (const id of cs.voters) checkU64("voter id", id);
  for (const id of cs.learners) checkU64("learner id", id);
}

export class Reader {
  private pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    private readonly end: number,
  ) {
    this.pos = start;
  }
  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.end) throw new DecodeError(`truncated field: need ${n} bytes, have ${this.end - this.pos}`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    if (hi >= 0x20_0000) throw new DecodeError(`u64 field exceeds the safe integer range`);
    return hi * TWO_32 + lo;
  }
  /** Copies, so a decoded value never pins the (large) buffer it was read from. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
  confState(): ConfState {
    const ids = (): number[] => {
      const n = this.u32();
      if (n * 8 > this.remaining) throw new DecodeError(`member list of ${n} exceeds the record`);
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(this.u64());
      return out;
    };
    const voters = ids();
    const learners = ids();
    return { voters, learners };
  }
  expectEnd(what: string): void {
    if (this.pos !== this.end) throw new DecodeError(`${what}: ${this.end - this.pos} unexpected trailing bytes`);
  }
}
