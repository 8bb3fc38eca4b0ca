import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SortedIndex } from '../../node-runtime/kv/sorted-index';

describe('kv sorted key index', () => {
  it('matches a sorted array under random inserts, removals and scans (across chunk splits)', () => {
    const key = fc.integer({ min: 0, max: 5000 }).map((n) => String.fromCharCode(n % 256) + n.toString(36));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), key), { maxLength: 3000 }), fc.array(fc.tuple(key, fc.option(key)), { maxLength: 20 }), (ops, scans) => {
        const idx = new SortedIndex<{ key: string }>();
        const model = new Set<string>();
        for (const [add, k] of ops) {
          if (add && !model.has(k)) {
            idx.insert({ key: k });
            model.add(k);
          } else if (!add) {
            assert.equal(idx.remove(k), model.delete(k));
          }
        }
        const sorted = [...model].sort();
        assert.equal(idx.size, sorted.length);
        assert.deepEqual(idx.toArray().map((x) => x.key), sorted);
        for (const [from, to] of scans) {
          const got: string[] = [];
          idx.scan(from, to ?? undefined, (x) => void got.push(x.key));
          assert.deepEqual(got, sorted.filter((k) => k >= from && (to === null || k < to)));
        }
        const rebuilt = SortedIndex.fromSorted(sorted.map((key) => ({ key })));
        assert.deepEqual(rebuilt.toArray().map((x) => x.key), sorted);
      }),
      { numRuns: 60 },
    );
  });

  it('stops a scan when the callback returns false', () => {
    const idx = SortedIndex.fromSorted(['a', 'b', 'c'].map((key) => ({ key })));
    const got: string[] = [];
    idx.scan('', undefined, (x) => {
      got.push(x.key);
      return got.length < 2;
    });
    assert.deepEqual(got, ['a', 'b']);
  });
});
