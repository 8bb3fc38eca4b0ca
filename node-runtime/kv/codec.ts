/**
 * The bytes of a KV command inside a raft entry. Hand-written rather than protobuf: one pass,
 * no reflection, and a fixed field order makes the encoding deterministic. The first byte is
 * the format version so the layout can evolve without misreading old logs.
 *
 * Decoded Buffers are views into the input; the store copies what it keeps.
 *
 * Format 1 is a bare command; format 2 prefixes it with who sent it (user name, auth
 * revision), written only when there is such an identity, so entries without one keep the
 * bytes of format 1.
 */
import { BinReader, BinWriter } from './binary';
import { AUTH_OPS, PERM_TYPES, type AuthPermission, type AuthRequest } from './auth';
import type {
  AlarmAction,
  AlarmType,
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeRequest,
  KvCommand,
  PutRequest,
  RangeRequest,
  RequestOp,
  SortOrder,
  SortTarget,
  TxnRequest,
} from './types';

const FORMAT = 1;
const FORMAT_WITH_AUTH = 2;
const EMPTY = Buffer.alloc(0);

const COMMANDS = ['put', 'deleteRange', 'txn', 'compact', 'leaseGrant', 'leaseRevoke', 'alarm', 'auth'] as const;
const SORT_ORDERS: readonly SortOrder[] = ['NONE', 'ASCEND', 'DESCEND'];
const SORT_TARGETS: readonly SortTarget[] = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const RESULTS: readonly CompareResult[] = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'];
const TARGETS: readonly CompareTarget[] = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'];
const ALARM_ACTIONS: readonly AlarmAction[] = ['GET', 'ACTIVATE', 'DEACTIVATE'];
const ALARMS: readonly AlarmType[] = ['NONE', 'NOSPACE', 'CORRUPT'];

const OP_RANGE = 1;
const OP_PUT = 2;
const OP_DELETE = 3;
const OP_TXN = 4;

export function encodeCommand(cmd: KvCommand): Buffer {
  const w = new BinWriter(cmd.type === 'put' ? 32 + (cmd.req.value?.length ?? 0) + cmd.req.key.length : 64);
  if (cmd.auth) {
    w.byte(FORMAT_WITH_AUTH);
    w.bytes(Buffer.from(cmd.auth.username, 'utf8'));
    w.uvar(cmd.auth.revision);
  } else {
    w.byte(FORMAT);
  }
  w.byte(COMMANDS.indexOf(cmd.type));
  switch (cmd.type) {
    case 'put':
      writePut(w, cmd.req);
      break;
    case 'deleteRange':
      writeDelete(w, cmd.req);
      break;
    case 'txn':
      writeTxn(w, cmd.req);
      break;
    case 'compact':
      w.svar(cmd.req.revision);
      w.byte(cmd.req.physical ? 1 : 0);
      break;
    case 'leaseGrant':
      w.latin1(cmd.req.ID);
      w.svar(cmd.req.TTL);
      break;
    case 'leaseRevoke':
      w.latin1(cmd.req.ID);
      break;
    case 'alarm':
      w.byte(index(ALARM_ACTIONS, cmd.req.action));
      w.latin1(cmd.req.memberID);
      w.byte(index(ALARMS, cmd.req.alarm));
      break;
    case 'auth':
      writeAuth(w, cmd.req);
      break;
  }
  return w.finish();
}

export function decodeCommand(data: Uint8Array): KvCommand {
  const r = BinReader.of(data);
  const format = r.byte();
  if (format !== FORMAT && format !== FORMAT_WITH_AUTH) throw new Error(`kv command: unknown format ${format}`);
  const auth = format === FORMAT_WITH_AUTH ? { username: utf8(r), revision: r.uvar() } : undefined;
  const tag = r.byte();
  const type = COMMANDS[tag];
  let cmd: KvCommand;
  switch (type) {
    case 'put':
      cmd = { type, req: readPut(r) };
      break;
    case 'deleteRange':
      cmd = { type, req: readDelete(r) };
      break;
    case 'txn':
      cmd = { type, req: readTxn(r) };
      break;
    case 'compact':
      cmd = { type, req: { revision: r.svar(), physical: r.byte() === 1 } };
      break;
    case 'leaseGrant':
      cmd = { type, req: { ID: r.latin1(), TTL: r.svar() } };
      break;
    case 'leaseRevoke':
      cmd = { type, req: { ID: r.latin1() } };
      break;
    case 'alarm':
      cmd = { type, req: { action: pick(ALARM_ACTIONS, r.byte()), memberID: r.latin1(), alarm: pick(ALARMS, r.byte()) } };
      break;
    case 'auth':
      cmd = { type, req: readAuth(r) };
      break;
    default:
      throw new Error(`kv command: unknown type ${tag}`);
  }
  if (!r.done) throw new Error('kv command: trailing bytes');
  if (auth) cmd.auth = auth;
  return cmd;
}

