import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_LOG_POSITION, decodeConfChange, decodeMessage, encodeConfChange, encodeMessage } from "../../node-runtime/raft/codec";
import { EntryType, type Entry, type Message } from "../../node-runtime/raft/types";

/** fast-check builds null-prototype records; copy into plain objects to compare with the decoder's. */
function plain<T>(x: T): T {
  if (x instanceof Uint8Array) return x;
  if (Array.isArray(x)) return x.map(plain) as T;
  if (x !== null && typeof x === "object") {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)])) as T;
  }
  return x;
}

const id = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
/** Terms, indices, commit points: the decoder accepts up to MAX_LOG_POSITION. */
const n = fc.integer({ min: 0, max: MAX_LOG_POSITION });
const small = fc.integer({ min: 0, max: 1000 });
const data = fc.uint8Array({ maxLength: 40 });

const entries = fc.tuple(fc.integer({ min: 1, max: 1e12 }), fc.array(fc.tuple(small, fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data), { maxLength: 5 })).map(
  ([first, es]): Entry[] => es.map(([term, type, d], i) => ({ term, index: first + i, type, data: d })),
);

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant("app" as const), from: id, to: id, term: n, index: n, logTerm: n, commit: n, entries }),
  fc.record({ type: fc.constant("appResp" as const), from: id, to: id, term: n, index: n, reject: fc.boolean(), rejectHint: n, logTerm: n }),
  fc.record({ type: fc.constantFrom("vote" as const, "preVote" as const), from: id, to: id, term: n, index: n, logTerm: n, force: fc.boolean() }),
  fc.record({ type: fc.constantFrom("voteResp" as const, "preVoteResp" as const), from: id, to: id, term: n, reject: fc.boolean() }),
  fc.record({ type: fc.constant("heartbeat" as const), from: id, to: id, term: n, commit: n, readSeq: n }),
  fc.record({ type: fc.constant("heartbeatResp" as const), from: id, to: id, term: n, readSeq: n }),
  fc.record({
    type: fc.constant("snap" as const),
    from: id,
    to: id,
    term: n,
    snapshot: fc.record({ meta: fc.record({ index: n, term: n, confState: fc.record({ voters: fc.array(id, { maxLength: 7 }), learners: fc.array(id, { maxLength: 3 }) }) }), data }),
  }),
  fc.record({ type: fc.constant("timeoutNow" as const), from: id, to: id, term: n }),
  fc.record({ type: fc.constant("prop" as const), from: id, to: id, term: n, entries }),
  fc.record({ type: fc.constant("readIndex" as const), from: id, to: id, term: n, ctx: data }),
  fc.record({ type: fc.constant("readIndexResp" as const), from: id, to: id, term: n, index: n, ctx: data }),
);

describe("raft codec", () => {
  it("round-trips every message type", () => {
    fc.assert(fc.property(message, (m) => assert.deepEqual(decodeMessage(encodeMessage(m)), plain(m))), { numRuns: 2000 });
  });

  it("rejects every truncation and trailing garbage with an Error", () => {
    fc.assert(
      fc.property(message, fc.uint8Array({ minLength: 1, maxLength: 4 }), (m, extra) => {
        const b = encodeMessage(m);
        for (let i = 0; i < b.length; i++) assert.throws(() => decodeMessage(b.subarray(0, i)), Error);
        const longer = new Uint8Array(b.length + extra.length);
        longer.set(b);
        longer.set(extra, b.length);
        assert.throws(() => decodeMessage(longer), Error);
      }),
      { numRuns: 300 },
    );
  });

  it("never crashes on random bytes: it decodes or throws an Error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          decodeMessage(b);
        } catch (e) {
          assert.ok(e instanceof Error);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it("rejects a term or index beyond MAX_LOG_POSITION at decode (a heartbeat of term 2^53-1 killed every member)", () => {
    const big = fc.integer({ min: MAX_LOG_POSITION + 1, max: Number.MAX_SAFE_INTEGER });
    const hostile: fc.Arbitrary<Message> = fc.oneof(
      fc.record({ type: fc.constant("heartbeat" as const), from: id, to: id, term: big, commit: small, readSeq: small }),
      fc.record({ type: fc.constant("heartbeat" as const), from: id, to: id, term: small, commit: big, readSeq: small }),
      fc.record({ type: fc.constant("app" as const), from: id, to: id, term: small, index: big, logTerm: small, commit: small, entries: fc.constant<Entry[]>([]) }),
      fc.record({ type: fc.constant("app" as const), from: id, to: id, term: small, index: small, logTerm: small, commit: small, entries: fc.constant<Entry[]>([{ term: 1, index: Number.MAX_SAFE_INTEGER - 1, type: EntryType.Normal, data: new Uint8Array(0) }]) }),
      fc.record({ type: fc.constantFrom("vote" as const, "preVote" as const), from: id, to: id, term: big, index: small, logTerm: small, force: fc.boolean() }),
      fc.record({ type: fc.constant("appResp" as const), from: id, to: id, term: small, index: small, reject: fc.boolean(), rejectHint: big, logTerm: small }),
      fc.record({ type: fc.constant("snap" as const), from: id, to: id, term: small, snapshot: fc.record({ meta: fc.record({ index: big, term: small, confState: fc.constant<{ voters: number[]; learners: number[] }>({ voters: [1], learners: [] }) }), data }) }),
      fc.record({ type: fc.constant("readIndexResp" as const), from: id, to: id, term: small, index: big, ctx: data }),
    );
    fc.assert(
      fc.property(hostile, (m) => {
        const wire = encodeMessage(m); // the sender's codec can write it...
        assert.throws(() => decodeMessage(wire), /codec: term or index out of range/); // ...the receiver refuses it
      }),
      { numRuns: 500 },
    );
    const heartbeat: Message = { type: "heartbeat", from: 1, to: 2, term: Number.MAX_SAFE_INTEGER, commit: 0, readSeq: 0 };
    assert.throws(() => decodeMessage(encodeMessage(heartbeat)), /term or index out of range/);
    assert.equal(decodeMessage(encodeMessage({ ...heartbeat, term: MAX_LOG_POSITION })).term, MAX_LOG_POSITION);
  });

  it("rejects a huge entry count without allocating for it", () => {
    // type app, from 1, to 2, term 1, index 0, logTerm 0, commit 0, count 2^40
    const b = Uint8Array.from([1, 1, 2, 1, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    assert.throws(() => decodeMessage(b), /count exceeds input/);
  });

  it("round-trips conf changes and rejects unknown types", () => {
    for (const type of ["addNode", "addLearner", "removeNode"] as const) {
      const cc = { type, nodeId: 0x1234567890, context: Uint8Array.from([1, 2, 3]) };
      assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
    }
    assert.throws(() => decodeConfChange(Uint8Array.from([7, 1, 0])), /unknown conf change type/);
  });
});
