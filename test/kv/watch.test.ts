import assert from 'node:assert/strict';
import { WatchCompactedError } from '../../node-runtime/kv/errors';
import type { Event } from '../../node-runtime/kv/types';
import type { WatchOptions } from '../../node-runtime/kv/watch';
import { Harness, b } from './helpers';
import { IntervalIndex } from '../../node-runtime/kv/interval-index';
import fc from 'fast-check';

/** Records every delivery as "rev: TYPE key=value[ prev=value]" lines, one array per call. */
function record(h: Harness, opts: WatchOptions): { calls: string[][]; cancel: () => void } {
  const calls: string[][] = [];
  const fmt = (e: Event): string =>
    `${e.kv.mod_revision}:${e.type}:${e.kv.key}=${e.kv.value}` + (e.prev_kv ? ` prev=${e.prev_kv.value}` : '');
  const handle = h.store.watch(opts, (events) => calls.push(events.map(fmt)));
  // History is pulled by the consumer; these tests take it all at once.
  while (!handle.synced) handle.catchUp(1000, Infinity);
  return { calls, cancel: () => handle.cancel() };
}

describe('kv watch', () => {
  it('delivers new events of a key, a range and a prefix; each revision in one call, in write order', () => {
    const h = new Harness();
    const one = record(h, { key: b('a') });
    const prefix = record(h, { key: b('a'), range_end: b('b') });
    const from = record(h, { key: b('b'), range_end: b('\0') });
    h.put('a', '1');
    h.ok({
      type: 'txn',
      req: { success: [{ request_put: { key: b('ab'), value: b('2') } }, { request_put: { key: b('c'), value: b('3') } }, { request_delete_range: { key: b('a') } }] },
    });
    assert.deepEqual(one.calls, [['2:PUT:a=1'], ['3:DELETE:a=']]);
    assert.deepEqual(prefix.calls, [['2:PUT:a=1'], ['3:PUT:ab=2', '3:DELETE:a=']]);
    assert.deepEqual(from.calls, [['3:PUT:c=3']]);
  });

  it('includes prev_kv on request and honours NOPUT / NODELETE filters', () => {
    const h = new Harness();
    const prev = record(h, { key: b('k'), prev_kv: true });
    const noPut = record(h, { key: b('k'), filters: ['NOPUT'] });
    const noDel = record(h, { key: b('k'), filters: ['NODELETE'] });
    h.put('k', '1');
    h.put('k', '2');
    h.del('k');
    assert.deepEqual(prev.calls, [['2:PUT:k=1'], ['3:PUT:k=2 prev=1'], ['4:DELETE:k= prev=2']]);
    assert.deepEqual(noPut.calls, [['4:DELETE:k=']]);
    assert.deepEqual(noDel.calls, [['2:PUT:k=1'], ['3:PUT:k=2']]);
  });

  it('replays history from start_revision before live events, with prev_kv', () => {
    const h = new Harness();
    h.put('k', '1'); // 2
    h.put('other', 'x'); // 3
    h.put('k', '2'); // 4
    const w = record(h, { key: b('k'), start_revision: 3, prev_kv: true });
    assert.deepEqual(w.calls, [['4:PUT:k=2 prev=1']]);
    h.put('k', '3');
    assert.deepEqual(w.calls[1], ['5:PUT:k=3 prev=2']);
    const future = record(h, { key: b('k'), start_revision: 7 });
    h.put('k', '4'); // 6: before the start
    h.put('k', '5'); // 7
    assert.deepEqual(future.calls, [['7:PUT:k=5']]);
  });

  it('never splits a revision across replay batches', () => {
    const h = new Harness();
    const ops = Array.from({ length: 120 }, (_, i) => ({ request_put: { key: b(`k${String(i).padStart(3, '0')}`), value: b('v') } }));
    for (let r = 0; r < 12; r++) h.ok({ type: 'txn', req: { success: ops } });
    const w = record(h, { key: b('k'), range_end: b('l'), start_revision: 2 });
    assert.ok(w.calls.length > 1, 'history came in several batches');
    const revsPerCall = w.calls.map((c) => new Set(c.map((e) => e.split(':')[0])));
    const seen = new Set<string>();
    for (const revs of revsPerCall) for (const r of revs) {
      assert.ok(!seen.has(r), `revision ${r} split across calls`);
      seen.add(r);
    }
    assert.equal(w.calls.flat().length, 1440);
  });

  it('refuses a start revision below the compact revision, reporting it', () => {
    const h = new Harness();
    h.put('k', '1');
    h.put('k', '2');
    h.put('k', '3'); // 4
    h.ok({ type: 'compact', req: { revision: 3 } });
    assert.throws(
      () => h.store.watch({ key: b('k'), start_revision: 2 }, () => undefined),
      (e: unknown) => e instanceof WatchCompactedError && e.compact_revision === 3,
    );
    const ok = record(h, { key: b('k'), start_revision: 3 });
    assert.deepEqual(ok.calls, [['3:PUT:k=2', '4:PUT:k=3']]);
  });

  it('stops after cancel', () => {
    const h = new Harness();
    const w = record(h, { key: b('k') });
    h.put('k', '1');
    w.cancel();
    h.put('k', '2');
    assert.equal(w.calls.length, 1);
    assert.equal(h.store.watcherCount, 0);
  });

  it('a throwing listener does not break apply or other watchers', async () => {
    const h = new Harness();
    const seen: Error[] = [];
    const onErr = (e: Error): void => void seen.push(e);
    // Mocha fails the test on any uncaught exception; take its handlers out for this one.
    const saved = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onErr);
    try {
      h.store.watch({ key: b('k') }, () => {
        throw new Error('listener bug');
      });
      const other = record(h, { key: b('k') });
      h.put('k', '1');
      assert.equal(h.store.revision, 2);
      assert.equal(other.calls.length, 1);
      await new Promise((r) => setImmediate(r));
      assert.equal(seen[0]?.message, 'listener bug');
    } finally {
      process.removeListener('uncaughtException', onErr);
      for (const l of saved) process.on('uncaughtException', l);
    }
  });

  it('a listener that refuses moves its watcher aside; catchUp later delivers what it missed, then live events', () => {
    const h = new Harness();
    const calls: string[][] = [];
    let accept = true;
    const handle = h.store.watch({ key: b('k'), range_end: b('l') }, (events) => {
      if (!accept) return false;
      calls.push(events.map((e) => `${e.kv.mod_revision}:${e.kv.key}=${e.kv.value}`));
      return true;
    });
    h.put('k1', 'a'); // 2
    accept = false;
    h.put('k2', 'b'); // 3: refused
    assert.equal(handle.synced, false);
    assert.equal(h.store.unsyncedWatcherCount, 1);
    h.put('k3', 'c'); // 4: not even offered (unsynced)
    accept = true;
    assert.deepEqual(handle.catchUp(1000, Infinity), { state: 'synced' });
    h.put('k4', 'd'); // 5
    assert.deepEqual(calls, [['2:k1=a'], ['3:k2=b', '4:k3=c'], ['5:k4=d']]);
  });

  it('catch-up comes in bounded batches: a budget of events, of bytes and of records examined', () => {
    const h = new Harness();
    for (let i = 0; i < 50; i++) h.put(`k${i}`, 'x'.repeat(1000));
    for (let i = 0; i < 5000; i++) h.put(`other${i}`, 'y');
    h.put('k-last', 'z');
    const sizes: number[] = [];
    const handle = h.store.watch({ key: b('k'), range_end: b('l'), start_revision: 1 }, (events) => void sizes.push(events.length));
    let steps = 0;
    while (!handle.synced) {
      handle.catchUp(10, 4000);
      steps++;
    }
    // 4000 bytes hold at most 4 events of ~1 KiB; 5000 unrelated records take several steps to skip.
    assert.ok(sizes.every((n) => n <= 4), `batch sizes ${sizes.join(',')}`);
    assert.equal(sizes.reduce((a, n) => a + n, 0), 51);
    assert.ok(steps > 5000 / 160, `only ${steps} steps`);
  });

  it('a watcher behind a compaction is cancelled with the compact revision', () => {
    const h = new Harness();
    h.put('k', '1'); // 2
    const handle = h.store.watch({ key: b('k'), start_revision: 2 }, () => undefined);
    h.put('k', '2'); // 3
    h.put('k', '3'); // 4
    h.ok({ type: 'compact', req: { revision: 4 } });
    assert.deepEqual(handle.catchUp(1000, Infinity), { state: 'compacted', compactRevision: 4 });
    assert.equal(h.store.watcherCount, 0);
  });

  it('range watchers are found through the interval index exactly as a scan would find them', () => {
    const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '\0'), maxLength: 3 });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, fc.option(key, { nil: null }), fc.boolean()), { maxLength: 40 }),
        fc.array(key, { maxLength: 20 }),
        (intervals, probes) => {
          const idx = new IntervalIndex<number>();
          const live: Array<[string, string | null, number]> = [];
          intervals.forEach(([begin, end, keep], i) => {
            idx.add(begin, end, i);
            live.push([begin, end, i]);
            if (!keep) {
              assert.equal(idx.delete(begin, end, i), true);
              live.pop();
            }
          });
          assert.equal(idx.size, live.length);
          for (const k of probes) {
            const got: number[] = [];
            idx.stab(k, (v) => void got.push(v));
            const want = live.filter(([bg, e]) => k >= bg && (e === null || k < e)).map(([, , v]) => v);
            assert.deepEqual(got.sort((x, y) => x - y), want.sort((x, y) => x - y));
          }
        },
      ),
    );
  });
});

