/**
 * The replicated state machine: etcd v3 KV, lease and alarm semantics over the in-memory
 * multi-version key space (mvcc.ts). apply() is deterministic — its result depends only on the
 * state and the command — and idempotent by raft index, so replaying the log after a restore
 * from a snapshot is safe. Reads (range, watch, time-to-live) are local; the server decides
 * whether they are linearizable.
 */
import { createHash } from 'node:crypto';
import {
  KvError,
  WatchCompactedError,
  errCompacted,
  errFutureRev,
  errKeyNotFound,
  errLeaseExists,
  errLeaseNotFound,
  errLeaseTTLTooLarge,
  errCorrupt,
  errNoSpace,
  errResponseTooLarge,
} from './errors';
import { MAX_RESPONSE_BYTES, keyValueSize, lenField } from './wire-size';
import { Lease, Lessor, MAX_LEASE_TTL, compareIds } from './lessor';
import { AuthStore, type AuthState, type RequestAuth } from './auth';
import { Mvcc, Rec, recCost, spanOf } from './mvcc';
import { SnapshotState, decodeSnapshot, encodeSnapshot, encodeSnapshotAsync } from './snapshot';
import {
  AlarmMember,
  AlarmRequest,
  AlarmResponse,
  AuthResponse,
  Compare,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  Event,
  HashKVResponse,
  KeyValue,
  KvCommand,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  header,
} from './types';
import { CatchUp, Change, WatchHandle, WatchHub, WatchListener, WatchOptions, Watcher } from './watch';
import { decodeCommand } from './codec';
import type { ReadTxnSelection } from './read-encoder';

export interface KvStoreOptions {
  /** etcd's --quota-backend-bytes: approximate bytes of stored records (live and history). */
  quotaBytes: number;
  /** Lease TTLs below this are raised to it (etcd derives 2 s from its default election timeout). */
  minLeaseTTL: number;
  /**
   * Largest txn response built (gRPC's send limit). The same on every member: a write txn over it
   * is refused at apply. Only tests change it.
   */
  maxResponseBytes?: number;
}

export const DEFAULT_OPTIONS: KvStoreOptions = { quotaBytes: 2 * 1024 ** 3, minLeaseTTL: 2, maxResponseBytes: MAX_RESPONSE_BYTES };

/** Bookkeeping bytes a lease counts against the quota. */
const LEASE_COST = 64;
const NO_LEASE = '0';
const EMPTY = Buffer.alloc(0);
/** A bound on a txn response's or response op's bytes besides its key-values (header, wrappers, count). */
const TXN_RESPONSE_OVERHEAD = 96;
/** Bytes an event costs beyond its key and values, for catch-up batch budgets. */
const EVENT_OVERHEAD = 64;

export interface ResponseOf {
  put: PutResponse;
  deleteRange: DeleteRangeResponse;
  txn: TxnResponse;
  compact: CompactionResponse;
  leaseGrant: LeaseGrantResponse;
  leaseRevoke: LeaseRevokeResponse;
  alarm: AlarmResponse;
  auth: AuthResponse;
}

export type KvApplyResult<R> =
  | { kind: 'ok'; response: R }
  | { kind: 'error'; error: KvError }
  /** The index was applied before (replay after restore): nothing changed. */
  | { kind: 'skipped' };

/**
 * The key-values one txn response has built, by record: ranges of a txn that read the same
 * records share one copy of each (the encoder writes it out once per range; only the copies made
 * before encoding are saved, up to 128 of them for 128 ranges over the same keys).
 */
interface SharedKvs {
  full: Map<Rec, KeyValue>;
  keysOnly: Map<Rec, KeyValue>;
}

/** One write transaction in progress: all its writes share revision begin + 1. */
class WriteTxn {
  readonly changes: Rec[] = [];
  readonly prevs: (Rec | undefined)[] = [];
  constructor(readonly beginRev: number) {}

  /** The revision reads inside the txn see (its own writes included). */
  get readRev(): number {
    return this.changes.length > 0 ? this.beginRev + 1 : this.beginRev;
  }
}

export class KvStore {
  private mvcc: Mvcc;
  private rev = 1;
  private compactRev = 0;
  private applied = 0;
  private alarmList: AlarmMember[] = [];
  readonly lessor: Lessor;
  /** Users, roles and permissions (replicated, part of the snapshot). */
  auth = new AuthStore();
  private readonly hub = new WatchHub();
  private nextWatchId = 1;
  private readonly opts: KvStoreOptions;

  constructor(opts: Partial<KvStoreOptions> = {}) {
    this.opts = { ...DEFAULT_OPTIONS, ...opts };
    this.mvcc = new Mvcc();
    this.lessor = new Lessor();
  }

  /** Highest raft index whose command is reflected in this state. */
  get appliedIndex(): number {
    return this.applied;
  }

  /** Current store revision; 1 for an empty store, like etcd. */
  get revision(): number {
    return this.rev;
  }

  /** Revisions below this can no longer be read; 0 before the first compaction. */
  get compactRevision(): number {
    return this.compactRev;
  }

  get keyCount(): number {
    return this.mvcc.keyCount;
  }

  /** Approximate stored bytes, the measure the quota applies to (Maintenance Status dbSize). */
  dbSize(): number {
    return this.mvcc.bytes + this.lessor.size * LEASE_COST;
  }

  alarms(): AlarmMember[] {
    return this.alarmList.map((a) => ({ ...a }));
  }

  // ---------------------------------------------------------------- apply

