/**
 * Checks the server runs on a request before proposing it (etcd does these in its gRPC layer,
 * v3rpc/key.go, and in EtcdServer before raft), so malformed requests never reach the log.
 * Besides etcd's own checks, every field must be something the command codec carries and the
 * state machine understands (int64 integers, decimal int64 IDs, known enum values): an entry
 * that cannot be applied would be applied by every member, after every restart.
 */
import {
  KvError,
  errDuplicateKey,
  errEmptyKey,
  errInvalidField,
  errLeaseProvided,
  errLeaseTTLTooLarge,
  errRequestTooLarge,
  errTooManyOps,
  errValueProvided,
} from './errors';
import { encodeCommand } from './codec';
import { isInt64Number } from './int64';
import { MAX_LEASE_TTL } from './lessor';
import { AUTH_OPS, PERM_TYPES, type AuthPermission, type AuthRequest } from './auth';
import type { AlarmRequest, Compare, DeleteRangeRequest, KvCommand, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types';

const SORT_ORDERS: readonly unknown[] = ['NONE', 'ASCEND', 'DESCEND'];
const SORT_TARGETS: readonly unknown[] = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const RESULTS: readonly unknown[] = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'];
const TARGETS: readonly unknown[] = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'];
const ALARM_ACTIONS: readonly unknown[] = ['GET', 'ACTIVATE', 'DEACTIVATE'];
const ALARMS: readonly unknown[] = ['NONE', 'NOSPACE', 'CORRUPT'];
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

/** A 64-bit ID as the state machine keeps it: decimal, in int64 (lease IDs) or uint64 (member IDs) range. */
function isDecimalId(v: unknown, unsigned = false): boolean {
  if (typeof v !== 'string' || !/^-?\d{1,20}$/.test(v)) return false;
  const n = BigInt(v);
  return unsigned ? n >= 0n && n <= UINT64_MAX : n >= -INT64_MAX - 1n && n <= INT64_MAX;
}

function optInt(v: number | undefined): boolean {
  return v === undefined || isInt64Number(v);
}

function isBytes(v: unknown): boolean {
  return Buffer.isBuffer(v);
}

function optBytes(v: unknown): boolean {
  return v === undefined || Buffer.isBuffer(v);
}

/** The codec-level checks of a range (ints, enums, bytes); etcd's own rules are in validateRange. */
function rangeFields(r: RangeRequest): KvError | undefined {
  if (!isBytes(r.key) || !optBytes(r.range_end)) return errInvalidField('key');
  for (const [name, v] of [
    ['limit', r.limit],
    ['revision', r.revision],
    ['min_mod_revision', r.min_mod_revision],
    ['max_mod_revision', r.max_mod_revision],
    ['min_create_revision', r.min_create_revision],
    ['max_create_revision', r.max_create_revision],
  ] as const) {
    if (!optInt(v)) return errInvalidField(name);
  }
  if (r.sort_order !== undefined && !SORT_ORDERS.includes(r.sort_order)) return errInvalidField('sort_order');
  if (r.sort_target !== undefined && !SORT_TARGETS.includes(r.sort_target)) return errInvalidField('sort_target');
  return undefined;
}

function compareFields(c: Compare): KvError | undefined {
  if (!isBytes(c.key) || !optBytes(c.range_end)) return errInvalidField('key');
  if (!RESULTS.includes(c.result)) return errInvalidField('result');
  if (!TARGETS.includes(c.target)) return errInvalidField('target');
  if (!optInt(c.version)) return errInvalidField('version');
  if (!optInt(c.create_revision)) return errInvalidField('create_revision');
  if (!optInt(c.mod_revision)) return errInvalidField('mod_revision');
  if (!optBytes(c.value)) return errInvalidField('value');
  if (c.lease !== undefined && !isDecimalId(c.lease)) return errInvalidField('lease');
  return undefined;
}

function alarmFields(a: AlarmRequest): KvError | undefined {
  if (!ALARM_ACTIONS.includes(a.action)) return errInvalidField('action');
  if (!ALARMS.includes(a.alarm)) return errInvalidField('alarm');
  if (!isDecimalId(a.memberID, true)) return errInvalidField('memberID');
  return undefined;
}

export interface Limits {
  /** etcd's --max-txn-ops. */
  maxTxnOps: number;
  /** etcd's --max-request-bytes: the encoded command must not be larger. */
  maxRequestBytes: number;
}

export const DEFAULT_LIMITS: Limits = { maxTxnOps: 128, maxRequestBytes: 1.5 * 1024 * 1024 };

export function validateRange(r: RangeRequest): KvError | undefined {
  return rangeFields(r) ?? (r.key.length === 0 ? errEmptyKey() : undefined);
}

export function validatePut(p: PutRequest): KvError | undefined {
  if (!isBytes(p.key) || !optBytes(p.value)) return errInvalidField('key');
  if (p.lease !== undefined && p.lease !== '' && !isDecimalId(p.lease)) return errInvalidField('lease');
  if (p.key.length === 0) return errEmptyKey();
  if (p.ignore_value && p.value !== undefined && p.value.length !== 0) return errValueProvided();
  if (p.ignore_lease && p.lease !== undefined && p.lease !== '0' && p.lease !== '') return errLeaseProvided();
  return undefined;
}

export function validateDelete(d: DeleteRangeRequest): KvError | undefined {
  if (!isBytes(d.key) || !optBytes(d.range_end)) return errInvalidField('key');
  return d.key.length === 0 ? errEmptyKey() : undefined;
}

export function validateTxn(t: TxnRequest, maxTxnOps = DEFAULT_LIMITS.maxTxnOps): KvError | undefined {
  const err = checkTxn(t, maxTxnOps);
  if (err) return err;
  // Like etcd, overlap checks run after the cheap checks so a huge txn fails fast.
  try {
    checkIntervals(t.success ?? []);
    checkIntervals(t.failure ?? []);
  } catch (e) {
    if (e instanceof KvError) return e;
    throw e;
  }
  return undefined;
}

/** The checks for any command the server is about to propose, including its encoded size. */
export function validateCommand(cmd: KvCommand, encodedSize: number, limits: Limits = DEFAULT_LIMITS): KvError | undefined {
  if (encodedSize > limits.maxRequestBytes) return errRequestTooLarge();
  switch (cmd.type) {
    case 'put':
      return validatePut(cmd.req);
    case 'deleteRange':
      return validateDelete(cmd.req);
    case 'txn':
      return validateTxn(cmd.req, limits.maxTxnOps);
    case 'compact':
      // Future and compacted revisions depend on the state at apply time; the apply answers them.
      return isInt64Number(cmd.req.revision) ? undefined : errInvalidField('revision');
    case 'leaseGrant':
      if (!isInt64Number(cmd.req.TTL)) return errInvalidField('TTL');
      // etcd refuses this before proposing (v3_server.go LeaseGrant); negative TTLs get the minimum.
      if (cmd.req.TTL > MAX_LEASE_TTL) return errLeaseTTLTooLarge();
      return isDecimalId(cmd.req.ID) ? undefined : errInvalidField('ID');
    case 'leaseRevoke':
      return isDecimalId(cmd.req.ID) ? undefined : errInvalidField('ID');
    case 'alarm':
      return alarmFields(cmd.req);
    case 'auth':
      return authFields(cmd.req);
  }
}

/** Only the server builds auth commands; strings and enums must still be what the codec carries. */
function authFields(a: AuthRequest): KvError | undefined {
  for (const v of Object.values(a)) {
    if (typeof v === 'string' || typeof v === 'boolean') continue;
    const p = v as AuthPermission;
    if (!PERM_TYPES.includes(p.permType) || typeof p.key !== 'string' || typeof p.rangeEnd !== 'string') return errInvalidField('perm');
  }
  return AUTH_OPS.includes(a.op) ? undefined : errInvalidField('auth op');
}

/**
 * The one way a KV command becomes bytes for the log: validated (etcd's order: the request's
 * own rules first, its encoded size last), then encoded. Throws the KvError a client gets.
 */
export function prepareCommand(cmd: KvCommand, limits: Limits = DEFAULT_LIMITS): Buffer {
  const invalid = validateCommand(cmd, 0, limits);
  if (invalid) throw invalid;
  const encoded = encodeCommand(cmd);
  if (encoded.length > limits.maxRequestBytes) throw errRequestTooLarge();
  return encoded;
}

function checkTxn(t: TxnRequest, maxTxnOps: number): KvError | undefined {
  const compare = t.compare ?? [];
  const success = t.success ?? [];
  const failure = t.failure ?? [];
  const opc = Math.max(compare.length, success.length, failure.length);
  if (opc > maxTxnOps) return errTooManyOps();
  for (const c of compare) {
    const bad = compareFields(c);
    if (bad) return bad;
    if (c.key.length === 0) return errEmptyKey();
  }
  for (const op of success) {
    const e = checkOp(op, maxTxnOps - opc);
    if (e) return e;
  }
  for (const op of failure) {
    const e = checkOp(op, maxTxnOps - opc);
    if (e) return e;
  }
  return undefined;
}

function checkOp(op: RequestOp, maxTxnOps: number): KvError | undefined {
  if (op.request_range) return validateRange(op.request_range);
  if (op.request_put) return validatePut(op.request_put);
  if (op.request_delete_range) return validateDelete(op.request_delete_range);
  if (op.request_txn) return checkTxn(op.request_txn, maxTxnOps);
  return new KvError('INVALID_ARGUMENT', 'etcdserver: key not found');
}

/** [begin, end) over latin1 keys; a point delete is [key, key + "\0"). */
interface Interval {
  begin: string;
  end: string;
}

function covers(dels: readonly Interval[], key: string): boolean {
  for (const d of dels) if (d.begin <= key && key < d.end) return true;
  return false;
}

/**
 * etcd's rule: within one branch, a key may not be put twice, nor put and deleted; nested
 * txns contribute both their branches (a key put in both then and else of the same nested
 * txn is fine, they are exclusive). A "\0" range_end is compared as a plain byte string here,
 * exactly as etcd's interval check does, so "delete from key" does not conflict with puts.
 */
function checkIntervals(ops: readonly RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    const d = op.request_delete_range;
    if (!d) continue;
    const begin = d.key.toString('latin1');
    const end = d.range_end && d.range_end.length > 0 ? d.range_end.toString('latin1') : begin + '\0';
    dels.push({ begin, end });
  }
  const puts = new Set<string>();
  for (const op of ops) {
    const t = op.request_txn;
    if (!t) continue;
    const then = checkIntervals(t.success ?? []);
    const otherwise = checkIntervals(t.failure ?? []);
    for (const k of then.puts) {
      if (puts.has(k) || covers(dels, k)) throw errDuplicateKey();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw errDuplicateKey();
      if (covers(dels, k)) throw errDuplicateKey();
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    const p = op.request_put;
    if (!p) continue;
    const k = p.key.toString('latin1');
    if (puts.has(k) || covers(dels, k)) throw errDuplicateKey();
    puts.add(k);
  }
  return { puts, dels };
}
