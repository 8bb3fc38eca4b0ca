import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkKvHistory,
  checkOperations,
  formatCounterexample,
  formatKvResult,
  registerModel,
  type KvOperation,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
  type RegisterValue,
} from "./lincheck";

type Op = Operation<RegisterInput, RegisterOutput>;

const w = (id: number, call: number, ret: number | undefined, value: string): Op => ({ id, client: id, call, ret, input: { f: "write", value }, ...(ret === undefined ? {} : { output: null }) });
const r = (id: number, call: number, ret: number, value: RegisterValue): Op => ({ id, client: id, call, ret, input: { f: "read" }, output: { value } });
const cas = (id: number, call: number, ret: number | undefined, expect: RegisterValue, value: string, ok?: boolean): Op => ({
  id,
  client: id,
  call,
  ret,
  input: { f: "cas", expect, value },
  ...(ret === undefined || ok === undefined ? {} : { output: { ok } }),
});

/** The reference answer: try every subset of pending operations and every real-time-respecting order. */
function bruteForce(ops: readonly Op[]): boolean {
  const completed = ops.filter((o) => o.ret !== undefined);
  const pending = ops.filter((o) => o.ret === undefined);
  for (let mask = 0; mask < 1 << pending.length; mask++) {
    const chosen = [...completed, ...pending.filter((_, i) => (mask >> i) & 1)];
    if (searchOrders(chosen, [], registerModel.init())) return true;
  }
  return false;
}

function searchOrders(left: Op[], placed: Op[], state: RegisterValue): boolean {
  if (left.length === 0) return true;
  for (const o of left) {
    // o may go next only if no other unplaced operation returned strictly before o was called.
    if (left.some((p) => p !== o && p.ret !== undefined && p.ret < o.call)) continue;
    const next = registerModel.step(state, o.input, o.ret === undefined ? undefined : o.output);
    if (next === undefined) continue;
    if (searchOrders(left.filter((p) => p !== o), [...placed, o], next)) return true;
  }
  return false;
}

const valueArb = fc.constantFrom("a", "b", "c");
const maybeValueArb = fc.constantFrom<RegisterValue>(null, "a", "b", "c");

/** Arbitrary (mostly non-linearizable) small histories: random intervals, random outputs. */
const smallHistoryArb = fc
  .array(
    fc.record({
      call: fc.integer({ min: 0, max: 20 }),
      len: fc.integer({ min: 0, max: 8 }),
      pending: fc.boolean(),
      kind: fc.constantFrom("read", "write", "cas"),
      value: valueArb,
      expect: maybeValueArb,
      read: maybeValueArb,
      ok: fc.boolean(),
    }),
    { minLength: 1, maxLength: 7 },
  )
  .map((specs) =>
    specs.map((s, id): Op => {
      const ret = s.pending && s.kind !== "read" ? undefined : s.call + s.len;
      if (s.kind === "read") return r(id, s.call, s.call + s.len, s.read);
      if (s.kind === "write") return w(id, s.call, ret, s.value);
      return cas(id, s.call, ret, s.expect, s.value, s.ok);
    }),
  );

/**
 * Linearizable by construction: each operation takes effect at a distinct instant inside its
 * interval, outputs computed by running them in that order; some writes/CASes are left pending,
 * and a pending one may or may not have taken effect.
 */