  /** Applies a raft entry's data: an encoded command, or nothing (leader no-op). */
  applyEntry(index: number, data: Uint8Array): KvApplyResult<ResponseOf[keyof ResponseOf]> {
    if (data.length === 0) {
      this.advance(index);
      return { kind: 'skipped' };
    }
    return this.apply(index, decodeCommand(data));
  }

  /** Records that an entry carrying no KV command (no-op, conf change) was applied. */
  advance(index: number): void {
    if (index > this.applied) this.applied = index;
  }

  apply<C extends KvCommand>(index: number, cmd: C): KvApplyResult<ResponseOf[C['type']]> {
    if (index <= this.applied) return { kind: 'skipped' };
    this.applied = index;
    try {
      return { kind: 'ok', response: this.execute(index, cmd) as ResponseOf[C['type']] };
    } catch (e) {
      if (e instanceof KvError) return { kind: 'error', error: e };
      throw e;
    }
  }

  private execute(index: number, cmd: KvCommand): ResponseOf[keyof ResponseOf] {
    // etcd 3.4 (applierV3Corrupt): once a CORRUPT alarm is raised every write is refused until
    // an operator disarms it; reads and alarm requests still work.
    if (cmd.type !== 'alarm' && cmd.type !== 'auth' && this.hasAlarm('CORRUPT')) throw errCorrupt();
    if (this.auth.enabled) this.checkPermission(cmd);
    switch (cmd.type) {
      case 'put':
        return this.applyPut(cmd.req);
      case 'deleteRange':
        return this.applyDelete(cmd.req);
      case 'txn':
        return this.applyTxn(cmd.req);
      case 'compact':
        return this.applyCompact(cmd.req);
      case 'leaseGrant':
        return this.applyLeaseGrant(index, cmd.req);
      case 'leaseRevoke':
        return this.applyLeaseRevoke(cmd.req);
      case 'alarm':
        return this.applyAlarm(cmd.req);
      case 'auth':
        return { header: header(this.rev), result: this.auth.apply(index, cmd.req, cmd.auth) };
    }
  }

  /**
   * etcd's authApplierV3: the sender's permissions as of this entry, so a grant revoked after
   * the API layer let the request through is still honoured. Admin-only requests (compaction,
   * alarms, auth management) are checked by the API layer and by AuthStore.apply.
   */
  private checkPermission(cmd: KvCommand): void {
    const a = cmd.auth;
    switch (cmd.type) {
      case 'put':
        this.checkPutPermission(a, cmd.req);
        break;
      case 'deleteRange':
        this.auth.checkDelete(a, cmd.req.key, cmd.req.range_end);
        if (cmd.req.prev_kv) this.auth.checkRange(a, cmd.req.key, cmd.req.range_end);
        break;
      case 'txn':
        this.checkTxnPermission(a, cmd.req);
        break;
      case 'leaseRevoke':
        this.checkLeaseKeys(a, cmd.req.ID);
        break;
    }
  }

  private checkPutPermission(a: RequestAuth | undefined, p: PutRequest): void {
    this.auth.checkPut(a, p.key);
    // A lease whose keys this user may not write cannot be attached: the user could not revoke it.
    this.checkLeaseKeys(a, p.lease);
    if (p.prev_kv) this.auth.checkRange(a, p.key);
  }

  private checkLeaseKeys(a: RequestAuth | undefined, id: string | undefined): void {
    const lease = this.lessor.get(normLease(id));
    if (!lease) return;
    for (const k of lease.keys) this.auth.checkPut(a, k);
  }

