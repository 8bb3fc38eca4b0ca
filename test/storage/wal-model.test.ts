/**
 * Random sequences of appends, suffix rewrites, snapshot markers, releases and reopens,
 * with tiny segments so rotation and release happen constantly; after every reopen the
 * recovered state must equal the naive model's.
 */
import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { WriteAheadLog, type WalRecovered } from "../../node-runtime/storage";
import { payloadFor } from "./support/payload";
import { entries } from "./support/wal-helpers";
import { applyOp, describe as describeState, EMPTY_MODEL, sameState, termAt, type ModelState } from "./support/wal-model";

const step = fc.record({ kind: fc.nat(99), a: fc.nat(1000), b: fc.nat(1000) });

function recoveredModel(r: WalRecovered): ModelState {
  return {
    hardState: r.hardState,
    marker: r.snapshot && { index: r.snapshot.index, term: r.snapshot.term },
    log: r.entries.map((e) => ({ index: e.index, term: e.term })),
    last: r.entries.length ? r.entries[r.entries.length - 1].index : (r.snapshot?.index ?? 0),
  };
}

describe("WAL against a model (property)", function () {
  this.timeout(60_000);

  it("recovers exactly the modelled state after any sequence of operations and reopens", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), fc.integer({ min: 300, max: 3000 }), async (steps, segmentBytes) => {
        const dir = await mkdtemp(join(tmpdir(), "raftkv-wal-model-"));
        const opts = { segmentBytes, logger: (m: string) => assert.fail(`unexpected log: ${m}`) };
        let { wal } = await WriteAheadLog.open(dir, opts);
        let s: ModelState = EMPTY_MODEL;
        let term = 1;
        let id = 0;
        const check = async (): Promise<void> => {
          await wal.close();
          const r = await WriteAheadLog.open(dir, opts);
          wal = r.wal;
          const got = recoveredModel(r.recovered);
          assert.ok(sameState(got, s), `recovered ${describeState(got)}, model ${describeState(s)}`);
          for (const e of r.recovered.entries) assert.deepEqual(e.data, payloadFor(e.index, e.term));
        };
        try {
          for (const { kind, a, b } of steps) {
            const floor = (s.marker?.index ?? 0) + 1;
            const pending: Promise<void>[] = [];
            if (kind < 50 || s.last < floor) {
              const es = entries(s.last + 1, 1 + (a % 6), term);
              const hs = b % 2 ? { term, vote: b % 4, commit: s.last } : undefined;
              const op = { op: "save" as const, id: id++, hs, entries: es.map((e) => ({ index: e.index, term: e.term })) };
              s = applyOp(s, op);
              pending.push(wal.save(hs, es));
            } else if (kind < 70) {
              term++;
              const es = entries(floor + (a % (s.last - floor + 1)), 1 + (b % 4), term);
              const op = { op: "save" as const, id: id++, entries: es.map((e) => ({ index: e.index, term: e.term })) };
              s = applyOp(s, op);
              pending.push(wal.save(undefined, es));
            } else if (kind < 82) {
              const index = floor - 1 + (a % (s.last - floor + 2));
              const t = b % 5 ? (termAt(s, index) ?? term) : term + 1;
              s = applyOp(s, { op: "mark", id: id++, index, term: t });
              pending.push(wal.markSnapshot({ index, term: t, confState: { voters: [1], learners: [] } }));
              if (b % 3) pending.push(wal.releaseTo(index));
            } else if (kind < 86) {
              term++;
              const index = s.last + 1 + (a % 4);
              s = applyOp(s, { op: "mark", id: id++, index, term });
              pending.push(wal.markSnapshot({ index, term, confState: { voters: [1], learners: [] } }));
            } else {
              await check();
            }
            // Most steps are not awaited one by one, so queued calls coalesce as in a server.
            if (kind % 3 === 0) await Promise.all(pending);
            else void Promise.all(pending).catch(() => undefined);
          }
          await check();
        } finally {
          await wal.close().catch(() => undefined);
          await rm(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });
});
