/**
 * The byte format of a state-machine snapshot. The applied index is inside the same bytes as
 * the data it produced, so a snapshot can never pair data with the wrong index.
 *
 *   "RKVS" format(1) applied revision compact
 *   alarms: n × (memberID, alarm)         leases: n × (id, ttl)
 *   keys:   n × key, ascending            records: n × (key#, mod, sub, flags[, create, ver, value, lease])
 *   [format 2 only] auth: enabled revision users: n × (name, hash, noPassword, roles)
 *                         roles: n × (name, perms: n × (type, key, rangeEnd))
 *   crc32 of everything before (LE u32)
 *
 * Format 2 adds the auth store; a store that never configured auth writes format 1, byte for
 * byte as before, and format 1 restores to an empty auth store.
 *
 * Records are written in revision order, so restore rebuilds both the per-key histories and the
 * revision log in one pass without sorting; keys are written sorted, so the key index is built
 * by slicing rather than inserting.
 */
import { crc32 } from 'node:zlib';
import { BinReader, BinWriter } from './binary';
import { KeyIndex, Rec } from './mvcc';
import type { AlarmMember, AlarmType } from './types';
import { PERM_TYPES, type AuthState } from './auth';

const MAGIC = 'RKVS';
const FORMAT = 1;
const FORMAT_WITH_AUTH = 2;
const ALARMS: readonly AlarmType[] = ['NONE', 'NOSPACE', 'CORRUPT'];
const TOMBSTONE = 1;

export interface SnapshotState {
  appliedIndex: number;
  revision: number;
  compactRevision: number;
  alarms: AlarmMember[];
  leases: { id: string; ttl: number }[];
  /** Sorted by key. */
  keys: KeyIndex[];
  /** Every stored record ordered by (mod, sub). */
  log: Rec[];
  /** How many records of `log` belong to this state (default: all; a live log may grow meanwhile). */
  logLength?: number;
  /** Absent: auth was never configured (format 1). */
  auth?: AuthState;
}

export interface EncodeOptions {
  /** Write 0 as the applied index (a digest of the data alone). */
  withoutIndex?: boolean;
  /**
   * Bytes to put before the snapshot in the same buffer (a caller's envelope), so the caller
   * need not copy the whole snapshot to prepend them; the result then starts with them.
   */
  prefix?: Uint8Array;
}

export function encodeSnapshot(s: SnapshotState, opts: EncodeOptions = {}): Buffer {
  const steps = encodeSteps(s, opts);
  for (;;) {
    const n = steps.next();
    if (n.done) return n.value;
  }
}

/**
 * The same bytes as `encodeSnapshot`, encoded in steps of at most a few hundred records or about
 * a MiB, awaiting `pause()` between two steps so the event loop is free: a member's periodic
 * snapshot of a large store must not stop its heartbeats, peer pings and clients for the seconds
 * the whole encoding takes (measured: 100 MiB took 2.8-5.8 s on the loaded test machine, long
 * enough to lose the leader). Steps are counted, not timed, so a simulated member pausing on its
 * simulated clock replays the same way. `s` must stay valid meanwhile: records are immutable and
 * the first `logLength` records of `log` must not change (the store only appends to its log;
 * compaction replaces the array).
 */
export async function encodeSnapshotAsync(s: SnapshotState, pause: () => Promise<void>, opts: EncodeOptions = {}): Promise<Buffer> {
  const steps = encodeSteps(s, opts);
  for (;;) {
    const n = steps.next();
    if (n.done) return n.value;
    await pause();
  }
}

/** Work between two chances to pause: this many records, or this many value bytes. */
const STEP_RECORDS = 512;
const STEP_BYTES = 1 << 20;

/**
 * The encoder, pausing (yield) every few hundred records or MiB. Key numbers live in a map of
 * its own, not on the shared KeyIndex objects: two encodings of different views may interleave.
 */
function* encodeSteps(s: SnapshotState, opts: EncodeOptions): Generator<void, Buffer> {
  const logLength = s.logLength ?? s.log.length;
  let estimate = 64;
  for (let i = 0; i < logLength; i++) estimate += 16 + (s.log[i].val?.length ?? 0);
  for (const k of s.keys) estimate += 4 + k.key.length;
  yield;
  const w = new BinWriter(estimate + (opts.prefix?.length ?? 0) + 4);
  if (opts.prefix) w.raw(opts.prefix);
  for (let i = 0; i < MAGIC.length; i++) w.byte(MAGIC.charCodeAt(i));
  w.byte(s.auth ? FORMAT_WITH_AUTH : FORMAT);
  w.uvar(opts.withoutIndex ? 0 : s.appliedIndex);
  w.uvar(s.revision);
  w.uvar(s.compactRevision);
  w.uvar(s.alarms.length);
  for (const a of s.alarms) {
    w.latin1(a.memberID);
    w.byte(ALARMS.indexOf(a.alarm));
  }
  w.uvar(s.leases.length);
  for (const l of s.leases) {
    w.latin1(l.id);
    w.svar(l.ttl);
  }
  const slots = new Map<KeyIndex, number>();
  w.uvar(s.keys.length);
  for (let i = 0; i < s.keys.length; i++) {
    slots.set(s.keys[i], i);
    w.latin1(s.keys[i].key);
    if (i % (STEP_RECORDS * 8) === 0) yield;
  }
  w.uvar(logLength);
  let records = 0;
  let bytes = 0;
  for (let i = 0; i < logLength; i++) {
    const r = s.log[i];
    const slot = slots.get(r.ki);
    if (slot === undefined) throw new Error(`kv snapshot: record of key ${JSON.stringify(r.ki.key.slice(0, 64))} missing from the key index`);
    w.uvar(slot);
    w.uvar(r.mod);
    w.uvar(r.sub);
    if (r.val === null) {
      w.byte(TOMBSTONE);
    } else {
      w.byte(0);
      w.uvar(r.create);
      w.uvar(r.ver);
      w.latin1(r.val);
      w.latin1(r.lease);
      bytes += r.val.length;
    }
    if (++records >= STEP_RECORDS || bytes >= STEP_BYTES) {
      records = 0;
      bytes = 0;
      yield;
    }
  }
  if (s.auth) writeAuth(w, s.auth);
  // The checksum a MiB per step, written after the body in the same buffer: no 100 MiB copy.
  const body = w.finish();
  let crc = 0;
  for (let at = opts.prefix?.length ?? 0; at < body.length; at += STEP_BYTES) {
    crc = crc32(body.subarray(at, Math.min(body.length, at + STEP_BYTES)), crc);
    yield;
  }
  w.u32le(crc);
  return w.finish();
}