  /** Every compare and every op of both branches, nested txns included (etcd 3.4 skips those). */
  private checkTxnPermission(a: RequestAuth | undefined, t: TxnRequest): void {
    for (const c of t.compare ?? []) this.auth.checkRange(a, c.key, c.range_end);
    for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) {
      if (op.request_range) this.auth.checkRange(a, op.request_range.key, op.request_range.range_end);
      else if (op.request_put) this.auth.checkPut(a, op.request_put.key);
      else if (op.request_delete_range) {
        const d = op.request_delete_range;
        if (d.prev_kv) this.auth.checkRange(a, d.key, d.range_end);
        this.auth.checkDelete(a, d.key, d.range_end);
      } else if (op.request_txn) this.checkTxnPermission(a, op.request_txn);
    }
  }

  private hasAlarm(alarm: AlarmMember['alarm']): boolean {
    return this.alarmList.some((a) => a.alarm === alarm);
  }

  /**
   * etcd refuses writes that add data once NOSPACE is raised, and raises it when a write
   * would pass the quota. Unlike etcd (which measures its db file, differently on each member)
   * the measure here is deterministic, so every member raises the alarm at the same entry
   * and the over-quota write is refused rather than applied.
   */
  private checkQuota(cost: number): void {
    if (cost <= 0) return;
    if (this.hasAlarm('NOSPACE')) throw errNoSpace();
    if (this.dbSize() + cost > this.opts.quotaBytes) {
      this.alarmList.push({ memberID: '0', alarm: 'NOSPACE' });
      throw errNoSpace();
    }
  }

  private applyPut(p: PutRequest): PutResponse {
    this.checkQuota(putCost(p));
    const lease = normLease(p.lease);
    if (lease !== NO_LEASE && !this.lessor.get(lease)) throw errLeaseNotFound();
    this.checkPut(p, this.rev);
    const txn = new WriteTxn(this.rev);
    const resp = this.put(txn, p);
    this.end(txn);
    resp.header.revision = this.rev;
    return resp;
  }

  private applyDelete(d: DeleteRangeRequest): DeleteRangeResponse {
    const txn = new WriteTxn(this.rev);
    const resp = this.deleteRange(txn, d);
    this.end(txn);
    resp.header.revision = this.rev;
    return resp;
  }

  private applyTxn(t: TxnRequest): TxnResponse {
    this.checkQuota(txnCost(t));
    const begin = this.rev;
    // Like etcd, every compare on the chosen path is evaluated against the state before the
    // txn writes anything, and every op on it is checked before the first one runs, so a txn
    // either applies completely or fails without effect.
    const path: boolean[] = [];
    this.comparePath(t, begin, path);
    let cursor = 0;
    const walk = (txn: TxnRequest, fn: (op: RequestOp) => void): void => {
      const ok = path[cursor++];
      for (const op of (ok ? txn.success : txn.failure) ?? []) {
        if (op.request_txn) walk(op.request_txn, fn);
        else fn(op);
      }
    };
    walk(t, (op) => {
      if (op.request_put) {
        this.checkPut(op.request_put, begin);
        const lease = normLease(op.request_put.lease);
        if (lease !== NO_LEASE && !this.lessor.get(lease)) throw errLeaseNotFound();
      } else if (op.request_range) {
        this.checkRangeRev(op.request_range.revision ?? 0, begin);
      }
    });
    this.checkTxnResponseSize(t, path, begin);
    cursor = 0;
    const txn = new WriteTxn(begin);
    const writeHeaders: ResponseHeader[] = [];
    const resp = this.execTxn(txn, t, path, () => cursor++, writeHeaders);
    this.end(txn);
    for (const h of writeHeaders) h.revision = this.rev;
    resp.header.revision = this.rev;
    return resp;
  }

  /**
   * A txn of range ops only, read locally at the current revision without going through the log
   * (etcd serves such a txn like a range: isTxnReadonly). The caller decides on a read barrier.
   */
  readTxn(t: TxnRequest, auth?: RequestAuth): TxnResponse {
    const sel = this.selectReadTxn(t, auth);
    const shared: SharedKvs = { full: new Map(), keysOnly: new Map() };
    const responses: ResponseOp[] = sel.ranges.map((s) => {
      const memo = s.keysOnly ? shared.keysOnly : shared.full;
      const kvs = s.recs.map((r) => {
        let kv = memo.get(r);
        if (!kv) memo.set(r, (kv = toKv(r, s.keysOnly)));
        return kv;
      });
      return { response: 'response_range', response_range: { header: header(s.revision), kvs, more: s.more, count: s.count } };
    });
    return { header: header(sel.revision), succeeded: sel.succeeded, responses };
  }

  /**
   * readTxn's answer as the records it reads (references, nothing copied), for an encoder that
   * writes them out while the store moves on (records are immutable; read-encoder.ts). Checks
   * permissions, revisions and the answer's size (refused over gRPC's send limit) first.
   */
  selectReadTxn(t: TxnRequest, auth?: RequestAuth): ReadTxnSelection {
    if (!isReadOnlyTxn(t)) throw new Error('readTxn: the txn writes');
    if (this.auth.enabled) this.checkTxnPermission(auth, t);
    const begin = this.rev;
    const path: boolean[] = [];
    this.comparePath(t, begin, path);
    const ops = (path[0] ? t.success : t.failure) ?? [];
    for (const op of ops) this.checkRangeRev(op.request_range!.revision ?? 0, begin);
    this.checkTxnResponseSize(t, path, begin);
    const ranges = ops.map((op) => {
      const { recs, more, count } = this.selectRange(op.request_range!, begin);
      return { recs, more, count, keysOnly: op.request_range!.keys_only ?? false, revision: begin };
    });
    return { revision: begin, succeeded: path[0]!, ranges };
  }

  private comparePath(t: TxnRequest, rev: number, path: boolean[]): void {
    const ok = (t.compare ?? []).every((c) => this.compare(c, rev));
    path.push(ok);
    for (const op of (ok ? t.success : t.failure) ?? []) {
      if (op.request_txn) this.comparePath(op.request_txn, rev, path);
    }
  }

  private execTxn(
    txn: WriteTxn,
    t: TxnRequest,
    path: readonly boolean[],
    next: () => number,
    writeHeaders: ResponseHeader[],
    shared: SharedKvs = { full: new Map(), keysOnly: new Map() },
  ): TxnResponse {
    const ok = path[next()];
    const responses: ResponseOp[] = [];
    for (const op of (ok ? t.success : t.failure) ?? []) {
      if (op.request_range) {
        responses.push({ response: 'response_range', response_range: this.rangeAt(op.request_range, txn.readRev, shared) });
      } else if (op.request_put) {
        const r = this.put(txn, op.request_put);
        writeHeaders.push(r.header);
        responses.push({ response: 'response_put', response_put: r });
      } else if (op.request_delete_range) {
        const r = this.deleteRange(txn, op.request_delete_range);
        writeHeaders.push(r.header);
        responses.push({ response: 'response_delete_range', response_delete_range: r });
      } else if (op.request_txn) {
        const r = this.execTxn(txn, op.request_txn, path, next, writeHeaders, shared);
        writeHeaders.push(r.header);
        responses.push({ response: 'response_txn', response_txn: r });
      }
    }
    return { header: header(txn.beginRev), succeeded: ok, responses };
  }

  private compare(c: Compare, rev: number): boolean {
    const recs: Rec[] = [];
    this.mvcc.scan(spanOf(c.key, c.range_end), rev, (r) => {
      recs.push(r);
    });
    if (recs.length === 0) {
      // etcd: a value compare on a missing key always fails; others compare against zero.
      if (c.target === 'VALUE') return false;
      return compareOne(c, undefined);
    }
    return recs.every((r) => compareOne(c, r));
  }

  /** ignore_value / ignore_lease need the key to exist at the txn's start (etcd: "key not found"). */
  private checkPut(p: PutRequest, rev: number): void {
    if (!p.ignore_value && !p.ignore_lease) return;
    if (!this.mvcc.byKey.get(p.key.toString('latin1'))?.at(rev)) throw errKeyNotFound();
  }

  private put(txn: WriteTxn, p: PutRequest): PutResponse {
    const key = p.key.toString('latin1');
    const current = this.mvcc.byKey.get(key)?.last();
    const live = current && current.val !== null ? current : undefined;
    const val = p.ignore_value && live ? (live.val as string) : (p.value ?? EMPTY).toString('latin1');
    // The lease's own ID string is stored, so records share one string per lease.
    const lease = p.ignore_lease && live ? live.lease : (this.lessor.get(normLease(p.lease))?.id ?? NO_LEASE);
    const { rec, prev } = this.mvcc.put(key, val, lease, txn.beginRev + 1, txn.changes.length);
    if (prev && prev.lease !== NO_LEASE) this.lessor.get(prev.lease)?.keys.delete(key);
    if (lease !== NO_LEASE) this.lessor.get(lease)?.keys.add(key);
    txn.changes.push(rec);
    txn.prevs.push(prev);
    const resp: PutResponse = { header: header(0) };
    if (p.prev_kv && prev) resp.prev_kv = toKv(prev, false);
    return resp;
  }

  private deleteRange(txn: WriteTxn, d: DeleteRangeRequest): DeleteRangeResponse {
    const victims: Rec[] = [];
    this.mvcc.scan(spanOf(d.key, d.range_end), txn.readRev, (r) => {
      victims.push(r);
    });
    this.deleteRecs(txn, victims);
    return {
      header: header(0),
      deleted: victims.length,
      prev_kvs: d.prev_kv ? victims.map((r) => toKv(r, false)) : [],
    };
  }

  private deleteRecs(txn: WriteTxn, victims: readonly Rec[]): void {
    for (const prev of victims) {
      if (prev.lease !== NO_LEASE) this.lessor.get(prev.lease)?.keys.delete(prev.ki.key);
      txn.changes.push(this.mvcc.tombstone(prev.ki, txn.beginRev + 1, txn.changes.length));
      txn.prevs.push(prev);
    }
  }

  /** Closes a write txn: the revision advances only if it wrote something. */
  private end(txn: WriteTxn): void {
    if (txn.changes.length === 0) return;
    this.rev = txn.beginRev + 1;
    if (this.hub.size === 0) return;
    const changes: Change[] = txn.changes.map((r) => ({ key: r.ki.key, isDelete: r.val === null }));
    this.hub.notify(this.rev, changes, (i, withPrev) => toEvent(txn.changes[i], withPrev ? txn.prevs[i] : undefined));
  }

  private applyCompact(c: CompactionRequest): CompactionResponse {
    // etcd starts its compact revision at -1, so the first `compaction 0` succeeds as a no-op;
    // 0 here means "never compacted", so only a repeated compaction at 0 differs from etcd.
    if (c.revision <= this.compactRev && !(c.revision === 0 && this.compactRev === 0)) throw errCompacted();
    if (c.revision > this.rev) throw errFutureRev();
    this.compactRev = c.revision;
    this.mvcc.compact(c.revision);
    return { header: header(this.rev) };
  }

  private applyLeaseGrant(index: number, g: LeaseGrantRequest): LeaseGrantResponse {
    if (g.TTL > MAX_LEASE_TTL) throw errLeaseTTLTooLarge();
    this.checkQuota(LEASE_COST);
    let id = normLease(g.ID);
    if (id === NO_LEASE) id = this.deriveLeaseId(index);
    else if (this.lessor.get(id)) throw errLeaseExists();
    const ttl = Math.max(g.TTL, this.opts.minLeaseTTL);
    this.lessor.add(new Lease(id, ttl));
    return { header: header(this.rev), ID: id, TTL: ttl, error: '' };
  }

  /** A positive int63 from the raft index: the same on every member, unused here. */
  private deriveLeaseId(index: number): string {
    let n = (BigInt(index) * 0x9e3779b97f4a7c15n) & 0x7fffffffffffffffn;
    for (;;) {
      const id = (n === 0n ? 1n : n).toString();
      if (!this.lessor.get(id)) return id;
      n = (n + 1n) & 0x7fffffffffffffffn;
    }
  }

  private applyLeaseRevoke(r: LeaseRevokeRequest): LeaseRevokeResponse {
    const lease = this.lessor.get(normLease(r.ID));
    if (!lease) throw errLeaseNotFound();
    // Sorted so every member writes the tombstones in the same order (same sub revisions).
    const keys = [...lease.keys].sort();
    const txn = new WriteTxn(this.rev);
    const victims: Rec[] = [];
    for (const k of keys) {
      const r = this.mvcc.byKey.get(k)?.last();
      if (r && r.val !== null) victims.push(r);
    }
    this.deleteRecs(txn, victims);
    this.lessor.delete(lease.id);
    this.end(txn);
    return { header: header(this.rev) };
  }

  private applyAlarm(a: AlarmRequest): AlarmResponse {
    switch (a.action) {
      case 'GET':
        return { header: header(this.rev), alarms: this.alarmsOf(a.alarm) };
      case 'ACTIVATE': {
        if (a.alarm === 'NONE') return { header: header(this.rev), alarms: [] };
        const m = { memberID: a.memberID, alarm: a.alarm };
        if (!this.alarmList.some((x) => x.memberID === m.memberID && x.alarm === m.alarm)) this.alarmList.push(m);
        return { header: header(this.rev), alarms: [{ ...m }] };
      }
      case 'DEACTIVATE': {
        const i = this.alarmList.findIndex((x) => x.memberID === a.memberID && x.alarm === a.alarm);
        if (i < 0) return { header: header(this.rev), alarms: [] };
        const [m] = this.alarmList.splice(i, 1);
        return { header: header(this.rev), alarms: [m] };
      }
    }
  }

  /** Alarm list for Maintenance Alarm GET (NONE = all), served without a proposal. */
  alarmsOf(alarm: AlarmMember['alarm'] = 'NONE'): AlarmMember[] {
    return this.alarmList.filter((a) => alarm === 'NONE' || a.alarm === alarm).map((a) => ({ ...a }));
  }

  // ---------------------------------------------------------------- reads

  /** A local read at req.revision (0 = current). Throws KvError for compacted / future revisions. */
  range(req: RangeRequest): RangeResponse {
    return this.rangeAt(req, this.rev);
  }

  private checkRangeRev(rev: number, cur: number): void {
    if (rev > cur) throw errFutureRev();
    if (rev > 0 && rev < this.compactRev) throw errCompacted();
  }

  /** etcd's applierV3backend.Range, including its order of filtering, sorting and limiting. */
  private rangeAt(req: RangeRequest, cur: number, shared?: SharedKvs): RangeResponse {
    const { recs, more, count } = this.selectRange(req, cur);
    const keysOnly = req.keys_only ?? false;
    if (!shared) return { header: header(cur), kvs: recs.map((r) => toKv(r, keysOnly)), more, count };
    const memo = keysOnly ? shared.keysOnly : shared.full;
    const kvs = recs.map((r) => {
      let kv = memo.get(r);
      if (!kv) memo.set(r, (kv = toKv(r, keysOnly)));
      return kv;
    });
    return { header: header(cur), kvs, more, count };
  }

  /** The records a range answers with (references into the store, nothing copied yet). */
  private selectRange(req: RangeRequest, cur: number): { recs: Rec[]; more: boolean; count: number } {
    const asked = req.revision ?? 0;
    this.checkRangeRev(asked, cur);
    const rev = asked <= 0 ? cur : asked;
    const order = req.sort_order ?? 'NONE';
    const target = req.sort_target ?? 'KEY';
    const limit = req.limit ?? 0;
    const minMod = req.min_mod_revision ?? 0;
    const maxMod = req.max_mod_revision ?? 0;
    const minCreate = req.min_create_revision ?? 0;
    const maxCreate = req.max_create_revision ?? 0;
    const filtered = minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0;
    // Sorting or filtering needs every key; otherwise one extra tells whether there is `more`.
    const fetch = order !== 'NONE' || filtered ? 0 : limit > 0 ? limit + 1 : 0;
    const countOnly = req.count_only ?? false;
    let count = 0;
    let recs: Rec[] = [];
    this.mvcc.scan(spanOf(req.key, req.range_end), rev, (r) => {
      count++;
      if (!countOnly && (fetch === 0 || recs.length < fetch)) recs.push(r);
    });
    if (filtered) {
      recs = recs.filter(
        (r) =>
          (maxMod === 0 || r.mod <= maxMod) &&
          (minMod === 0 || r.mod >= minMod) &&
          (maxCreate === 0 || r.create <= maxCreate) &&
          (minCreate === 0 || r.create >= minCreate),
      );
    }
    const effectiveOrder = target !== 'KEY' && order === 'NONE' ? 'ASCEND' : order;
    if (effectiveOrder !== 'NONE' && !(target === 'KEY' && effectiveOrder === 'ASCEND')) {
      const cmp = sorter(target);
      recs.sort(effectiveOrder === 'ASCEND' ? cmp : (a, b) => cmp(b, a));
    }
    let more = false;
    if (limit > 0 && recs.length > limit) {
      recs.length = limit;
      more = true;
    }
    return { recs, more, count };
  }

  /**
   * Refuses a txn whose response could not be sent (larger than gRPC's send limit, as etcd's
   * answer says) before any of it is built: 128 ranges over a large keyspace would otherwise be
   * copied into memory whole first. Sizes come from the records alone (reads at `rev`, the state
   * before the txn's own writes; a bound, and the same on every member, so a write txn refused at
   * apply is refused everywhere without effect). Stops counting at the limit.
   */
  private checkTxnResponseSize(t: TxnRequest, path: readonly boolean[], rev: number): void {
    const max = this.opts.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    let total = TXN_RESPONSE_OVERHEAD;
    let cursor = 0;
    const add = (n: number) => {
      total += n;
      if (total > max) throw errResponseTooLarge(total, max);
    };
    const recsSize = (recs: readonly Rec[], keysOnly: boolean) => {
      for (const r of recs) add(lenField(keyValueSize(r.ki.key.length, r.create, r.mod, r.ver, keysOnly || r.val === null ? 0 : r.val.length, r.lease)));
    };
    const walk = (txn: TxnRequest): void => {
      const ok = path[cursor++];
      for (const op of (ok ? txn.success : txn.failure) ?? []) {
        add(TXN_RESPONSE_OVERHEAD);
        if (op.request_range) recsSize(this.selectRange(op.request_range, rev).recs, op.request_range.keys_only ?? false);
        else if (op.request_delete_range?.prev_kv) {
          const victims: Rec[] = [];
          this.mvcc.scan(spanOf(op.request_delete_range.key, op.request_delete_range.range_end), rev, (r) => {
            victims.push(r);
          });
          recsSize(victims, false);
        } else if (op.request_put?.prev_kv) {
          const prev = this.mvcc.byKey.get(op.request_put.key.toString('latin1'))?.at(rev);
          if (prev) recsSize([prev], false);
        } else if (op.request_txn) walk(op.request_txn);
      }
    };
    walk(t);
  }

  // ---------------------------------------------------------------- leases

  leases(): LeaseLeasesResponse {
    const ids = [...this.lessor.all()].map((l) => l.id).sort(compareIds);
    return { header: header(this.rev), leases: ids.map((ID) => ({ ID })) };
  }

  /** LeaseTimeToLive: TTL -1 for an unknown lease (as etcd answers). Meaningful on the leader. */
  timeToLive(id: string, keys: boolean, nowMs: number): LeaseTimeToLiveResponse {
    const l = this.lessor.get(normLease(id));
    if (!l) return { header: header(this.rev), ID: id, TTL: -1, grantedTTL: 0, keys: [] };
    return {
      header: header(this.rev),
      ID: l.id,
      TTL: this.lessor.remaining(l, nowMs),
      grantedTTL: l.ttl,
      keys: keys ? [...l.keys].sort().map((k) => Buffer.from(k, 'latin1')) : [],
    };
  }

  // ---------------------------------------------------------------- watch

  /**
   * Registers a watcher. Throws WatchCompactedError when start_revision is below the compact
   * revision (etcd cancels such a watch and reports compact_revision). With start_revision <=
   * the current revision the watcher starts unsynced: nothing is replayed here, the caller
   * pulls the history in bounded batches with handle.catchUp() at its own pace, after which
   * every applied revision touching the range is delivered as one call.
   */
  watch(opts: WatchOptions, listener: WatchListener, onBehind?: () => void): WatchHandle {
    const start = opts.start_revision ?? 0;
    if (start > 0 && start < this.compactRev) throw new WatchCompactedError(this.compactRev);
    const w = Watcher.from(this.nextWatchId++, opts, listener, onBehind);
    if (start > 0 && start <= this.rev) this.hub.addUnsynced(w, start);
    else this.hub.add(w);
    const hub = this.hub;
    return {
      id: w.id,
      get synced() {
        return hub.isSynced(w);
      },
      catchUp: (maxEvents, maxBytes) => this.catchUp(w, maxEvents, maxBytes),
      cancel: () => {
        hub.remove(w);
      },
    };
  }

  /** Number of registered watchers. */
  get watcherCount(): number {
    return this.hub.size;
  }

  /** Number of watchers behind the current revision (history to replay, or a slow consumer). */
  get unsyncedWatcherCount(): number {
    return this.hub.unsyncedCount;
  }

  /**
   * One step of an unsynced watcher's catch-up: the history from its cursor, at most about
   * maxEvents events / maxBytes bytes (a revision is never split, so one large revision may
   * exceed them) and a bounded number of records examined, as one listener call. When the
   * cursor reaches the current revision the watcher becomes synced.
   */
  private catchUp(w: Watcher, maxEvents: number, maxBytes: number): CatchUp {
    if (w.cancelled || this.hub.isSynced(w)) return { state: 'synced' };
    if (w.next < this.compactRev) {
      this.hub.remove(w);
      return { state: 'compacted', compactRevision: this.compactRev };
    }
    const log = this.mvcc.log;
    const scanLimit = Math.max(maxEvents, 1) * 16;
    const batch: Event[] = [];
    let bytes = 0;
    let scanned = 0;
    let i = this.mvcc.logFrom(w.next);
    let rev = -1;
    for (; i < log.length; i++) {
      const r = log[i];
      if (r.mod !== rev) {
        if (batch.length >= maxEvents || bytes >= maxBytes || scanned >= scanLimit) break;
        rev = r.mod;
      }
      scanned++;
      const key = r.ki.key;
      if (!w.matches(key) || !w.wants({ key, isDelete: r.val === null })) continue;
      const prev = w.prevKv ? r.ki.before(r) : undefined;
      batch.push(toEvent(r, prev));
      bytes += EVENT_OVERHEAD + key.length * 2 + (r.val?.length ?? 0) + (prev?.val?.length ?? 0);
    }
    const next = i < log.length ? log[i].mod : this.rev + 1;
    if (batch.length > 0 && w.listener(batch, this.rev) === false) return { state: 'behind' };
    if (w.cancelled) return { state: 'synced' };
    w.next = next;
    if (i < log.length) return { state: 'behind' };
    this.hub.markSynced(w);
    return { state: 'synced' };
  }

  // ---------------------------------------------------------------- maintenance

  /** HashKV: a digest of every record with mod <= rev (0 = current); equal on members that applied the same log. */
  hashKV(rev = 0): HashKVResponse {
    return runSteps(this.hashKVSteps(rev));
  }

  /**
   * hashKV's digest of the state as of this call, computed in steps of HASH_STEP_RECORDS records
   * or about HASH_STEP_BYTES bytes with `pause()` awaited between two, while the store moves on
   * (records are immutable; the log array read is only appended to, compaction replaces it).
   */
  async hashKVAsync(rev: number, pause: () => Promise<void>): Promise<HashKVResponse> {
    return runStepsAsync(this.hashKVSteps(rev), pause);
  }

  private *hashKVSteps(rev: number): Generator<void, HashKVResponse> {
    const at = rev <= 0 ? this.rev : rev;
    this.checkRangeRev(at, this.rev);
    const current = this.rev;
    const compactRev = this.compactRev;
    const log = this.mvcc.log;
    const end = log.length;
    const h = createHash('sha256');
    const num = Buffer.alloc(8);
    let records = 0;
    let bytes = 0;
    for (let i = 0; i < end; i++) {
      const r = log[i];
      if (r.mod > at) break;
      h.update(r.ki.key, 'latin1');
      num.writeDoubleLE(r.mod * 65536 + r.sub);
      h.update(num);
      if (r.val !== null) {
        h.update(r.val, 'latin1');
        h.update(r.lease, 'latin1');
        bytes += r.val.length;
      }
      bytes += r.ki.key.length;
      if (++records >= HASH_STEP_RECORDS || bytes >= HASH_STEP_BYTES) {
        records = 0;
        bytes = 0;
        yield;
      }
    }
    // etcd reports -1 until the first compaction (`endpoint hashkv -w json` shows it).
    return { header: header(current), hash: h.digest().readUInt32LE(0), compact_revision: compactRev === 0 ? -1 : compactRev };
  }

  /** Maintenance Hash: a digest of the whole replicated state (not the applied index). */
  hash(): number {
    const snap = encodeSnapshot(this.state(), { withoutIndex: true });
    return createHash('sha256').update(snap).digest().readUInt32LE(0);
  }

  /**
   * hash() of the state as of this call, encoded and digested in steps with `pause()` awaited
   * between two (see snapshotAsync), so a large store does not stop the member meanwhile.
   */
  async hashAsync(pause: () => Promise<void>): Promise<number> {
    const s = this.state();
    const snap = await encodeSnapshotAsync({ ...s, alarms: s.alarms.map((a) => ({ ...a })), logLength: s.log.length }, pause, { withoutIndex: true });
    const h = createHash('sha256');
    for (let at = 0; at < snap.length; at += HASH_STEP_BYTES) {
      if (at > 0) await pause();
      h.update(snap.subarray(at, at + HASH_STEP_BYTES));
    }
    return h.digest().readUInt32LE(0);
  }

  // ---------------------------------------------------------------- snapshots

  private state(): SnapshotState {
    return {
      appliedIndex: this.applied,
      revision: this.rev,
      compactRevision: this.compactRev,
      alarms: this.alarmList,
      leases: [...this.lessor.all()].map((l) => ({ id: l.id, ttl: l.ttl })),
      keys: this.mvcc.index.toArray(),
      log: this.mvcc.log,
      ...this.authSection(),
    };
  }

  /** The auth store for snapshots, left out while auth was never configured (older format). */
  private authSection(): { auth?: AuthState } {
    return this.auth.pristine ? {} : { auth: this.auth.state() };
  }

  /**
   * The replicated state as of now, for exports that stream while the store moves on: records
   * are immutable and the revision log is only appended to (compaction replaces the array), so
   * the first `logLength` records of `log` stay exactly this state.
   */
  view(): StoreView {
    return {
      appliedIndex: this.applied,
      revision: this.rev,
      compactRevision: this.compactRev,
      alarms: this.alarmList.map((a) => ({ ...a })),
      leases: [...this.lessor.all()].map((l) => ({ id: l.id, ttl: l.ttl })),
      log: this.mvcc.log,
      logLength: this.mvcc.log.length,
      auth: this.auth.state(),
    };
  }

  /** The whole replicated state with the applied index it reflects, as one byte string. */
  snapshot(): Buffer {
    return encodeSnapshot(this.state());
  }

  /**
   * The same bytes as `snapshot()` of the state as of this call, encoded in slices while the
   * store moves on (records are immutable, the log prefix stays; see `view`). Only the key list
   * is copied now, everything else is read as the encoding proceeds, `pause()` awaited between
   * steps (see encodeSnapshotAsync). With `prefix`, the result starts with those bytes.
   */
  snapshotAsync(pause: () => Promise<void>, prefix?: Uint8Array): Promise<Buffer> {
    const s = this.state();
    return encodeSnapshotAsync({ ...s, alarms: s.alarms.map((a) => ({ ...a })), logLength: s.log.length }, pause, prefix ? { prefix } : {});
  }

  static restore(data: Uint8Array, opts: Partial<KvStoreOptions> = {}): KvStore {
    const store = new KvStore(opts);
    store.load(data);
    return store;
  }

  /**
   * Replaces the whole replicated state with a snapshot's, in place (a follower installing the
   * leader's snapshot). Watchers survive, as in etcd's watchableStore.Restore: each one moves
   * aside at the revision it had reached and catches up from the new state's history, or is
   * cancelled with compact_revision when that history is gone.
   */
  replaceState(data: Uint8Array): void {
    const reached = this.rev;
    this.load(data);
    this.hub.resyncAll(reached + 1);
  }

  private load(data: Uint8Array): void {
    const s = decodeSnapshot(data);
    this.applied = s.appliedIndex;
    this.rev = s.revision;
    this.compactRev = s.compactRevision;
    this.alarmList = s.alarms;
    this.mvcc = new Mvcc(s.keys, s.log);
    this.auth = s.auth ? AuthStore.fromState(s.auth) : new AuthStore();
    this.lessor.clear();
    for (const l of s.leases) this.lessor.add(new Lease(l.id, l.ttl));
    for (const ki of s.keys) {
      const last = ki.last();
      if (last && last.val !== null && last.lease !== NO_LEASE) this.lessor.get(last.lease)?.keys.add(ki.key);
    }
  }

}

