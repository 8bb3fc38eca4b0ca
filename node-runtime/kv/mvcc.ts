/**
 * The multi-version key space: every stored revision of every key, an ordered index of keys,
 * and a revision-ordered log of all stored records (for watch history and snapshots).
 *
 * Keys and values are held as latin1 strings (one char per byte): V8 stores them as compact
 * one-byte strings (16 bytes of header, no separate backing store), they are immutable so the
 * store never needs defensive copies, a Map gives O(1) lookup, and JS string order is byte
 * order, which is the order etcd ranges in.
 *
 * A key's records are its etcd keyIndex: a tombstone record (val === null) ends a generation,
 * and the next put starts a new one with version 1. Nothing is ever mutated in place; a write
 * appends a record with the new revision, and compaction drops records from the front.
 */
import { SortedIndex } from './sorted-index';

export interface Rec {
  readonly ki: KeyIndex;
  /** Main revision (the store revision this write created). */
  readonly mod: number;
  /** Position of the write inside its revision (several writes in one txn share `mod`). */
  readonly sub: number;
  /** 0 for a tombstone. */
  readonly create: number;
  /** 0 for a tombstone. */
  readonly ver: number;
  /** null: tombstone (the key was deleted at `mod`). */
  readonly val: string | null;
  readonly lease: string;
}

export class KeyIndex {
  readonly recs: Rec[] = [];
  constructor(readonly key: string) {}

  last(): Rec | undefined {
    return this.recs[this.recs.length - 1];
  }

  /** The record visible at `rev`, or undefined if the key did not exist then. */
  at(rev: number): Rec | undefined {
    const recs = this.recs;
    let hi = recs.length;
    if (hi === 0) return undefined;
    let r: Rec;
    if (recs[hi - 1].mod <= rev) {
      r = recs[hi - 1];
    } else {
      let lo = 0;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (recs[mid].mod <= rev) lo = mid + 1;
        else hi = mid;
      }
      if (lo === 0) return undefined;
      r = recs[lo - 1];
    }
    return r.val === null ? undefined : r;
  }

  /** The record written just before `rec` (its prev_kv), if still stored and live. */
  before(rec: Rec): Rec | undefined {
    // Binary search by (mod, sub): a key with a long history is replayed in O(n log n), not O(n^2).
    const recs = this.recs;
    let lo = 0;
    let hi = recs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = recs[mid];
      if (m.mod < rec.mod || (m.mod === rec.mod && m.sub < rec.sub)) lo = mid + 1;
      else hi = mid;
    }
    const i = recs[lo] === rec ? lo : -1;
    const p = i > 0 ? recs[i - 1] : undefined;
    return p && p.val !== null ? p : undefined;
  }
}

/**
 * Bytes a record counts against the quota: key + value + this overhead. 256 is about the
 * heap a record costs beyond its strings (Rec object, log and history slots; the first record
 * of a key also pays for its index entry) so that the quota bounds memory, not just payload.
 */
export const REC_OVERHEAD = 256;
export const recCost = (keyLen: number, valLen: number): number => keyLen + valLen + REC_OVERHEAD;

/** [begin, end): end undefined = the single key `begin`; null = no upper bound. */
export interface KeySpan {
  begin: string;
  end: string | null | undefined;
}

export function spanOf(key: Buffer, rangeEnd: Buffer | undefined): KeySpan {
  const begin = key.toString('latin1');
  if (!rangeEnd || rangeEnd.length === 0) return { begin, end: undefined };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { begin, end: null };
  return { begin, end: rangeEnd.toString('latin1') };
}

export class Mvcc {
  readonly index: SortedIndex<KeyIndex>;
  readonly byKey: Map<string, KeyIndex>;
  /** Every stored record, ordered by (mod, sub). */
  log: Rec[];
  /** Approximate bytes of all stored records (the quota's measure). */
  bytes = 0;

  constructor(keys: KeyIndex[] = [], log: Rec[] = []) {
    this.index = SortedIndex.fromSorted(keys);
    this.byKey = new Map();
    for (const ki of keys) this.byKey.set(ki.key, ki);
    this.log = log;
    for (const r of log) this.bytes += recCost(r.ki.key.length, r.val === null ? 0 : r.val.length);
  }

  get keyCount(): number {
    return this.index.size;
  }

  /** Calls fn with the record visible at rev of every live key in span, in key order, until fn returns false. */
  scan(span: KeySpan, rev: number, fn: (r: Rec) => boolean | void): void {
    if (span.end === undefined) {
      const r = this.byKey.get(span.begin)?.at(rev);
      if (r) fn(r);
      return;
    }
    if (span.end !== null && span.end <= span.begin) return;
    this.index.scan(span.begin, span.end ?? undefined, (ki) => {
      const r = ki.at(rev);
      return r ? fn(r) : true;
    });
  }

  /** Appends a put of `key` as write `sub` of revision `mod`; returns the record and the one it replaced. */
  put(key: string, val: string, lease: string, mod: number, sub: number): { rec: Rec; prev: Rec | undefined } {
    let ki = this.byKey.get(key);
    if (!ki) {
      ki = new KeyIndex(key);
      this.byKey.set(key, ki);
      this.index.insert(ki);
    }
    const last = ki.last();
    const prev = last && last.val !== null ? last : undefined;
    const rec: Rec = {
      ki,
      mod,
      sub,
      create: prev ? prev.create : mod,
      ver: prev ? prev.ver + 1 : 1,
      val,
      lease,
    };
    ki.recs.push(rec);
    this.log.push(rec);
    this.bytes += recCost(key.length, val.length);
    return { rec, prev };
  }

  /** Appends a tombstone for a live key. */
  tombstone(ki: KeyIndex, mod: number, sub: number): Rec {
    const rec: Rec = { ki, mod, sub, create: 0, ver: 0, val: null, lease: '0' };
    ki.recs.push(rec);
    this.log.push(rec);
    this.bytes += recCost(ki.key.length, 0);
    return rec;
  }

  /**
   * Drops every record not needed to read at revisions >= rev: per key, the newest record at
   * or below rev is kept unless it is a tombstone; keys left without records leave the index.
   */
  compact(rev: number): void {
    const emptied: string[] = [];
    let freed = 0;
    this.index.scan('', undefined, (ki) => {
      const recs = ki.recs;
      if (recs[0].mod > rev) return;
      let keep = 0;
      while (keep + 1 < recs.length && recs[keep + 1].mod <= rev) keep++;
      const drop = recs[keep].val === null ? keep + 1 : keep;
      if (drop === 0) return;
      for (let i = 0; i < drop; i++) freed += recCost(ki.key.length, recs[i].val?.length ?? 0);
      recs.splice(0, drop);
      if (recs.length === 0) emptied.push(ki.key);
    });
    for (const key of emptied) {
      this.index.remove(key);
      this.byKey.delete(key);
    }
    // After the per-key pass, a record at or below rev survives only as its key's first record.
    this.log = this.log.filter((r) => r.mod > rev || r.ki.recs[0] === r);
    this.bytes -= freed;
  }

  /** Index in `log` of the first record with mod >= rev. */
  logFrom(rev: number): number {
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.log[mid].mod < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