export function decodeSnapshot(data: Uint8Array): SnapshotState {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 9 || buf.toString('latin1', 0, 4) !== MAGIC) throw new Error('kv snapshot: bad magic');
  const body = buf.subarray(0, buf.length - 4);
  if (crc32(body) !== buf.readUInt32LE(buf.length - 4)) throw new Error('kv snapshot: checksum mismatch');
  const r = new BinReader(body);
  for (let i = 0; i < MAGIC.length; i++) r.byte();
  const format = r.byte();
  if (format !== FORMAT && format !== FORMAT_WITH_AUTH) throw new Error(`kv snapshot: unknown format ${format}`);
  const appliedIndex = r.uvar();
  const revision = r.uvar();
  const compactRevision = r.uvar();
  const alarms: AlarmMember[] = [];
  for (let n = r.uvar(); n > 0; n--) alarms.push({ memberID: r.latin1(), alarm: ALARMS[r.byte()] ?? 'NONE' });
  const leases: { id: string; ttl: number }[] = [];
  for (let n = r.uvar(); n > 0; n--) leases.push({ id: r.latin1(), ttl: r.svar() });
  // Reuse one string per lease ID instead of one per record.
  const leaseIds = new Map<string, string>([['0', '0']]);
  for (const l of leases) leaseIds.set(l.id, l.id);
  const nkeys = r.uvar();
  const keys: KeyIndex[] = new Array(nkeys);
  for (let i = 0; i < nkeys; i++) keys[i] = new KeyIndex(r.latin1());
  const nrecs = r.uvar();
  const log: Rec[] = new Array(nrecs);
  for (let i = 0; i < nrecs; i++) {
    const ki = keys[r.uvar()];
    if (!ki) throw new Error('kv snapshot: record of unknown key');
    const mod = r.uvar();
    const sub = r.uvar();
    let rec: Rec;
    if (r.byte() === TOMBSTONE) {
      rec = { ki, mod, sub, create: 0, ver: 0, val: null, lease: '0' };
    } else {
      const create = r.uvar();
      const ver = r.uvar();
      const val = r.latin1();
      const lease = r.latin1();
      rec = { ki, mod, sub, create, ver, val, lease: leaseIds.get(lease) ?? lease };
    }
    ki.recs.push(rec);
    log[i] = rec;
  }
  const auth = format === FORMAT_WITH_AUTH ? readAuth(r) : undefined;
  if (!r.done) throw new Error('kv snapshot: trailing bytes');
  return { appliedIndex, revision, compactRevision, alarms, leases, keys, log, ...(auth ? { auth } : {}) };
}

function writeUtf8(w: BinWriter, s: string): void {
  w.bytes(Buffer.from(s, 'utf8'));
}

function writeAuth(w: BinWriter, a: AuthState): void {
  w.byte(a.enabled ? 1 : 0);
  w.uvar(a.revision);
  w.uvar(a.users.length);
  for (const u of a.users) {
    writeUtf8(w, u.name);
    w.latin1(u.password);
    w.byte(u.noPassword ? 1 : 0);
    w.uvar(u.roles.length);
    for (const role of u.roles) writeUtf8(w, role);
  }
  w.uvar(a.roles.length);
  for (const role of a.roles) {
    writeUtf8(w, role.name);
    w.uvar(role.perms.length);
    for (const p of role.perms) {
      w.byte(PERM_TYPES.indexOf(p.permType));
      w.latin1(p.key);
      w.latin1(p.rangeEnd);
    }
  }
}

function readAuth(r: BinReader): AuthState {
  const utf8 = () => r.bytes().toString('utf8');
  const enabled = r.byte() === 1;
  const revision = r.uvar();
  const users: AuthState['users'] = [];
  for (let n = r.uvar(); n > 0; n--) {
    const name = utf8();
    const password = r.latin1();
    const noPassword = r.byte() === 1;
    const roles: string[] = [];
    for (let k = r.uvar(); k > 0; k--) roles.push(utf8());
    users.push({ name, password, noPassword, roles });
  }
  const roles: AuthState['roles'] = [];
  for (let n = r.uvar(); n > 0; n--) {
    const name = utf8();
    const perms: AuthState['roles'][number]['perms'] = [];
    for (let k = r.uvar(); k > 0; k--) {
      const permType = PERM_TYPES[r.byte()];
      if (permType === undefined) throw new Error('kv snapshot: unknown permission type');
      perms.push({ permType, key: r.latin1(), rangeEnd: r.latin1() });
    }
    roles.push({ name, perms });
  }
  return { enabled, revision, users, roles };
}