export interface StoreView {
  appliedIndex: number;
  revision: number;
  compactRevision: number;
  alarms: AlarmMember[];
  leases: { id: string; ttl: number }[];
  /** Records ordered by (mod, sub); only the first logLength belong to the view. */
  log: readonly Rec[];
  logLength: number;
  auth: AuthState;
}

/** A step of a hash computed in steps: at most this many records or about this many bytes. */
const HASH_STEP_RECORDS = 4096;
const HASH_STEP_BYTES = 1024 * 1024;

/** Runs a computation written as steps (a generator) to its end at once. */
function runSteps<T>(steps: Generator<void, T>): T {
  for (;;) {
    const n = steps.next();
    if (n.done) return n.value;
  }
}

/** Runs a computation written as steps, awaiting `pause()` between two. */
async function runStepsAsync<T>(steps: Generator<void, T>, pause: () => Promise<void>): Promise<T> {
  for (;;) {
    const n = steps.next();
    if (n.done) return n.value;
    await pause();
  }
}

const CANONICAL_ID = /^-?[1-9][0-9]*$/;

function normLease(id: string | undefined): string {
  if (id === undefined || id === '' || id === NO_LEASE) return NO_LEASE;
  // Canonical decimal form, so "007" and "7" name the same lease.
  return CANONICAL_ID.test(id) ? id : BigInt(id).toString();
}