function utf8(r: BinReader): string {
  return r.bytes().toString('utf8');
}

function writeStr(w: BinWriter, s: string): void {
  w.bytes(Buffer.from(s, 'utf8'));
}

function writePerm(w: BinWriter, p: AuthPermission): void {
  w.byte(index(PERM_TYPES, p.permType));
  w.latin1(p.key);
  w.latin1(p.rangeEnd);
}

function readPerm(r: BinReader): AuthPermission {
  return { permType: pick(PERM_TYPES, r.byte()), key: r.latin1(), rangeEnd: r.latin1() };
}

function writeAuth(w: BinWriter, a: AuthRequest): void {
  w.byte(index(AUTH_OPS, a.op));
  switch (a.op) {
    case 'enable':
    case 'disable':
      break;
    case 'authenticate':
      writeStr(w, a.name);
      writeStr(w, a.prefix);
      break;
    case 'userAdd':
      writeStr(w, a.name);
      w.latin1(a.hash);
      w.byte(a.noPassword ? 1 : 0);
      break;
    case 'userDelete':
      writeStr(w, a.name);
      break;
    case 'userChangePassword':
      writeStr(w, a.name);
      w.latin1(a.hash);
      break;
    case 'userGrantRole':
      writeStr(w, a.user);
      writeStr(w, a.role);
      break;
    case 'userRevokeRole':
      writeStr(w, a.name);
      writeStr(w, a.role);
      break;
    case 'roleAdd':
      writeStr(w, a.name);
      break;
    case 'roleDelete':
      writeStr(w, a.role);
      break;
    case 'roleGrantPermission':
      writeStr(w, a.name);
      writePerm(w, a.perm);
      break;
    case 'roleRevokePermission':
      writeStr(w, a.role);
      w.latin1(a.key);
      w.latin1(a.rangeEnd);
      break;
  }
}

function readAuth(r: BinReader): AuthRequest {
  const op = pick(AUTH_OPS, r.byte());
  switch (op) {
    case 'enable':
    case 'disable':
      return { op };
    case 'authenticate':
      return { op, name: utf8(r), prefix: utf8(r) };
    case 'userAdd':
      return { op, name: utf8(r), hash: r.latin1(), noPassword: r.byte() === 1 };
    case 'userDelete':
      return { op, name: utf8(r) };
    case 'userChangePassword':
      return { op, name: utf8(r), hash: r.latin1() };
    case 'userGrantRole':
      return { op, user: utf8(r), role: utf8(r) };
    case 'userRevokeRole':
      return { op, name: utf8(r), role: utf8(r) };
    case 'roleAdd':
      return { op, name: utf8(r) };
    case 'roleDelete':
      return { op, role: utf8(r) };
    case 'roleGrantPermission':
      return { op, name: utf8(r), perm: readPerm(r) };
    case 'roleRevokePermission':
      return { op, role: utf8(r), key: r.latin1(), rangeEnd: r.latin1() };
  }
}

function writePut(w: BinWriter, p: PutRequest): void {
  w.byte((p.prev_kv ? 1 : 0) | (p.ignore_value ? 2 : 0) | (p.ignore_lease ? 4 : 0));
  w.bytes(p.key);
  w.bytes(p.value ?? EMPTY);
  w.latin1(p.lease ?? '0');
}

function readPut(r: BinReader): PutRequest {
  const f = r.byte();
  return {
    prev_kv: (f & 1) !== 0,
    ignore_value: (f & 2) !== 0,
    ignore_lease: (f & 4) !== 0,
    key: r.bytes(),
    value: r.bytes(),
    lease: r.latin1(),
  };
}

function writeDelete(w: BinWriter, d: DeleteRangeRequest): void {
  w.byte(d.prev_kv ? 1 : 0);
  w.bytes(d.key);
  w.bytes(d.range_end ?? EMPTY);
}

function readDelete(r: BinReader): DeleteRangeRequest {
  const f = r.byte();
  return { prev_kv: (f & 1) !== 0, key: r.bytes(), range_end: r.bytes() };
}

