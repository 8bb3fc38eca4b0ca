import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KvStore } from '../../node-runtime/kv/store';
import { KvError, MSG } from '../../node-runtime/kv/errors';
import type { Compare, RequestOp, TxnRequest } from '../../node-runtime/kv/types';
import { b } from './helpers';

/**
 * The MVCC store against a model that keeps a full copy of the key space for every revision
 * (a plain Map per revision): writes, txns, compactions and reads at any revision must agree.
 */

interface MKv {
  value: string;
  create: number;
  mod: number;
  version: number;
}
type MState = Map<string, MKv>;

class Model {
  rev = 1;
  compact = 0;
  states = new Map<number, MState>([[1, new Map()]]);

  cur(): MState {
    return this.states.get(this.rev) as MState;
  }

  inSpan(k: string, key: string, end: string | undefined): boolean {
    if (end === undefined) return k === key;
    if (end === '\0') return k >= key;
    return k >= key && k < end;
  }

  /** Applies writes to a working copy; commits a revision only if something changed. */
  write(fn: (st: MState, rev: number) => boolean): void {
    const next = new Map(this.cur());
    if (fn(next, this.rev + 1)) {
      this.rev++;
      this.states.set(this.rev, next);
    }
  }

  put(st: MState, rev: number, k: string, v: string): true {
    const old = st.get(k);
    st.set(k, { value: v, create: old ? old.create : rev, mod: rev, version: old ? old.version + 1 : 1 });
    return true;
  }

  del(st: MState, key: string, end: string | undefined): boolean {
    let changed = false;
    for (const k of [...st.keys()]) {
      if (this.inSpan(k, key, end)) {
        st.delete(k);
        changed = true;
      }
    }
    return changed;
  }

  compareOk(st: MState, c: Compare): boolean {
    const kv = st.get(c.key.toString('latin1'));
    if (c.target === 'VERSION') {
      const v = kv ? kv.version : 0;
      return c.result === 'EQUAL' ? v === c.version : c.result === 'GREATER' ? v > (c.version ?? 0) : v < (c.version ?? 0);
    }
    if (!kv) return false;
    return kv.value === (c.value ?? b('')).toString('latin1');
  }

  range(key: string, end: string | undefined, rev: number): [string, MKv][] | string {
    if (rev > this.rev) return MSG.futureRev;
    const at = rev <= 0 ? this.rev : rev;
    if (at < this.compact) return MSG.compacted;
    const st = this.states.get(at) as MState;
    return [...st.entries()].filter(([k]) => this.inSpan(k, key, end)).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  }
}

const KEYS = ['a', 'a\xff', 'ab', 'abc', 'b', 'b\x00', 'c'];
const key = fc.constantFrom(...KEYS);
const end = fc.option(fc.constantFrom('\0', 'ab', 'b', 'c', 'd', 'a\xff\xff'), { nil: undefined });
const value = fc.string({ maxLength: 3 });

type Op =
  | { t: 'put'; k: string; v: string }
  | { t: 'del'; k: string; e: string | undefined }
  | { t: 'txn'; ck: string; target: 'VERSION' | 'VALUE'; result: 'EQUAL' | 'GREATER' | 'LESS'; n: number; cv: string; thenPut: [string, string]; thenDel: string; elsePut: [string, string] }
  | { t: 'compact'; back: number }
  | { t: 'range'; k: string; e: string | undefined; back: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('put' as const), k: key, v: value }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: key, e: end }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      ck: key,
      target: fc.constantFrom('VERSION' as const, 'VALUE' as const),
      result: fc.constantFrom('EQUAL' as const, 'GREATER' as const, 'LESS' as const),
      n: fc.integer({ min: 0, max: 3 }),
      cv: value,
      thenPut: fc.tuple(key, value),
      thenDel: key,
      elsePut: fc.tuple(key, value),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('range' as const), k: key, e: end, back: fc.integer({ min: -1, max: 8 }) }) },
);