function putCost(p: PutRequest): number {
  return recCost(p.key.length, p.value?.length ?? 0);
}

/** Like etcd, a txn with any put anywhere (either branch) counts as adding data. */
function txnCost(t: TxnRequest): number {
  let cost = 0;
  for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) {
    if (op.request_put) cost += putCost(op.request_put);
    else if (op.request_txn) cost += txnCost(op.request_txn);
  }
  return cost;
}

/** etcd's isTxnReadonly: every op of both branches is a range (a nested txn counts as a write). */
export function isReadOnlyTxn(t: TxnRequest): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].every((op) => op.request_range !== undefined && op.request_range !== null);
}

/** etcd's isTxnSerializable: every op of both branches is a serializable range. */
export function isSerializableTxn(t: TxnRequest): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].every((op) => op.request_range?.serializable === true);
}

function toKv(r: Rec, keysOnly: boolean): KeyValue {
  return {
    key: Buffer.from(r.ki.key, 'latin1'),
    create_revision: r.create,
    mod_revision: r.mod,
    version: r.ver,
    value: keysOnly || r.val === null ? EMPTY : Buffer.from(r.val, 'latin1'),
    lease: r.lease,
  };
}

function toEvent(r: Rec, prev: Rec | undefined): Event {
  if (r.val === null) {
    // etcd's DELETE event carries only the key and the deleting revision.
    const kv: KeyValue = {
      key: Buffer.from(r.ki.key, 'latin1'),
      create_revision: 0,
      mod_revision: r.mod,
      version: 0,
      value: EMPTY,
      lease: NO_LEASE,
    };
    return prev ? { type: 'DELETE', kv, prev_kv: toKv(prev, false) } : { type: 'DELETE', kv };
  }
  const kv = toKv(r, false);
  return prev ? { type: 'PUT', kv, prev_kv: toKv(prev, false) } : { type: 'PUT', kv };
}