function writeRange(w: BinWriter, q: RangeRequest): void {
  w.byte((q.serializable ? 1 : 0) | (q.keys_only ? 2 : 0) | (q.count_only ? 4 : 0));
  w.bytes(q.key);
  w.bytes(q.range_end ?? EMPTY);
  w.svar(q.limit ?? 0);
  w.svar(q.revision ?? 0);
  w.byte(index(SORT_ORDERS, q.sort_order ?? 'NONE'));
  w.byte(index(SORT_TARGETS, q.sort_target ?? 'KEY'));
  w.svar(q.min_mod_revision ?? 0);
  w.svar(q.max_mod_revision ?? 0);
  w.svar(q.min_create_revision ?? 0);
  w.svar(q.max_create_revision ?? 0);
}

function readRange(r: BinReader): RangeRequest {
  const f = r.byte();
  return {
    serializable: (f & 1) !== 0,
    keys_only: (f & 2) !== 0,
    count_only: (f & 4) !== 0,
    key: r.bytes(),
    range_end: r.bytes(),
    limit: r.svar(),
    revision: r.svar(),
    sort_order: pick(SORT_ORDERS, r.byte()),
    sort_target: pick(SORT_TARGETS, r.byte()),
    min_mod_revision: r.svar(),
    max_mod_revision: r.svar(),
    min_create_revision: r.svar(),
    max_create_revision: r.svar(),
  };
}

function writeCompare(w: BinWriter, c: Compare): void {
  const t = index(TARGETS, c.target);
  w.byte(index(RESULTS, c.result));
  w.byte(t);
  w.bytes(c.key);
  w.bytes(c.range_end ?? EMPTY);
  switch (c.target) {
    case 'VERSION':
      w.svar(c.version ?? 0);
      break;
    case 'CREATE':
      w.svar(c.create_revision ?? 0);
      break;
    case 'MOD':
      w.svar(c.mod_revision ?? 0);
      break;
    case 'VALUE':
      w.bytes(c.value ?? EMPTY);
      break;
    case 'LEASE':
      w.latin1(c.lease ?? '0');
      break;
  }
}

function readCompare(r: BinReader): Compare {
  const result = pick(RESULTS, r.byte());
  const target = pick(TARGETS, r.byte());
  const c: Compare = { result, target, key: r.bytes(), range_end: r.bytes() };
  switch (target) {
    case 'VERSION':
      c.version = r.svar();
      break;
    case 'CREATE':
      c.create_revision = r.svar();
      break;
    case 'MOD':
      c.mod_revision = r.svar();
      break;
    case 'VALUE':
      c.value = r.bytes();
      break;
    case 'LEASE':
      c.lease = r.latin1();
      break;
  }
  return c;
}

function writeOps(w: BinWriter, ops: readonly RequestOp[]): void {
  w.uvar(ops.length);
  for (const op of ops) {
    if (op.request_range) {
      w.byte(OP_RANGE);
      writeRange(w, op.request_range);
    } else if (op.request_put) {
      w.byte(OP_PUT);
      writePut(w, op.request_put);
    } else if (op.request_delete_range) {
      w.byte(OP_DELETE);
      writeDelete(w, op.request_delete_range);
    } else if (op.request_txn) {
      w.byte(OP_TXN);
      writeTxn(w, op.request_txn);
    } else {
      throw new Error('kv command: empty RequestOp');
    }
  }
}

function readOps(r: BinReader): RequestOp[] {
  const n = r.uvar();
  const ops: RequestOp[] = [];
  for (let i = 0; i < n; i++) {
    const tag = r.byte();
    switch (tag) {
      case OP_RANGE:
        ops.push({ request_range: readRange(r) });
        break;
      case OP_PUT:
        ops.push({ request_put: readPut(r) });
        break;
      case OP_DELETE:
        ops.push({ request_delete_range: readDelete(r) });
        break;
      case OP_TXN:
        ops.push({ request_txn: readTxn(r) });
        break;
      default:
        throw new Error(`kv command: unknown op ${tag}`);
    }
  }
  return ops;
}

function writeTxn(w: BinWriter, t: TxnRequest): void {
  const cmp = t.compare ?? [];
  w.uvar(cmp.length);
  for (const c of cmp) writeCompare(w, c);
  writeOps(w, t.success ?? []);
  writeOps(w, t.failure ?? []);
}

function readTxn(r: BinReader): TxnRequest {
  const n = r.uvar();
  const compare: Compare[] = [];
  for (let i = 0; i < n; i++) compare.push(readCompare(r));
  const success = readOps(r);
  const failure = readOps(r);
  return { compare, success, failure };
}

function index<T>(values: readonly T[], v: T): number {
  const i = values.indexOf(v);
  if (i < 0) throw new Error(`kv command: invalid enum value ${String(v)}`);
  return i;
}

function pick<T>(values: readonly T[], i: number): T {
  if (i >= values.length) throw new Error(`kv command: invalid enum index ${i}`);
  return values[i];
}
