/**
 * The shape of the logical raft log as the WAL sees it: which indexes exist and in which
 * term. The writer uses it to validate each save against everything queued before it; replay
 * uses the same rules (keeping the entries too) so that what recovery returns is exactly what
 * the accepted sequence of saves and markers means.
 */
import type { Entry, SnapshotMeta } from "../raft/types";

/** A save or marker that does not fit the log (a gap, or a rewrite below the snapshot). */
export class LogOrderError extends Error {}

interface TermRun {
  first: number;
  term: number;
}

export class LogTracker {
  /**
   * Index of the last entry, or of the snapshot when no entry follows it. Undefined only
   * during replay of a WAL whose oldest segments were released, until the first entry shows
   * where the surviving log starts.
   */
  last: number | undefined;
  marker: SnapshotMeta | undefined;
  /** Runs of equal term covering [runs[0].first, last]; empty when no entry is tracked. */
  private runs: TermRun[] = [];
  /** The entries themselves, parallel to `runs`, when the tracker keeps them (replay). */
  readonly entries: Entry[] | undefined;

  constructor(opts: { last: number | undefined; keepEntries: boolean; marker?: SnapshotMeta }) {
    this.last = opts.last;
    this.marker = opts.marker;
    this.entries = opts.keepEntries ? [] : undefined;
  }

  /** Rebuilds the writer's view from what recovery returned. */
  static fromRecovered(marker: SnapshotMeta | undefined, entries: readonly Entry[]): LogTracker {
    const t = new LogTracker({ last: marker?.index ?? 0, keepEntries: false, marker });
    for (const e of entries) t.append(e);
    return t;
  }

  get firstIndex(): number | undefined {
    return this.runs.length > 0 ? this.runs[0].first : undefined;
  }

  termAt(index: number): number | undefined {
    if (this.marker && index === this.marker.index) return this.marker.term;
    if (this.last === undefined || this.runs.length === 0 || index < this.runs[0].first || index > this.last) return undefined;
    for (let i = this.runs.length - 1; i >= 0; i--) if (this.runs[i].first <= index) return this.runs[i].term;
    return undefined;
  }

  /**
   * Appends one entry; an index at or below the last one first drops the conflicting suffix.
   * An index below the tracked start restarts the log there: during replay the start is only
   * as old as the oldest surviving segment, and the final contiguity check catches real holes.
   */
  append(e: Entry): void {
    if (this.last !== undefined && e.index > this.last + 1) {
      throw new LogOrderError(`entry ${e.index} leaves a gap after index ${this.last}`);
    }
    if (this.last !== undefined && e.index <= this.last) this.truncateFrom(e.index);
    const tail = this.runs[this.runs.length - 1];
    if (!tail || tail.term !== e.term) this.runs.push({ first: e.index, term: e.term });
    this.last = e.index;
    this.entries?.push(e);
  }

  private truncateFrom(index: number): void {
    const first = this.firstIndex;
    if (first === undefined || index <= first) {
      this.runs = [];
      if (this.entries) this.entries.length = 0;
    } else {
      while (this.runs[this.runs.length - 1].first >= index) this.runs.pop();
      if (this.entries) this.entries.length = index - first;
    }
    this.last = index - 1;
  }

  /** Whether raft would keep the log after `meta.index` on installing this snapshot. */
  keepsLog(meta: SnapshotMeta): boolean {
    return this.termAt(meta.index) === meta.term && this.last !== undefined && this.last >= meta.index;
  }

  /** Records a snapshot: entries up to meta.index are dropped; the rest survive only if `keepsLog`. */
  applyMarker(meta: SnapshotMeta, keepsLog: boolean): void {
    this.marker = meta;
    if (this.last === undefined) return; // nothing known yet to drop or keep
    const first = this.firstIndex;
    if (keepsLog && first !== undefined && this.last > meta.index) {
      if (meta.index >= first) {
        if (this.entries) this.entries.splice(0, meta.index - first + 1);
        while (this.runs.length > 1 && this.runs[1].first <= meta.index + 1) this.runs.shift();
        this.runs[0].first = meta.index + 1;
      }
      return;
    }
    if (!keepsLog || this.last <= meta.index) {
      this.runs = [];
      if (this.entries) this.entries.length = 0;
      this.last = meta.index;
    }
  }
}