function sorter(target: RangeRequest['sort_target']): (a: Rec, b: Rec) => number {
  switch (target) {
    case 'VERSION':
      return (a, b) => a.ver - b.ver;
    case 'CREATE':
      return (a, b) => a.create - b.create;
    case 'MOD':
      return (a, b) => a.mod - b.mod;
    case 'VALUE':
      return (a, b) => strCmp(a.val as string, b.val as string);
    default:
      return (a, b) => strCmp(a.ki.key, b.ki.key);
  }
}

function strCmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareOne(c: Compare, r: Rec | undefined): boolean {
  let result: number;
  switch (c.target) {
    case 'VALUE':
      result = strCmp(r?.val ?? '', (c.value ?? EMPTY).toString('latin1'));
      break;
    case 'CREATE':
      result = Math.sign((r?.create ?? 0) - (c.create_revision ?? 0));
      break;
    case 'MOD':
      result = Math.sign((r?.mod ?? 0) - (c.mod_revision ?? 0));
      break;
    case 'VERSION':
      result = Math.sign((r?.ver ?? 0) - (c.version ?? 0));
      break;
    case 'LEASE':
      result = compareIds(r?.lease ?? NO_LEASE, normLease(c.lease));
      break;
  }
  switch (c.result) {
    case 'EQUAL':
      return result === 0;
    case 'NOT_EQUAL':
      return result !== 0;
    case 'GREATER':
      return result > 0;
    case 'LESS':
      return result < 0;
  }
}
