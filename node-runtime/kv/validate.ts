/**
 * Checks the server runs on a request before proposing it (etcd does these in its gRPC layer,
 * v3rpc/key.go), so malformed requests never reach the log. The state machine does not rely
 * on them for safety: apply() tolerates anything the codec can carry.
 */
import {
  KvError,
  errDuplicateKey,
  errEmptyKey,
  errLeaseProvided,
  errRequestTooLarge,
  errTooManyOps,
  errValueProvided,
} from './errors';
import type { DeleteRangeRequest, KvCommand, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types';

export interface Limits {
  /** etcd's --max-txn-ops. */
  maxTxnOps: number;
  /** etcd's --max-request-bytes: the encoded command must not be larger. */
  maxRequestBytes: number;
}

export const DEFAULT_LIMITS: Limits = { maxTxnOps: 128, maxRequestBytes: 1.5 * 1024 * 1024 };

export function validateRange(r: RangeRequest): KvError | undefined {
  return r.key.length === 0 ? errEmptyKey() : undefined;
}

export function validatePut(p: PutRequest): KvError | undefined {
  if (p.key.length === 0) return errEmptyKey();
  if (p.ignore_value && p.value !== undefined && p.value.length !== 0) return errValueProvided();
  if (p.ignore_lease && p.lease !== undefined && p.lease !== '0' && p.lease !== '') return errLeaseProvided();
  return undefined;
}

export function validateDelete(d: DeleteRangeRequest): KvError | undefined {
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
    default:
      return undefined;
  }
}

function checkTxn(t: TxnRequest, maxTxnOps: number): KvError | undefined {
  const compare = t.compare ?? [];
  const success = t.success ?? [];
  const failure = t.failure ?? [];
  const opc = Math.max(compare.length, success.length, failure.length);
  if (opc > maxTxnOps) return errTooManyOps();
  for (const c of compare) if (c.key.length === 0) return errEmptyKey();
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