function checkRange(store: KvStore, model: Model, k: string, e: string | undefined, rev: number): void {
  const want = model.range(k, e, rev);
  let got;
  try {
    got = store.range({ key: b(k), range_end: e === undefined ? undefined : b(e), revision: rev });
  } catch (err) {
    assert.ok(err instanceof KvError);
    assert.equal(err.message, want);
    return;
  }
  assert.notEqual(typeof want, 'string', `expected error ${String(want)}`);
  const rows = want as [string, MKv][];
  assert.equal(got.count, rows.length);
  assert.equal(got.header.revision, model.rev);
  assert.deepEqual(
    got.kvs.map((kv) => [kv.key.toString('latin1'), { value: kv.value.toString('latin1'), create: kv.create_revision, mod: kv.mod_revision, version: kv.version }]),
    rows,
  );
}

describe('kv MVCC against a model', () => {
  it('agrees on random sequences of put/delete/txn/compact/range-at-revision, and survives snapshot/restore', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let store = new KvStore();
        const model = new Model();
        let index = 0;
        for (const o of ops) {
          switch (o.t) {
            case 'put': {
              const r = store.apply(++index, { type: 'put', req: { key: b(o.k), value: b(o.v) } });
              model.write((st, rev) => model.put(st, rev, o.k, o.v));
              assert.equal(r.kind, 'ok');
              break;
            }
            case 'del': {
              const r = store.apply(++index, { type: 'deleteRange', req: { key: b(o.k), range_end: o.e === undefined ? undefined : b(o.e) } });
              model.write((st) => model.del(st, o.k, o.e));
              assert.equal(r.kind === 'ok' && r.response.header.revision, model.rev);
              break;
            }
            case 'txn': {
              // Distinct keys per branch, as validation would demand.
              const thenOps: RequestOp[] = [{ request_put: { key: b(o.thenPut[0]), value: b(o.thenPut[1]) } }];
              if (o.thenDel !== o.thenPut[0]) thenOps.push({ request_delete_range: { key: b(o.thenDel) } });
              const cmp: Compare =
                o.target === 'VERSION'
                  ? { key: b(o.ck), target: 'VERSION', result: o.result, version: o.n }
                  : { key: b(o.ck), target: 'VALUE', result: 'EQUAL', value: b(o.cv) };
              const req: TxnRequest = { compare: [cmp], success: thenOps, failure: [{ request_put: { key: b(o.elsePut[0]), value: b(o.elsePut[1]) } }] };
              const r = store.apply(++index, { type: 'txn', req });
              const ok = model.compareOk(model.cur(), cmp);
              model.write((st, rev) => {
                if (!ok) return model.put(st, rev, o.elsePut[0], o.elsePut[1]);
                model.put(st, rev, o.thenPut[0], o.thenPut[1]);
                if (o.thenDel !== o.thenPut[0]) model.del(st, o.thenDel, undefined);
                return true;
              });
              assert.ok(r.kind === 'ok');
              assert.equal(r.response.succeeded, ok);
              assert.equal(r.response.header.revision, model.rev);
              break;
            }
            case 'compact': {
              const rev = Math.max(1, model.rev - o.back);
              const r = store.apply(++index, { type: 'compact', req: { revision: rev } });
              if (rev <= model.compact) {
                assert.ok(r.kind === 'error' && r.error.message === MSG.compacted);
              } else {
                assert.equal(r.kind, 'ok');
                model.compact = rev;
              }
              break;
            }
            case 'range': {
              checkRange(store, model, o.k, o.e, o.back < 0 ? model.rev + 1 : Math.max(0, model.rev - o.back));
              break;
            }
          }
          assert.equal(store.revision, model.rev);
        }
        const restored = KvStore.restore(store.snapshot());
        assert.equal(restored.hash(), store.hash());
        assert.equal(restored.appliedIndex, index);
        store = restored;
        for (let rev = model.compact; rev <= model.rev; rev++) checkRange(store, model, '\0', '\0', rev);
        // The restored store keeps going exactly like the model.
        store.apply(++index, { type: 'put', req: { key: b('a'), value: b('z') } });
        model.write((st, rev) => model.put(st, rev, 'a', 'z'));
        checkRange(store, model, '\0', '\0', 0);
      }),
      { numRuns: 300 },
    );
  });
});