const linearizableHistoryArb = (maxOps: number) =>
  fc
    .array(
      fc.record({
        gapBefore: fc.integer({ min: 0, max: 30 }),
        gapAfter: fc.integer({ min: 0, max: 30 }),
        kind: fc.constantFrom("read", "write", "cas"),
        value: valueArb,
        expect: maybeValueArb,
        pending: fc.boolean(),
        applied: fc.boolean(),
      }),
      { minLength: 1, maxLength: maxOps },
    )
    .map((specs) => {
      let state: RegisterValue = null;
      const ops: Op[] = [];
      specs.forEach((s, id) => {
        const at = id * 10 + 5; // the linearization point
        const call = at - s.gapBefore;
        const ret = at + s.gapAfter;
        const unique = `${s.value}${id}`; // unique written values keep histories unambiguous
        if (s.kind === "read") {
          ops.push(r(id, call, ret, state));
        } else if (s.pending) {
          // Unknown outcome: either it took effect at `at` or it never did.
          if (s.applied) state = s.kind === "write" ? unique : state === s.expect ? unique : state;
          ops.push(s.kind === "write" ? w(id, call, undefined, unique) : cas(id, call, undefined, s.expect, unique));
        } else if (s.kind === "write") {
          state = unique;
          ops.push(w(id, call, ret, unique));
        } else {
          const ok = state === s.expect;
          if (ok) state = unique;
          ops.push(cas(id, call, ret, s.expect, unique, ok));
        }
      });
      return ops;
    });

