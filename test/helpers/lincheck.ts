/**
 * Linearizability checker: Wing & Gong's search over a history, with Porcupine's memoization
 * (a cache of "this set of operations linearized, ending in this model state" already explored),
 * and P-compositionality (a KV history is checked key by key, each key an independent register).
 *
 * Operations may be pending forever: a client that timed out or lost its connection does not know
 * whether its write took effect. Such an operation has no return time and no output; it may be
 * linearized anywhere after its call, or never. Because a pending operation's step accepts any
 * outcome, it can always be placed after everything else, so "never" needs no extra branch: the
 * search succeeds once every *completed* operation is linearized.
 *
 * Pure: no I/O, no clocks. The search is bounded by a step budget so a pathological history
 * yields `unknown` instead of hanging a test.
 */

/** A sequential specification. `output` is undefined for a pending (unknown-outcome) operation. */
export interface Model<I, O, S> {
  init(): S;
  /** The state after applying `input` with the observed `output`, or undefined if that output is impossible in `state`. */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** A string identifying the state (for the memo cache). Equal states must give equal keys. */
  stateKey(state: S): string;
  describe(input: I, output: O | undefined): string;
}

export interface Operation<I, O> {
  /** Unique within the history; echoed in counterexamples. */
  id: number;
  client: number;
  /** Invocation time (any monotonic unit). */
  call: number;
  /** Response time; undefined while pending (the outcome is unknown). */
  ret?: number;
  input: I;
  /** Observed output; must be set when `ret` is. */
  output?: O;
}

export interface Counterexample {
  /** The longest prefix of operations the search managed to linearize, in linearization order. */
  linearized: string[];
  /** Model state after that prefix. */
  state: string;
  /** The completed operation that returned before it could be placed after that prefix. */
  stuck: string;
  /** Operations concurrent with the stuck one that were not placed either. */
  concurrent: string[];
}

export type CheckResult =
  | { verdict: "ok"; steps: number }
  | { verdict: "illegal"; steps: number; counterexample: Counterexample }
  | { verdict: "unknown"; steps: number; reason: string };

export interface CheckOptions {
  /** Upper bound on search steps (call attempts) before giving up with `unknown`. */
  maxSteps?: number;
  /** checkKvHistory only: bound on the steps of all keys together (keys past it are `unknown`). */
  maxTotalSteps?: number;
}

interface Node {
  op: number; // index into ops
  isCall: boolean;
  time: number;
  prev: Node | undefined;
  next: Node | undefined;
  match: Node | undefined; // call <-> return
}

class Bitset {
  readonly words: Uint32Array;
  constructor(n: number) {
    this.words = new Uint32Array(Math.ceil(n / 32) || 1);
  }
  set(i: number): void {
    this.words[i >>> 5] = (this.words[i >>> 5] ?? 0) | (1 << (i & 31));
  }
  clear(i: number): void {
    this.words[i >>> 5] = (this.words[i >>> 5] ?? 0) & ~(1 << (i & 31));
  }
  key(): string {
    let s = "";
    for (const w of this.words) s += w.toString(36) + ".";
    return s;
  }
}

function describeOp<I, O, S>(model: Model<I, O, S>, op: Operation<I, O>): string {
  const span = `[${op.call}, ${op.ret === undefined ? "pending" : op.ret}]`;
  return `#${op.id} client ${op.client} ${model.describe(op.input, op.ret === undefined ? undefined : op.output)} ${span}`;
}

