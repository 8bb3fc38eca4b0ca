import type { Entry, Snapshot } from "./types";

/** Bytes an entry adds to an append message, roughly as the codec frames it. */
export function entrySize(e: Entry): number {
  return e.data.length + 16;
}

/**
 * The in-memory log of one member: entries after `base` (the last index covered by a
 * snapshot or kept tail), and the markers that say how far it is durable, committed, applied.
 *
 * Entries are held in one array indexed by `index - base - 1`, so lookups are O(1) and appends
 * amortized O(1); only truncation and compaction move elements.
 */
export class RaftLog {
  private ents: Entry[] = [];
  /** Index just before ents[0] and its term (0/0 for an empty, never-compacted log). */
  base = 0;
  baseTerm = 0;
  committed = 0;
  applied = 0;
  /** Entries up to here were handed out in a Ready and acknowledged by advance(). */
  stable = 0;
  /** The latest state-machine snapshot, kept to send to followers that need compacted entries. */
  snapshot: Snapshot | undefined;
  /** A snapshot received from the leader that the caller has not yet been handed. */
  pendingSnapshot: Snapshot | undefined;

  lastIndex(): number {
    return this.base + this.ents.length;
  }

  lastTerm(): number {
    return this.ents.length === 0 ? this.baseTerm : this.ents[this.ents.length - 1].term;
  }

  firstIndex(): number {
    return this.base + 1;
  }

  /** The term at `i`, or undefined when `i` is compacted away or beyond the end. */
  termAt(i: number): number | undefined {
    if (i === this.base) return this.baseTerm;
    if (i < this.base || i > this.lastIndex()) return undefined;
    return this.ents[i - this.base - 1].term;
  }

  matchTerm(i: number, term: number): boolean {
    return this.termAt(i) === term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.base || i > this.lastIndex()) return undefined;
    return this.ents[i - this.base - 1];
  }

  /** Entries in [lo, hi), at least one if any, at most `maxBytes` beyond the first. */
  slice(lo: number, hi: number, maxBytes = Infinity): Entry[] {
    if (lo <= this.base) throw new Error(`raft log: slice from ${lo} but compacted to ${this.base}`);
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    if (maxBytes === Infinity) return this.ents.slice(lo - this.base - 1, hi - this.base - 1);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - this.base - 1];
      size += entrySize(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Is a log ending at (index, term) at least as up to date as ours (§5.4.1)? */
  isUpToDate(index: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && index >= this.lastIndex());
  }

  /**
   * The first index where `ents` disagrees with our log (a different term or beyond our end),
   * or 0 if we already hold all of them.
   */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (or the compaction point), with its term.
   * Both sides use it to skip a whole term of mismatching entries per round trip.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.termAt(i);
      if (t === undefined) return [i, 0];
      if (t <= term || i === this.base) return [i, t];
      i--;
    }
  }

  /** Append `ents` (contiguous, ents[0].index ≤ last+1), dropping any suffix they replace. */
  truncateAndAppend(ents: Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0].index;
    if (first <= this.committed) throw new Error(`raft log: truncating committed index ${first} (commit ${this.committed})`);
    if (first <= this.lastIndex()) {
      this.ents.length = first - this.base - 1;
      if (this.stable >= first) this.stable = first - 1;
    } else if (first !== this.lastIndex() + 1) {
      throw new Error(`raft log: gap appending ${first} after ${this.lastIndex()}`);
    }
    for (const e of ents) this.ents.push(e);
  }

  append(e: Entry): void {
    this.ents.push(e);
  }

  commitTo(i: number): boolean {
    if (i <= this.committed) return false;
    if (i > this.lastIndex()) throw new Error(`raft log: commit ${i} beyond last index ${this.lastIndex()}`);
    this.committed = i;
    return true;
  }

  /** Entries not yet handed out for persistence. */
  unstableEntries(): Entry[] {
    if (this.stable >= this.lastIndex()) return [];
    return this.ents.slice(Math.max(this.stable, this.base) - this.base);
  }

  /** Committed entries not yet handed out for applying. */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applied, this.base) + 1;
    if (lo > this.committed) return [];
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  /** The caller made entries through (index, term) durable; ignore it if they were replaced since. */
  stableTo(index: number, term: number): void {
    if (this.termAt(index) === term && index > this.stable) this.stable = index;
  }

  /** Replace the whole log by a snapshot received from the leader. */
  restore(s: Snapshot): void {
    this.ents = [];
    this.base = s.meta.index;
    this.baseTerm = s.meta.term;
    this.committed = s.meta.index;
    this.applied = Math.max(this.applied, s.meta.index);
    this.stable = s.meta.index;
    this.snapshot = s;
    this.pendingSnapshot = s;
  }

  /**
   * The state machine has a snapshot at s.meta.index: keep it for lagging followers and drop the
   * entries it covers, except the last `keep` (so slightly lagging followers avoid a snapshot).
   */
  compact(s: Snapshot, keep: number): void {
    const idx = s.meta.index;
    if (idx > this.applied) throw new Error(`raft log: snapshot at ${idx} beyond applied ${this.applied}`);
    if (this.snapshot === undefined || idx > this.snapshot.meta.index) this.snapshot = s;
    const newBase = idx - keep;
    if (newBase <= this.base) return;
    const t = this.termAt(newBase);
    if (t === undefined) throw new Error(`raft log: compacting to unknown index ${newBase}`);
    this.ents.splice(0, newBase - this.base);
    this.base = newBase;
    this.baseTerm = t;
  }
}