describe('kv watch across a replaced state (snapshot install)', () => {
  /** Two stores that agree up to `common` writes; the leader then goes on alone. */
  function diverged(extra: (leader: Harness) => void): { follower: Harness; leader: Harness } {
    const follower = new Harness();
    const leader = new Harness();
    for (const h of [follower, leader]) for (let i = 0; i < 3; i++) h.put(`k${i}`, `old${i}`);
    extra(leader);
    return { follower, leader };
  }

  it('keeps its watchers: each catches up from where it was, then hears new writes', () => {
    const { follower, leader } = diverged((l) => {
      l.put('k1', 'new1');
      l.put('other', 'x');
      l.put('k2', 'new2');
    });
    const calls: string[][] = [];
    let woken = 0;
    const handle = follower.store.watch({ key: b('k'), range_end: b('l') }, (events) => calls.push(events.map((e) => `${e.kv.mod_revision}:${e.kv.key}=${e.kv.value}`)), () => woken++);
    assert.ok(handle.synced);
    follower.store.replaceState(leader.store.snapshot());
    assert.equal(woken, 1, 'the watcher was not told to catch up');
    assert.equal(handle.synced, false);
    while (!handle.synced) handle.catchUp(1000, Infinity);
    assert.deepEqual(calls, [['5:k1=new1', '7:k2=new2']]);
    follower.index = leader.index;
    follower.put('k0', 'after');
    assert.deepEqual(calls.at(-1), ['8:k0=after']);
  });

  it('cancels a watcher whose missed history the new state compacted away, as etcd does', () => {
    const { follower, leader } = diverged((l) => {
      l.put('k1', 'new1');
      l.put('k1', 'newer1');
      l.ok({ type: 'compact', req: { revision: 6 } });
    });
    const handle = follower.store.watch({ key: b('k1') }, () => undefined, () => undefined);
    follower.store.replaceState(leader.store.snapshot());
    assert.deepEqual(handle.catchUp(1000, Infinity), { state: 'compacted', compactRevision: 6 });
    assert.equal(follower.store.watcherCount, 0);
  });
});
