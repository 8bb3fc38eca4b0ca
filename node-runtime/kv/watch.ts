/**
 * Registry of live watchers and the fan-out of one applied revision to them. Single-key
 * watchers are found by a map lookup; range and prefix watchers by a scan of the (usually
 * short) list of range watchers. Every watcher receives all of its events of one revision in
 * one call, in the order the writes happened inside that revision.
 */
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
 * they bring the watcher up to. Called synchronously: during watch() for history replay and
 * during apply() for new writes.
 */
export type WatchListener = (events: Event[], revision: number) => void;

export interface WatchHandle {
  readonly id: number;
  cancel(): void;
}

/** One change of an applied revision, as the hub needs to route it. */
export interface Change {
  key: string;
  isDelete: boolean;
}

export class Watcher {
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
  ) {}

  static from(id: number, opts: WatchOptions, listener: WatchListener): Watcher {
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
    );
  }

  matches(key: string): boolean {
    if (this.end === undefined) return key === this.begin;
    return key >= this.begin && (this.end === null || key < this.end);
  }

  wants(c: Change): boolean {
    return c.isDelete ? !this.noDelete : !this.noPut;
  }
}

export class WatchHub {
  private readonly singles = new Map<string, Set<Watcher>>();
  private readonly ranges = new Set<Watcher>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(w: Watcher): void {
    if (w.end === undefined) {
      let set = this.singles.get(w.begin);
      if (!set) this.singles.set(w.begin, (set = new Set()));
      set.add(w);
    } else {
      this.ranges.add(w);
    }
    this.count++;
  }

  remove(w: Watcher): boolean {
    let removed: boolean;
    if (w.end === undefined) {
      const set = this.singles.get(w.begin);
      removed = set?.delete(w) ?? false;
      if (set && set.size === 0) this.singles.delete(w.begin);
    } else {
      removed = this.ranges.delete(w);
    }
    if (removed) this.count--;
    return removed;
  }

  /**
   * Delivers the changes of revision `rev` (in write order). makeEvent(i, withPrev) builds the
   * event of change i; it is called at most twice per change (with and without prev_kv).
   */
  notify(rev: number, changes: readonly Change[], makeEvent: (i: number, withPrev: boolean) => Event): void {
    if (this.count === 0) return;
    const batches = new Map<Watcher, Event[]>();
    const plain: (Event | undefined)[] = new Array(changes.length);
    const withPrev: (Event | undefined)[] = new Array(changes.length);
    const deliver = (w: Watcher, i: number): void => {
      if (w.startRevision > rev || !w.wants(changes[i])) return;
      let ev: Event | undefined;
      if (w.prevKv) ev = withPrev[i] ?? (withPrev[i] = makeEvent(i, true));
      else ev = plain[i] ?? (plain[i] = makeEvent(i, false));
      const batch = batches.get(w);
      if (batch) batch.push(ev);
      else batches.set(w, [ev]);
    };
    for (let i = 0; i < changes.length; i++) {
      const key = changes[i].key;
      const set = this.singles.get(key);
      if (set) for (const w of set) deliver(w, i);
      for (const w of this.ranges) if (w.matches(key)) deliver(w, i);
    }
    for (const [w, events] of batches) {
      try {
        w.listener(events, rev);
      } catch (e) {
        // A broken listener must not abort the apply that is notifying it: surface it apart.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
