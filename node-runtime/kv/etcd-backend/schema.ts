/**
 * How etcd 3.4 lays its state out in the backend (mvcc/kvstore.go, mvcc/revision.go,
 * lease/lessor.go, etcdserver/api/membership/store.go, etcdserver/api/v3alarm): bucket names,
 * revision keys and the protobuf records stored as values (proto3, gogoproto field order,
 * zero fields omitted).
 *
 *   key:   8-byte big-endian main revision, '_', 8-byte sub revision, 't' if a tombstone
 *          → mvccpb.KeyValue {1 key, 2 create_revision, 3 mod_revision, 4 version, 5 value, 6 lease}
 *          (a tombstone stores only the key)
 *   meta:  consistent_index → u64 BE; finishedCompactRev / scheduledCompactRev → revision key of the compaction
 *   lease: lease ID as u64 BE → leasepb.Lease {1 ID, 2 TTL}
 *   alarm: etcdserverpb.AlarmMember {1 memberID, 2 alarm} → empty value
 *   members: member ID in hex → JSON {"id","peerURLs","name","clientURLs"}
 */
export const BUCKETS = ["alarm", "auth", "authRoles", "authUsers", "cluster", "key", "lease", "members", "members_removed", "meta"] as const;

export const CONSISTENT_INDEX = "consistent_index";
export const FINISHED_COMPACT = "finishedCompactRev";
export const SCHEDULED_COMPACT = "scheduledCompactRev";
export const REV_KEY_LEN = 17;
const TOMBSTONE_MARK = 0x74; // 't'

/** Revisions are safe integers: written as two 32-bit halves (BigInt would cost more than the rest of the encoding). */
function writeU64(b: Buffer, n: number, off: number): void {
  b.writeUInt32BE(Math.floor(n / 0x100000000), off);
  b.writeUInt32BE(n >>> 0, off + 4);
}

function readU64(b: Buffer, off: number): number {
  const hi = b.readUInt32BE(off);
  if (hi > 0x1fffff) throw new Error(`revision ${b.readBigUInt64BE(off)} out of range`);
  return hi * 0x100000000 + b.readUInt32BE(off + 4);
}

export function revKey(main: number, sub: number, tombstone: boolean): Buffer {
  const b = Buffer.allocUnsafe(tombstone ? REV_KEY_LEN + 1 : REV_KEY_LEN);
  writeU64(b, main, 0);
  b[8] = 0x5f;
  writeU64(b, sub, 9);
  if (tombstone) b[REV_KEY_LEN] = TOMBSTONE_MARK;
  return b;
}

export interface Revision {
  main: number;
  sub: number;
  tombstone: boolean;
}

export function parseRevKey(b: Buffer): Revision {
  if ((b.length !== REV_KEY_LEN && b.length !== REV_KEY_LEN + 1) || b[8] !== 0x5f) throw new Error(`invalid revision key ${b.toString("hex")}`);
  return { main: readU64(b, 0), sub: readU64(b, 9), tombstone: b.length === REV_KEY_LEN + 1 && b[REV_KEY_LEN] === TOMBSTONE_MARK };
}

export function u64be(n: number | bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(n)), 0);
  return b;
}

// ------------------------------------------------------------------ protobuf wire helpers

function varintLen(n: bigint): number {
  let len = 1;
  while (n >= 0x80n) {
    n >>= 7n;
    len++;
  }
  return len;
}

function numVarintLen(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

/** Wire length of an int64 field's varint: negative numbers take 10 bytes, as in proto3. */
function int64Len(n: number | bigint): number {
  return typeof n === "number" && n >= 0 ? numVarintLen(n) : varintLen(BigInt.asUintN(64, BigInt(n)));
}

class PbWriter {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  tag(field: number, wire: number): void {
    this.buf[this.pos++] = (field << 3) | wire;
  }
  varint(n: number | bigint): void {
    if (typeof n === "number" && n >= 0) {
      while (n >= 0x80) {
        this.buf[this.pos++] = (n % 0x80) | 0x80;
        n = Math.floor(n / 0x80);
      }
      this.buf[this.pos++] = n;
      return;
    }
    let v = BigInt.asUintN(64, BigInt(n));
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }
  int(field: number, n: number | bigint): void {
    if (n === 0 || n === 0n) return;
    this.tag(field, 0);
    this.varint(n);
  }
  bytes(field: number, s: string, enc: BufferEncoding = "latin1"): void {
    const len = Buffer.byteLength(s, enc);
    if (len === 0) return;
    this.tag(field, 2);
    this.varint(len);
    this.pos += this.buf.write(s, this.pos, enc);
  }
  get done(): boolean {
    return this.pos === this.buf.length;
  }
}

function intFieldLen(n: number | bigint): number {
  return n === 0 || n === 0n ? 0 : 1 + int64Len(n);
}

function bytesFieldLen(len: number): number {
  return len === 0 ? 0 : 1 + numVarintLen(len) + len;
}

type Field = { wire: 0; value: number | bigint } | { wire: 2; value: Buffer };

/** Fields by number (only the small numbers etcd's messages use; others are skipped), last value wins. */
type Fields = (Field | undefined)[];
const MAX_FIELD = 16;

/**
 * Decodes a flat message. Varints up to 7 bytes (49 bits: every revision, version and length)
 * stay plain numbers; only longer ones (64-bit IDs) become BigInt — this runs once per stored
 * record on restore.
 */
function pbFields(b: Buffer): Fields {
  const out: Fields = [];
  let pos = 0;
  const varint = (): number | bigint => {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (pos >= b.length) throw new Error("truncated protobuf");
      const byte = b[pos++]!;
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 0x80;
    }
    let v = BigInt(n);
    let shift = 49n;
    for (;;) {
      if (pos >= b.length) throw new Error("truncated protobuf");
      const byte = b[pos++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asUintN(64, v);
      shift += 7n;
      if (shift > 63n) throw new Error("protobuf varint too long");
    }
  };
  while (pos < b.length) {
    const tag = Number(varint());
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let f: Field;
    if (wire === 0) f = { wire: 0, value: varint() };
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > b.length) throw new Error("truncated protobuf");
      f = { wire: 2, value: b.subarray(pos, pos + len) };
      pos += len;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (field < MAX_FIELD) out[field] = f;
  }
  return out;
}

