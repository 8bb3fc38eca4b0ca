/**
 * Registry of live watchers and the fan-out of one applied revision to them, organised as
 * etcd's watchableStore: a watcher is either *synced* (it has seen everything up to the
 * current revision and is told of each new one as it is applied) or *unsynced* (it is behind,
 * because it asked for history or because its consumer could not keep up, and it catches up
 * from the stored history when its consumer asks for more).
 *
 * Synced single-key watchers are found by a map lookup, range and prefix watchers by an
 * interval index, so applying a write costs O(log n + matches) however many watchers exist.
 * An unsynced watcher costs no memory beyond its cursor: nothing is queued for it, its events
 * stay in the store's history until it reads them (or are compacted away, which cancels it).
 */
import { IntervalIndex } from './interval-index';
import type { Event } from './types';

export type WatchFilter = 'NOPUT' | 'NODELETE';

export interface WatchOptions {
  key: Buffer;
  /** Empty/absent: the key alone; "\0": every key >= key; otherwise [key, range_end). */
  range_end?: Buffer;
  /** First revision to deliver; 0/absent = only what happens after now. */
  start_revision?: number;
  prev_kv?: boolean;
  filters?: WatchFilter[];
}

/**
 * Receives events (read-only: the same objects may go to several watchers) and the revision
 * they bring the watcher up to. Called synchronously: during apply() for new writes and during
 * catchUp() for history. Returning false refuses the events (the consumer is full): the
 * watcher is moved aside, unsynced, and those events are offered again by a later catchUp().
 */
export type WatchListener = (events: Event[], revision: number) => unknown;

/** What one catchUp() step achieved. */
export type CatchUp =
  /** Up to date: new revisions now arrive as they are applied. */
  | { state: 'synced' }
  /** Still behind (budget spent or the listener refused): call again later. */
  | { state: 'behind' }
  /** The history it needs was compacted: the watcher is removed (etcd cancels it). */
  | { state: 'compacted'; compactRevision: number };

export interface WatchHandle {
  readonly id: number;
  /** False while the watcher is behind and needs catchUp() calls to make progress. */
  readonly synced: boolean;
  /** Delivers one bounded batch of history (see KvStore.catchUp). */
  catchUp(maxEvents: number, maxBytes: number): CatchUp;
  cancel(): void;
}

/** One change of an applied revision, as the hub needs to route it. */
export interface Change {
  key: string;
  isDelete: boolean;
}

export class Watcher {
  /** Unsynced: the first revision not yet delivered. 0 while synced. */
  next = 0;
  cancelled = false;

  constructor(
    readonly id: number,
    readonly begin: string,
    /** undefined: single key; null: no upper bound; string: exclusive end. */
    readonly end: string | null | undefined,
    readonly startRevision: number,
    readonly prevKv: boolean,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly listener: WatchListener,
    /** Told when the store moves this watcher aside on its own (a snapshot replaced the state). */
    readonly onBehind?: () => void,
  ) {}

  static from(id: number, opts: WatchOptions, listener: WatchListener, onBehind?: () => void): Watcher {
    const begin = opts.key.toString('latin1');
    const re = opts.range_end;
    let end: string | null | undefined;
    if (!re || re.length === 0) end = undefined;
    else if (re.length === 1 && re[0] === 0) end = null;
    else end = re.toString('latin1');
    const filters = opts.filters ?? [];
    return new Watcher(
      id,
      begin,
      end,
      opts.start_revision ?? 0,
      opts.prev_kv ?? false,
      filters.includes('NOPUT'),
      filters.includes('NODELETE'),
      listener,
      onBehind,
    );
  }

  matches(key: string): boolean {
    if (this.end === undefined) return key === this.begin;
    return key >= this.begin && (this.end === null || key < this.end);
  }

  wants(c: Change): boolean {
    return c.isDelete ? !this.noDelete : !this.noPut;
  }

  /** An empty range ([a, b) with b <= a) can never match; etcd refuses to create it. */
  get empty(): boolean {
    return typeof this.end === 'string' && this.end <= this.begin;
  }
}