describe("lincheck: Wing & Gong with memoization, register model", () => {
  it("agrees with a brute-force search on arbitrary small histories", () => {
    let illegal = 0;
    let ok = 0;
    fc.assert(
      fc.property(smallHistoryArb, (ops) => {
        const expected = bruteForce(ops);
        const got = checkOperations(registerModel, ops);
        if (got.verdict === "ok") ok++;
        else illegal++;
        assert.equal(got.verdict, expected ? "ok" : "illegal", JSON.stringify(ops));
      }),
      { numRuns: 1500 },
    );
    // Both verdicts were exercised, so the property is not vacuous.
    assert.ok(ok > 50 && illegal > 50, `ok ${ok} illegal ${illegal}`);
  });

  it("accepts every history that is linearizable by construction, pending operations included", () => {
    fc.assert(
      fc.property(linearizableHistoryArb(60), (ops) => {
        const got = checkOperations(registerModel, ops);
        assert.equal(got.verdict, "ok", got.verdict === "illegal" ? formatCounterexample(got.counterexample) : "");
      }),
      { numRuns: 300 },
    );
  });

  it("rejects a linearizable history once one completed read is made to return a stale or unwritten value", () => {
    fc.assert(
      fc.property(linearizableHistoryArb(40), fc.nat(), (ops, pick) => {
        const reads = ops.filter((o) => o.input.f === "read");
        fc.pre(reads.length > 0);
        const victim = reads[pick % reads.length]!;
        // A value nobody ever wrote can never be read.
        const mutated = ops.map((o) => (o === victim ? { ...o, output: { value: "never-written" } } : o));
        const got = checkOperations(registerModel, mutated);
        assert.equal(got.verdict, "illegal");
      }),
      { numRuns: 200 },
    );
  });

  it("a stale read after a completed write is illegal, and the counterexample names the read", () => {
    const ops = [w(0, 0, 10, "x"), r(1, 20, 30, null)];
    const got = checkOperations(registerModel, ops);
    assert.equal(got.verdict, "illegal");
    if (got.verdict !== "illegal") return;
    const text = formatCounterexample(got.counterexample);
    assert.match(got.counterexample.stuck, /#1 client 1 read → ∅ \[20, 30\]/);
    assert.match(text, /write "x"/);
    assert.equal(got.counterexample.state, '"x"');
  });

  it("the same read concurrent with the write is fine", () => {
    assert.equal(checkOperations(registerModel, [w(0, 0, 10, "x"), r(1, 5, 30, null)]).verdict, "ok");
  });

  it("a pending write may take effect long after its call, or never", () => {
    const took = [w(0, 0, undefined, "x"), r(1, 10, 11, null), r(2, 100, 101, "x")];
    const never = [w(0, 0, undefined, "x"), r(1, 10, 11, null), r(2, 100, 101, null)];
    assert.equal(checkOperations(registerModel, took).verdict, "ok");
    assert.equal(checkOperations(registerModel, never).verdict, "ok");
    // But it cannot take effect, be observed, and then be undone.
    const flicker = [w(0, 0, undefined, "x"), r(1, 10, 11, "x"), r(2, 100, 101, null)];
    assert.equal(checkOperations(registerModel, flicker).verdict, "illegal");
  });

  it("two successful CASes from the same expected value cannot both win", () => {
    const ops = [w(0, 0, 1, "a"), cas(1, 5, 20, "a", "b", true), cas(2, 6, 21, "a", "c", true)];
    assert.equal(checkOperations(registerModel, ops).verdict, "illegal");
    const oneLoses = [w(0, 0, 1, "a"), cas(1, 5, 20, "a", "b", true), cas(2, 6, 21, "a", "c", false)];
    assert.equal(checkOperations(registerModel, oneLoses).verdict, "ok");
  });

  it("checks a 5-client, 2000-operation history quickly thanks to the memo cache", () => {
    // Five clients with overlapping intervals, every op concurrent with ~4 others.
    const ops: Op[] = [];
    let state: RegisterValue = null;
    for (let i = 0; i < 2000; i++) {
      const at = i * 10;
      const call = at - 22;
      const ret = at + 23;
      if (i % 3 === 0) ops.push(r(i, call, ret, state));
      else if (i % 7 === 0) ops.push(w(i, call, undefined, (state = `v${i}`)));
      else if (i % 5 === 0) {
        const ok = state === `v${i - 5}`;
        if (ok) state = `v${i}`;
        ops.push(cas(i, call, ret, `v${i - 5}`, `v${i}`, ok));
      } else ops.push(w(i, call, ret, (state = `v${i}`)));
    }
    const got = checkOperations(registerModel, ops, { maxSteps: 2_000_000 });
    assert.equal(got.verdict, "ok");
  });

  it("gives up with 'unknown' instead of hanging when the step budget runs out", () => {
    const ops: Op[] = [];
    for (let i = 0; i < 14; i++) ops.push(w(i, 0, 100, `v${i}`));
    ops.push(r(99, 200, 201, "nobody"));
    const got = checkOperations(registerModel, ops, { maxSteps: 1000 });
    assert.equal(got.verdict, "unknown");
  });

  it("checks a KV history key by key and reports only the failing key", () => {
    const kv = (key: string, op: Op): KvOperation => ({ ...op, key });
    const history = [kv("k1", w(0, 0, 10, "x")), kv("k1", r(1, 20, 30, "x")), kv("k2", w(2, 0, 10, "y")), kv("k2", r(3, 20, 30, "x"))];
    const got = checkKvHistory(history);
    assert.equal(got.verdict, "illegal");
    assert.equal(got.keys, 2);
    assert.deepEqual(
      got.failures.map((f) => f.key),
      ["k2"],
    );
    assert.match(formatKvResult(got), /key "k2": not linearizable/);
    assert.equal(checkKvHistory(history.slice(0, 3)).verdict, "ok");
  });

  it("checkKvHistory (which first drops unobserved pending writes) agrees with brute force", () => {
    fc.assert(
      fc.property(smallHistoryArb, (ops) => {
        const got = checkKvHistory(ops.map((o) => ({ ...o, key: "k" })));
        assert.equal(got.verdict, bruteForce(ops) ? "ok" : "illegal", JSON.stringify(ops));
      }),
      { numRuns: 1000 },
    );
  });

  it("an unobserved pending write can still be what made a CAS fail", () => {
    const ops = [w(0, 0, undefined, "x"), cas(1, 10, 11, null, "y", false)];
    assert.equal(checkKvHistory(ops.map((o) => ({ ...o, key: "k" }))).verdict, "ok");
    assert.equal(checkKvHistory([{ ...ops[1]!, key: "k" }]).verdict, "illegal");
  });

  it("refuses malformed histories loudly", () => {
    assert.throws(() => checkOperations(registerModel, [w(0, 10, 5, "x")]), /returns \(5\) before its call \(10\)/);
    assert.throws(() => checkOperations(registerModel, [{ id: 0, client: 0, call: 0, ret: 1, input: { f: "read" } }]), /no output/);
  });
});
