import assert from 'node:assert/strict';
import { IntervalIndex } from '../../node-runtime/kv/interval-index';

describe('interval index', () => {
  it('is deterministic: never consults Math.random, and the same inserts build the same tree', () => {
    const saved = Math.random;
    Math.random = () => {
      throw new Error('Math.random called');
    };
    try {
      const build = (): IntervalIndex<number> => {
        const ix = new IntervalIndex<number>();
        for (let i = 0; i < 200; i++) ix.add(`k${String(i).padStart(3, '0')}`, i % 7 === 0 ? null : `k${String(i + 5).padStart(3, '0')}`, i);
        return ix;
      };
      const a = build();
      const b = build();
      // Same shape: the whole node structure (priorities included) is equal.
      assert.deepEqual(a, b);
      const hits: number[] = [];
      a.stab('k100', (v) => hits.push(v));
      assert.deepEqual(hits.sort((x, y) => x - y), [0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 96, 97, 98, 99, 100]);
    } finally {
      Math.random = saved;
    }
  });
});
