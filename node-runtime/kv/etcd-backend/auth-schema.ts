/**
 * The auth store in etcd 3.4's backend: bucket `auth` holds `authEnabled` (one byte, 1 or 0) and
 * `authRevision` (uint64 big-endian); `authUsers` maps a user name to an authpb.User
 * {name, password (the bcrypt hash), roles, options{no_password}}; `authRoles` maps a role name
 * to an authpb.Role {name, keyPermission: [{permType, key, range_end}]}. Names are UTF-8 bytes,
 * keys and range ends raw bytes (latin1 strings in the store).
 */
import { PERM_TYPES, byteOrder, type AuthPermission, type AuthRole, type AuthState, type AuthUser } from "../auth";

export const AUTH_ENABLED_KEY = "authEnabled";
export const AUTH_REVISION_KEY = "authRevision";

// ------------------------------------------------------------------ protobuf, the few shapes used here

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
}

function bytesField(field: number, b: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
}

function varintField(field: number, n: number): Buffer {
  return n === 0 ? Buffer.alloc(0) : Buffer.concat([varint(field << 3), varint(n)]);
}

type PbField = { field: number; wire: 0; num: number } | { field: number; wire: 2; bytes: Buffer };

/** Every field in order (repeated ones included); varints read up to 2^53. */
function fields(b: Buffer): PbField[] {
  const out: PbField[] = [];
  let pos = 0;
  const readVarint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (pos >= b.length) throw new Error("truncated protobuf");
      const byte = b[pos++]!;
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 0x80;
      if (mul > 2 ** 63) throw new Error("protobuf varint too long");
    }
  };
  while (pos < b.length) {
    const tag = readVarint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) out.push({ field, wire, num: readVarint() });
    else if (wire === 2) {
      const len = readVarint();
      if (pos + len > b.length) throw new Error("truncated protobuf");
      out.push({ field, wire, bytes: b.subarray(pos, pos + len) });
      pos += len;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
  return out;
}

const bytesOf = (fs: PbField[], n: number): Buffer[] => fs.flatMap((f) => (f.field === n && f.wire === 2 ? [f.bytes] : []));
const numOf = (fs: PbField[], n: number): number => fs.reduce((v, f) => (f.field === n && f.wire === 0 ? f.num : v), 0);

// ------------------------------------------------------------------ records

export function encodeUser(u: AuthUser): Buffer {
  return Buffer.concat([
    bytesField(1, Buffer.from(u.name, "utf8")),
    u.password === "" ? Buffer.alloc(0) : bytesField(2, Buffer.from(u.password, "utf8")),
    ...u.roles.map((r) => bytesField(3, Buffer.from(r, "utf8"))),
    u.noPassword ? bytesField(4, varintField(1, 1)) : Buffer.alloc(0),
  ]);
}

export function decodeUser(b: Buffer): AuthUser {
  const fs = fields(b);
  const options = bytesOf(fs, 4)[0];
  return {
    name: (bytesOf(fs, 1)[0] ?? Buffer.alloc(0)).toString("utf8"),
    password: (bytesOf(fs, 2)[0] ?? Buffer.alloc(0)).toString("utf8"),
    roles: bytesOf(fs, 3)
      .map((r) => r.toString("utf8"))
      .sort(byteOrder),
    noPassword: options !== undefined && numOf(fields(options), 1) !== 0,
  };
}

function encodePermission(p: AuthPermission): Buffer {
  return Buffer.concat([
    varintField(1, PERM_TYPES.indexOf(p.permType)),
    p.key === "" ? Buffer.alloc(0) : bytesField(2, Buffer.from(p.key, "latin1")),
    p.rangeEnd === "" ? Buffer.alloc(0) : bytesField(3, Buffer.from(p.rangeEnd, "latin1")),
  ]);
}

function decodePermission(b: Buffer): AuthPermission {
  const fs = fields(b);
  const t = PERM_TYPES[numOf(fs, 1)];
  if (t === undefined) throw new Error(`unknown permission type ${numOf(fs, 1)}`);
  return { permType: t, key: (bytesOf(fs, 2)[0] ?? Buffer.alloc(0)).toString("latin1"), rangeEnd: (bytesOf(fs, 3)[0] ?? Buffer.alloc(0)).toString("latin1") };
}

export function encodeRole(r: AuthRole): Buffer {
  return Buffer.concat([bytesField(1, Buffer.from(r.name, "utf8")), ...r.perms.map((p) => bytesField(2, encodePermission(p)))]);
}

export function decodeRole(b: Buffer): AuthRole {
  const fs = fields(b);
  return { name: (bytesOf(fs, 1)[0] ?? Buffer.alloc(0)).toString("utf8"), perms: bytesOf(fs, 2).map(decodePermission) };
}

/** The revision etcd keeps for a store: it starts at 1 and counts every auth change. */
export function authRevisionOf(a: AuthState | undefined): number {
  return Math.max(a?.revision ?? 1, 1);
}

/**
 * Reads the auth buckets back. A backend whose auth was never used (no users, no roles, never
 * enabled) gives undefined: the store then keeps its format without auth state.
 */
export function decodeAuthBuckets(enabled: Buffer | undefined, revision: Buffer | undefined, users: Buffer[], roles: Buffer[]): AuthState | undefined {
  const on = enabled !== undefined && enabled.length === 1 && enabled[0] === 1;
  if (!on && users.length === 0 && roles.length === 0) return undefined;
  const rev = revision !== undefined && revision.length === 8 ? Number(revision.readBigUInt64BE(0)) : 1;
  return {
    enabled: on,
    revision: rev,
    users: users.map(decodeUser).sort((a, b) => byteOrder(a.name, b.name)),
    roles: roles.map(decodeRole).sort((a, b) => byteOrder(a.name, b.name)),
  };
}