export class WatchHub {
  private readonly singles = new Map<string, Set<Watcher>>();
  private readonly ranges = new IntervalIndex<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  private singleCount = 0;

  get size(): number {
    return this.singleCount + this.ranges.size + this.unsynced.size;
  }

  /** Number of watchers currently behind. */
  get unsyncedCount(): number {
    return this.unsynced.size;
  }

  /** Adds a watcher that is up to date. */
  add(w: Watcher): void {
    w.next = 0;
    if (w.end === undefined) {
      let set = this.singles.get(w.begin);
      if (!set) this.singles.set(w.begin, (set = new Set()));
      if (!set.has(w)) this.singleCount++;
      set.add(w);
    } else {
      this.ranges.add(w.begin, w.end, w);
    }
  }

  /** Adds (or moves) a watcher that still has to see revisions from `next` on. */
  addUnsynced(w: Watcher, next: number): void {
    this.removeSynced(w);
    w.next = next;
    this.unsynced.add(w);
  }

  /**
   * The state was replaced under every watcher: the synced ones move aside at `next` (the first
   * revision they have not seen), the unsynced keep their cursors, and each is told to catch up.
   */
  resyncAll(next: number): void {
    const synced: Watcher[] = [];
    for (const set of this.singles.values()) synced.push(...set);
    this.ranges.forEach((w) => synced.push(w));
    for (const w of synced) this.addUnsynced(w, next);
    for (const w of [...this.unsynced]) w.onBehind?.();
  }

  /** The unsynced watcher caught up: from now on it hears of new revisions as they happen. */
  markSynced(w: Watcher): void {
    if (this.unsynced.delete(w)) this.add(w);
  }

  isSynced(w: Watcher): boolean {
    return !this.unsynced.has(w) && !w.cancelled;
  }

  remove(w: Watcher): boolean {
    w.cancelled = true;
    return this.unsynced.delete(w) || this.removeSynced(w);
  }

  private removeSynced(w: Watcher): boolean {
    if (w.end !== undefined) return this.ranges.delete(w.begin, w.end, w);
    const set = this.singles.get(w.begin);
    const removed = set?.delete(w) ?? false;
    if (removed) this.singleCount--;
    if (set && set.size === 0) this.singles.delete(w.begin);
    return removed;
  }

  /**
   * Delivers the changes of revision `rev` (in write order) to the synced watchers. makeEvent(i,
   * withPrev) builds the event of change i; it is called at most twice per change (with and
   * without prev_kv). A watcher whose listener refuses is moved aside, unsynced at `rev`.
   */
  notify(rev: number, changes: readonly Change[], makeEvent: (i: number, withPrev: boolean) => Event): void {
    if (this.singleCount === 0 && this.ranges.size === 0) return;
    const batches = new Map<Watcher, Event[]>();
    const plain: (Event | undefined)[] = new Array(changes.length);
    const withPrev: (Event | undefined)[] = new Array(changes.length);
    let i = 0;
    const deliver = (w: Watcher): void => {
      if (w.startRevision > rev || !w.wants(changes[i])) return;
      let ev: Event | undefined;
      if (w.prevKv) ev = withPrev[i] ?? (withPrev[i] = makeEvent(i, true));
      else ev = plain[i] ?? (plain[i] = makeEvent(i, false));
      const batch = batches.get(w);
      if (batch) batch.push(ev);
      else batches.set(w, [ev]);
    };
    for (; i < changes.length; i++) {
      const key = changes[i].key;
      const set = this.singles.get(key);
      if (set) for (const w of set) deliver(w);
      this.ranges.stab(key, deliver);
    }
    for (const [w, events] of batches) {
      if (w.cancelled) continue; // cancelled by an earlier listener of this same revision
      let taken: unknown = true;
      try {
        taken = w.listener(events, rev);
      } catch (e) {
        // A broken listener must not abort the apply that is notifying it: surface it apart.
        queueMicrotask(() => {
          throw e;
        });
      }
      if (taken === false && !w.cancelled) this.addUnsynced(w, rev);
    }
  }
}