/** Checks one history (one partition) against `model`. */
export function checkOperations<I, O, S>(model: Model<I, O, S>, history: readonly Operation<I, O>[], opts: CheckOptions = {}): CheckResult {
  const maxSteps = opts.maxSteps ?? 5_000_000;
  const ops = history;
  for (const op of ops) {
    if (op.ret !== undefined && op.ret < op.call) throw new Error(`operation #${op.id} returns (${op.ret}) before its call (${op.call})`);
    if (op.ret !== undefined && op.output === undefined) throw new Error(`operation #${op.id} has a return time but no output`);
  }

  // Events in time order; a pending operation returns at +Infinity. At equal times calls sort
  // before returns, i.e. touching intervals count as concurrent (the permissive reading).
  const events: Node[] = [];
  ops.forEach((op, i) => {
    const c: Node = { op: i, isCall: true, time: op.call, prev: undefined, next: undefined, match: undefined };
    const r: Node = { op: i, isCall: false, time: op.ret ?? Infinity, prev: undefined, next: undefined, match: c };
    c.match = r;
    events.push(c, r);
  });
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
  const head: Node = { op: -1, isCall: false, time: -Infinity, prev: undefined, next: undefined, match: undefined };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  const completed = ops.reduce((n, op) => n + (op.ret === undefined ? 0 : 1), 0);
  const lift = (call: Node): void => {
    // Remove the call and its return from the list; their own prev/next stay for unlift.
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Node): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const linearized = new Bitset(ops.length);
  const cache = new Set<string>();
  const stack: { call: Node; state: S }[] = [];
  let state = model.init();
  let linearizedCompleted = 0;
  let steps = 0;
  // Deepest point reached, for the counterexample.
  let best: { order: number[]; state: S; stuckAt: Node } | undefined;

  let entry = head.next;
  while (linearizedCompleted < completed) {
    if (entry === undefined) throw new Error("lincheck: ran off the event list (bug)");
    if (entry.isCall) {
      if (++steps > maxSteps) return { verdict: "unknown", steps, reason: `search budget of ${maxSteps} steps exhausted` };
      const op = ops[entry.op]!;
      const call: Node = entry;
      const next = model.step(state, op.input, op.ret === undefined ? undefined : op.output);
      let advanced = false;
      if (next !== undefined) {
        linearized.set(call.op);
        const key = linearized.key() + "|" + model.stateKey(next);
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ call, state });
          state = next;
          if (op.ret !== undefined) linearizedCompleted++;
          lift(call);
          entry = head.next;
          advanced = true;
        } else {
          linearized.clear(call.op);
        }
      }
      if (!advanced) entry = call.next;
    } else {
      // A return: the operation it closes must have been linearized before this point. Backtrack.
      if (best === undefined || stack.length > best.order.length) best = { order: stack.map((f) => f.call.op), state, stuckAt: entry };
      const top = stack.pop();
      if (top === undefined) {
        const b = best;
        const stuckOp = ops[b.stuckAt.op]!;
        const placed = new Set(b.order);
        const concurrent = ops.filter(
          (o, i) => !placed.has(i) && i !== b.stuckAt.op && o.call <= (stuckOp.ret ?? Infinity) && (o.ret ?? Infinity) >= stuckOp.call,
        );
        return {
          verdict: "illegal",
          steps,
          counterexample: {
            linearized: b.order.map((i) => describeOp(model, ops[i]!)),
            state: model.stateKey(b.state),
            stuck: describeOp(model, stuckOp),
            concurrent: concurrent.map((o) => describeOp(model, o)),
          },
        };
      }
      state = top.state;
      linearized.clear(top.call.op);
      if (ops[top.call.op]!.ret !== undefined) linearizedCompleted--;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { verdict: "ok", steps };
}

