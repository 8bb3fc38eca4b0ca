/**
 * A deliberately naive model of what a WAL should recover after a sequence of saves and
 * snapshot markers: plain arrays, no cleverness, so it can judge the real implementation.
 */
import type { HardState } from "../../../node-runtime/raft/types";

export interface ModelEntry {
  index: number;
  term: number;
}

export interface ModelState {
  hardState: HardState;
  marker: { index: number; term: number } | undefined;
  /** Entries after the marker, contiguous. */
  log: ModelEntry[];
  /** Last index (of the log, or the marker when the log is empty). */
  last: number;
}

export const EMPTY_MODEL: ModelState = { hardState: { term: 0, vote: 0, commit: 0 }, marker: undefined, log: [], last: 0 };

export type ModelOp =
  | { op: "save"; id: number; hs?: HardState; entries: ModelEntry[] }
  | { op: "mark"; id: number; index: number; term: number }
  | { op: "release"; id: number; index: number };

export function termAt(s: ModelState, index: number): number | undefined {
  if (s.marker && s.marker.index === index) return s.marker.term;
  return s.log.find((e) => e.index === index)?.term;
}

export function applyOp(s: ModelState, op: ModelOp, entryLimit = Infinity): ModelState {
  switch (op.op) {
    case "save": {
      const entries = op.entries.slice(0, entryLimit);
      let log = s.log;
      let last = s.last;
      if (entries.length > 0) {
        log = s.log.filter((e) => e.index < entries[0].index).concat(entries);
        last = entries[entries.length - 1].index;
      }
      // The hard state record follows the entries: a cut-short save never carries it.
      const hardState = op.hs && entryLimit >= op.entries.length ? op.hs : s.hardState;
      return { hardState, marker: s.marker, log, last };
    }
    case "mark": {
      const keeps = termAt(s, op.index) === op.term && s.last >= op.index;
      const marker = { index: op.index, term: op.term };
      if (keeps) return { ...s, marker, log: s.log.filter((e) => e.index > op.index), last: Math.max(s.last, op.index) };
      return { ...s, marker, log: [], last: op.index };
    }
    case "release":
      return s;
  }
}

/** Every state a crash may legally leave: all acknowledged ops, then any prefix of the rest, the first unacknowledged save possibly cut short. */
export function possibleStates(base: ModelState, ops: readonly ModelOp[], acked: number): ModelState[] {
  const out: ModelState[] = [];
  let s = base;
  for (let k = 0; k <= ops.length; k++) {
    if (k >= acked) {
      out.push(s);
      const next = ops[k];
      if (next && next.op === "save") for (let p = 0; p < next.entries.length; p++) out.push(applyOp(s, next, p));
    }
    if (k < ops.length) s = applyOp(s, ops[k]);
  }
  return out;
}

export function sameState(a: ModelState, b: ModelState): boolean {
  const hs = a.hardState.term === b.hardState.term && a.hardState.vote === b.hardState.vote && a.hardState.commit === b.hardState.commit;
  const mk = (a.marker?.index ?? -1) === (b.marker?.index ?? -1) && (a.marker?.term ?? -1) === (b.marker?.term ?? -1);
  return hs && mk && a.log.length === b.log.length && a.log.every((e, i) => e.index === b.log[i].index && e.term === b.log[i].term);
}

export function describe(s: ModelState): string {
  const l = s.log;
  const span = l.length ? `${l[0].index}..${l[l.length - 1].index} (last term ${l[l.length - 1].term})` : "empty";
  return `hs=${JSON.stringify(s.hardState)} marker=${s.marker ? `${s.marker.index}@${s.marker.term}` : "none"} log=${span}`;
}