/** An int64 field as a number when exact, else a (signed) BigInt. */
function intOf(f: Fields, n: number): number | bigint {
  const v = f[n];
  if (v?.wire !== 0) return 0;
  return typeof v.value === "number" ? v.value : BigInt.asIntN(64, v.value);
}

function bytesOf(f: Fields, n: number): Buffer {
  const v = f[n];
  return v?.wire === 2 ? v.value : Buffer.alloc(0);
}

// ------------------------------------------------------------------ records

/** A live key-value record; keys and values are latin1 strings (one char per byte), as in the store. */
export interface KvRecord {
  key: string;
  create: number;
  mod: number;
  version: number;
  value: string;
  /** Decimal lease ID, "0" for none. */
  lease: string;
}

export function keyValueSize(r: KvRecord): number {
  return bytesFieldLen(r.key.length) + intFieldLen(r.create) + intFieldLen(r.mod) + intFieldLen(r.version) + bytesFieldLen(r.value.length) + intFieldLen(r.lease === "0" ? 0 : BigInt(r.lease));
}

export function encodeKeyValue(r: KvRecord): Buffer {
  const lease = r.lease === "0" ? 0n : BigInt(r.lease);
  const buf = Buffer.allocUnsafe(keyValueSize(r));
  const w = new PbWriter(buf);
  w.bytes(1, r.key);
  w.int(2, r.create);
  w.int(3, r.mod);
  w.int(4, r.version);
  w.bytes(5, r.value);
  w.int(6, lease);
  if (!w.done) throw new Error("KeyValue size mismatch");
  return buf;
}

export function tombstoneSize(key: string): number {
  return bytesFieldLen(key.length);
}

export function encodeTombstone(key: string): Buffer {
  const buf = Buffer.allocUnsafe(tombstoneSize(key));
  new PbWriter(buf).bytes(1, key);
  return buf;
}

export function decodeKeyValue(b: Buffer): KvRecord {
  const f = pbFields(b);
  return {
    key: bytesOf(f, 1).toString("latin1"),
    create: Number(intOf(f, 2)),
    mod: Number(intOf(f, 3)),
    version: Number(intOf(f, 4)),
    value: bytesOf(f, 5).toString("latin1"),
    lease: intOf(f, 6).toString(),
  };
}

export function encodeLease(id: string, ttl: number): Buffer {
  const buf = Buffer.allocUnsafe(intFieldLen(BigInt(id)) + intFieldLen(ttl));
  const w = new PbWriter(buf);
  w.int(1, BigInt(id));
  w.int(2, ttl);
  return buf;
}

export function decodeLease(b: Buffer): { id: string; ttl: number } {
  const f = pbFields(b);
  return { id: intOf(f, 1).toString(), ttl: Number(intOf(f, 2)) };
}

export const ALARM_TYPES = ["NONE", "NOSPACE", "CORRUPT"] as const;
export type AlarmName = (typeof ALARM_TYPES)[number];

export function encodeAlarm(memberID: string, alarm: AlarmName): Buffer {
  const id = BigInt.asUintN(64, BigInt(memberID));
  const type = ALARM_TYPES.indexOf(alarm);
  const buf = Buffer.allocUnsafe(intFieldLen(id) + intFieldLen(type));
  const w = new PbWriter(buf);
  w.int(1, id);
  w.int(2, type);
  return buf;
}

export function decodeAlarm(b: Buffer): { memberID: string; alarm: AlarmName } {
  const f = pbFields(b);
  const v = f[1];
  return { memberID: (v?.wire === 0 ? v.value : 0).toString(), alarm: ALARM_TYPES[Number(intOf(f, 2))] ?? "NONE" };
}

export interface EtcdMember {
  /** Decimal or a number; written as etcd's JSON number. */
  id: number | string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** etcd's membership.Member as JSON (types.ID marshals as a decimal number; empty fields omitted). */
export function encodeMember(m: EtcdMember): Buffer {
  let json = `{"id":${BigInt(m.id).toString()},"peerURLs":${JSON.stringify(m.peerURLs)}`;
  if (m.isLearner) json += `,"isLearner":true`;
  if (m.name !== "") json += `,"name":${JSON.stringify(m.name)}`;
  if (m.clientURLs.length > 0) json += `,"clientURLs":${JSON.stringify(m.clientURLs)}`;
  return Buffer.from(json + "}", "utf8");
}

export function memberKey(id: number | string): Buffer {
  return Buffer.from(BigInt(id).toString(16), "latin1");
}