/** Renders a counterexample for a test failure or a report. */
export function formatCounterexample(c: Counterexample, tail = 12): string {
  const shown = c.linearized.slice(-tail);
  const lines = [
    `not linearizable: after linearizing ${c.linearized.length} operation(s)` + (shown.length < c.linearized.length ? ` (last ${shown.length} shown)` : "") + ":",
    ...shown.map((s) => `    ${s}`),
    `  state: ${c.state}`,
    `  no order fits ${c.stuck}`,
  ];
  if (c.concurrent.length > 0) lines.push("  concurrent and unplaced:", ...c.concurrent.map((s) => `    ${s}`));
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// The register model (one etcd key): read, write (Put), compare-and-swap (Txn comparing the value).

/** null = key absent. */
export type RegisterValue = string | null;

export type RegisterInput =
  | { f: "read" }
  | { f: "write"; value: string }
  | { f: "cas"; expect: RegisterValue; value: string };

/** read → the value read; write → null; cas → whether the comparison succeeded. */
export type RegisterOutput = { value: RegisterValue } | { ok: boolean } | null;

export const registerModel: Model<RegisterInput, RegisterOutput, RegisterValue> = {
  init: () => null,
  step(state, input, output) {
    switch (input.f) {
      case "read":
        if (output === undefined) return state;
        return output !== null && "value" in output && output.value === state ? state : undefined;
      case "write":
        return input.value;
      case "cas": {
        const matches = state === input.expect;
        if (output === undefined) return matches ? input.value : state;
        if (output === null || !("ok" in output)) return undefined;
        if (output.ok !== matches) return undefined;
        return matches ? input.value : state;
      }
    }
  },
  stateKey: (s) => (s === null ? "∅" : JSON.stringify(s)),
  describe(input, output) {
    const v = (x: RegisterValue): string => (x === null ? "∅" : JSON.stringify(x));
    switch (input.f) {
      case "read":
        return `read → ${output === undefined ? "?" : output !== null && "value" in output ? v(output.value) : "??"}`;
      case "write":
        return `write ${v(input.value)}${output === undefined ? " → ?" : ""}`;
      case "cas":
        return `cas ${v(input.expect)}→${v(input.value)} → ${output === undefined ? "?" : output !== null && "ok" in output ? (output.ok ? "ok" : "fail") : "??"}`;
    }
  },
};

export interface KvOperation extends Operation<RegisterInput, RegisterOutput> {
  key: string;
}

export interface KvCheckResult {
  verdict: "ok" | "illegal" | "unknown";
  /** Per key, only keys whose verdict is not ok. */
  failures: { key: string; result: CheckResult }[];
  keys: number;
  steps: number;
}

/** Checks a KV history key by key (linearizability is compositional across independent objects). */
export function checkKvHistory(history: readonly KvOperation[], opts: CheckOptions = {}): KvCheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of history) {
    let l = byKey.get(op.key);
    if (l === undefined) byKey.set(op.key, (l = []));
    l.push(op);
  }
  const failures: { key: string; result: CheckResult }[] = [];
  let steps = 0;
  for (const [key, ops] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const budget = (): number => Math.max(0, Math.min(opts.maxSteps ?? 5_000_000, (opts.maxTotalSteps ?? Infinity) - steps));
    // First without the pending writes nobody observed: that search is much smaller, and its
    // "ok" is final (a pending operation may always be taken as never having happened). Its
    // "illegal" is not (a failed CAS may be explained only by an unobserved write), so then the
    // full history is searched.
    const pruned = withoutUnobservedPending(ops);
    let result = checkOperations(registerModel, pruned, { maxSteps: budget() });
    steps += result.steps;
    if (result.verdict !== "ok" && pruned.length < ops.length) {
      result = checkOperations(registerModel, ops, { maxSteps: budget() });
      steps += result.steps;
    }
    if (result.verdict !== "ok") failures.push({ key, result });
  }
  const verdict = failures.some((f) => f.result.verdict === "illegal") ? "illegal" : failures.length > 0 ? "unknown" : "ok";
  return { verdict, failures, keys: byKey.size, steps };
}

/**
 * The history minus pending writes/CASes whose value no completed operation observed (as a read
 * value, or as the expected value of a successful CAS). Writes are unique per value in our
 * workloads; with repeated values this is still sound (it only ever keeps more operations).
 */
export function withoutUnobservedPending(ops: readonly KvOperation[]): KvOperation[] {
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.ret === undefined || op.output === undefined || op.output === null) continue;
    if (op.input.f === "read" && "value" in op.output && op.output.value !== null) observed.add(op.output.value);
    if (op.input.f === "cas" && "ok" in op.output && op.output.ok && op.input.expect !== null) observed.add(op.input.expect);
  }
  return ops.filter((op) => op.ret !== undefined || op.input.f === "read" || observed.has(op.input.value));
}

/** One line per failing key, with the counterexample. */
export function formatKvResult(r: KvCheckResult): string {
  if (r.verdict === "ok") return `linearizable (${r.keys} key(s), ${r.steps} search steps)`;
  return r.failures
    .map((f) =>
      f.result.verdict === "illegal" ? `key ${JSON.stringify(f.key)}: ${formatCounterexample(f.result.counterexample)}` : `key ${JSON.stringify(f.key)}: unknown (${f.result.verdict === "unknown" ? f.result.reason : ""})`,
    )
    .join("\n");
}
