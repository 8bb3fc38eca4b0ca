import assert from 'node:assert/strict';
import { KvStore } from '../../node-runtime/kv/store';
import { MSG } from '../../node-runtime/kv/errors';
import { Harness, b, keys, thrown, values } from './helpers';

describe('kv revisions (etcd semantics)', () => {
  it('starts at revision 1 and adds one per write; deleting nothing does not count', () => {
    const h = new Harness();
    assert.equal(h.store.revision, 1);
    assert.equal(h.put('a', '1'), 2);
    assert.equal(h.put('a', '1'), 3, 'a put of the same value is still a write');
    assert.equal(h.del('zz'), 0);
    assert.equal(h.store.revision, 3);
    assert.equal(h.del('a'), 1);
    assert.equal(h.store.revision, 4);
  });

  it('tracks create/mod revision and version, and resets them after a delete', () => {
    const h = new Harness();
    h.put('k', 'v1');
    h.put('k', 'v2');
    let [kv] = h.get('k');
    assert.deepEqual([kv.create_revision, kv.mod_revision, kv.version], [2, 3, 2]);
    h.del('k');
    h.put('k', 'v3');
    [kv] = h.get('k');
    assert.deepEqual([kv.create_revision, kv.mod_revision, kv.version], [5, 5, 1]);
  });

  it('reads history at a past revision and refuses compacted and future revisions', () => {
    const h = new Harness();
    h.put('k', 'v1'); // 2
    h.put('k', 'v2'); // 3
    h.del('k'); // 4
    assert.deepEqual(values(h.store.range({ key: b('k'), revision: 2 }).kvs), ['v1']);
    assert.deepEqual(values(h.store.range({ key: b('k'), revision: 3 }).kvs), ['v2']);
    assert.deepEqual(h.store.range({ key: b('k'), revision: 4 }).kvs, []);
    assert.equal(h.store.range({ key: b('k'), revision: 2 }).header.revision, 4, 'the header carries the current revision');
    const fut = thrown(() => h.store.range({ key: b('k'), revision: 5 }));
    assert.deepEqual([fut.code, fut.message], ['OUT_OF_RANGE', MSG.futureRev]);
    h.ok({ type: 'compact', req: { revision: 3 } });
    assert.deepEqual(values(h.store.range({ key: b('k'), revision: 3 }).kvs), ['v2'], 'the compact revision itself stays readable');
    const old = thrown(() => h.store.range({ key: b('k'), revision: 2 }));
    assert.deepEqual([old.code, old.message], ['OUT_OF_RANGE', MSG.compacted]);
  });

  it('compaction keeps the newest version at or below the compact revision and drops deleted keys', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    h.put('a', '2'); // 3
    h.put('b', '1'); // 4
    h.del('b'); // 5
    h.put('a', '3'); // 6
    h.ok({ type: 'compact', req: { revision: 5 } });
    assert.equal(h.store.keyCount, 1, 'b is gone from the index');
    assert.deepEqual(values(h.store.range({ key: b('a'), revision: 5 }).kvs), ['2']);
    assert.deepEqual(values(h.get('a')), ['3']);
    assert.equal(h.err({ type: 'compact', req: { revision: 5 } }).message, MSG.compacted);
    assert.equal(h.err({ type: 'compact', req: { revision: 7 } }).message, MSG.futureRev);
  });
});

describe('kv range options', () => {
  const h = new Harness();
  before(() => {
    h.put('foo', 'z'); // 2
    h.put('foo1', 'y'); // 3
    h.put('foo2', 'x'); // 4
    h.put('fop', 'w'); // 5
    h.put('foo1', 'v'); // 6: version 2
    h.put('a', 'u'); // 7
  });

  it('selects a key, a prefix, from-key and everything by range_end conventions', () => {
    assert.deepEqual(keys(h.get('foo')), ['foo']);
    assert.deepEqual(keys(h.get('foo', 'fop')), ['foo', 'foo1', 'foo2'], 'prefix: range_end = prefix with last byte + 1');
    assert.deepEqual(keys(h.get('foo1', '\0')), ['foo1', 'foo2', 'fop']);
    assert.deepEqual(keys(h.get('\0', '\0')), ['a', 'foo', 'foo1', 'foo2', 'fop']);
    assert.deepEqual(keys(h.get('z', 'a')), [], 'an end before the key selects nothing');
  });

  it('limits with more and the full count', () => {
    const r = h.store.range({ key: b('\0'), range_end: b('\0'), limit: 2 });
    assert.deepEqual(keys(r.kvs), ['a', 'foo']);
    assert.equal(r.more, true);
    assert.equal(r.count, 5);
    const all = h.store.range({ key: b('\0'), range_end: b('\0'), limit: 5 });
    assert.equal(all.more, false);
  });

  it('sorts by every target in both orders, ascending by default when the target is not the key', () => {
    const q = { key: b('\0'), range_end: b('\0') };
    assert.deepEqual(keys(h.store.range({ ...q, sort_order: 'DESCEND' }).kvs), ['fop', 'foo2', 'foo1', 'foo', 'a']);
    assert.deepEqual(values(h.store.range({ ...q, sort_target: 'VALUE' }).kvs), ['u', 'v', 'w', 'x', 'z']);
    assert.deepEqual(keys(h.store.range({ ...q, sort_target: 'MOD', sort_order: 'DESCEND' }).kvs), ['a', 'foo1', 'fop', 'foo2', 'foo']);
    assert.deepEqual(keys(h.store.range({ ...q, sort_target: 'CREATE', sort_order: 'ASCEND', limit: 2 }).kvs), ['foo', 'foo1']);
    assert.equal(keys(h.store.range({ ...q, sort_target: 'VERSION', sort_order: 'DESCEND' }).kvs)[0], 'foo1');
  });

  it('answers keys_only without values and count_only without kvs', () => {
    const r = h.store.range({ key: b('foo'), range_end: b('fop'), keys_only: true });
    assert.deepEqual(keys(r.kvs), ['foo', 'foo1', 'foo2']);
    assert.ok(r.kvs.every((kv) => kv.value.length === 0));
    const c = h.store.range({ key: b('foo'), range_end: b('fop'), count_only: true });
    assert.deepEqual([c.kvs.length, c.count], [0, 3]);
  });

  it('filters by min/max mod and create revision (count stays the unfiltered total, as in etcd)', () => {
    const q = { key: b('\0'), range_end: b('\0') };
    assert.deepEqual(keys(h.store.range({ ...q, min_mod_revision: 5 }).kvs), ['a', 'foo1', 'fop']);
    assert.deepEqual(keys(h.store.range({ ...q, max_mod_revision: 4 }).kvs), ['foo', 'foo2']);
    assert.deepEqual(keys(h.store.range({ ...q, min_create_revision: 3, max_create_revision: 4 }).kvs), ['foo1', 'foo2']);
    assert.equal(h.store.range({ ...q, min_create_revision: 3, max_create_revision: 4 }).count, 5);
  });
});

describe('kv put and delete options', () => {
  it('returns prev_kv, keeps value or lease with ignore_value / ignore_lease', () => {
    const h = new Harness();
    const lease = h.ok({ type: 'leaseGrant', req: { ID: '7', TTL: 60 } }).ID;
    h.put('k', 'v1', lease);
    const r = h.ok({ type: 'put', req: { key: b('k'), value: b('v2'), prev_kv: true, ignore_lease: true } });
    assert.equal(r.prev_kv?.value.toString(), 'v1');
    assert.equal(h.get('k')[0].lease, '7');
    h.ok({ type: 'put', req: { key: b('k'), ignore_value: true } });
    assert.deepEqual(values(h.get('k')), ['v2']);
    assert.equal(h.get('k')[0].lease, '0', 'a put without ignore_lease detaches the lease');
    const missing = h.err({ type: 'put', req: { key: b('nope'), ignore_value: true } });
    assert.deepEqual([missing.code, missing.message], ['INVALID_ARGUMENT', MSG.keyNotFound]);
  });

  it('refuses a put with an unknown lease', () => {
    const h = new Harness();
    const e = h.err({ type: 'put', req: { key: b('k'), value: b('v'), lease: '99' } });
    assert.deepEqual([e.code, e.message], ['NOT_FOUND', MSG.leaseNotFound]);
    assert.equal(h.store.revision, 1);
  });

  it('deletes a range with prev_kvs in one revision', () => {
    const h = new Harness();
    h.put('a1', 'x');
    h.put('a2', 'y');
    h.put('b', 'z');
    const r = h.ok({ type: 'deleteRange', req: { key: b('a'), range_end: b('b'), prev_kv: true } });
    assert.equal(r.deleted, 2);
    assert.deepEqual(values(r.prev_kvs), ['x', 'y']);
    assert.equal(r.header.revision, 5);
  });
});

describe('kv txn', () => {
  it('evaluates compares on every target and takes the right branch', () => {
    const h = new Harness();
    const lease = h.ok({ type: 'leaseGrant', req: { ID: '5', TTL: 60 } }).ID;
    h.put('k', 'v', lease); // rev 2, version 1
    const check = (c: object): boolean =>
      h.ok({ type: 'txn', req: { compare: [{ key: b('k'), ...c } as never] } }).succeeded;
    assert.equal(check({ target: 'VALUE', result: 'EQUAL', value: b('v') }), true);
    assert.equal(check({ target: 'VALUE', result: 'GREATER', value: b('u') }), true);
    assert.equal(check({ target: 'VERSION', result: 'EQUAL', version: 1 }), true);
    assert.equal(check({ target: 'CREATE', result: 'LESS', create_revision: 3 }), true);
    assert.equal(check({ target: 'MOD', result: 'NOT_EQUAL', mod_revision: 2 }), false);
    assert.equal(check({ target: 'LEASE', result: 'EQUAL', lease: '5' }), true);
    const missing = (c: object): boolean =>
      h.ok({ type: 'txn', req: { compare: [{ key: b('missing'), ...c } as never] } }).succeeded;
    assert.equal(missing({ target: 'VERSION', result: 'EQUAL', version: 0 }), true, 'a missing key has version 0');
    assert.equal(missing({ target: 'VALUE', result: 'EQUAL', value: b('') }), false, 'value compares on missing keys fail');
    assert.equal(h.store.revision, 2, 'read-only txns do not advance the revision');
  });

  it('applies a branch atomically in one revision; reads inside see earlier writes', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    const r = h.ok({
      type: 'txn',
      req: {
        compare: [{ key: b('a'), target: 'VALUE', result: 'EQUAL', value: b('1') }],
        success: [
          { request_range: { key: b('a') } },
          { request_put: { key: b('b'), value: b('2') } },
          { request_range: { key: b('b') } },
          { request_delete_range: { key: b('a') } },
        ],
        failure: [{ request_put: { key: b('c'), value: b('3') } }],
      },
    });
    assert.equal(r.succeeded, true);
    assert.equal(r.header.revision, 3);
    assert.deepEqual(
      r.responses.map((x) => x.response),
      ['response_range', 'response_put', 'response_range', 'response_delete_range'],
    );
    assert.equal(r.responses[0].response_range?.header.revision, 2);
    assert.deepEqual(values(r.responses[2].response_range?.kvs ?? []), ['2']);
    assert.equal(r.responses[1].response_put?.header.revision, 3);
    assert.equal(r.responses[3].response_delete_range?.deleted, 1);
    assert.deepEqual(keys(h.get('\0', '\0')), ['b']);
  });

  it('evaluates nested compares against the state before the txn', () => {
    const h = new Harness();
    const r = h.ok({
      type: 'txn',
      req: {
        success: [
          { request_put: { key: b('x'), value: b('1') } },
          {
            request_txn: {
              compare: [{ key: b('x'), target: 'VERSION', result: 'EQUAL', version: 0 }],
              success: [{ request_put: { key: b('y'), value: b('then') } }],
              failure: [{ request_put: { key: b('y'), value: b('else') } }],
            },
          },
        ],
      },
    });
    assert.equal(r.responses[1].response_txn?.succeeded, true);
    assert.deepEqual(values(h.get('y')), ['then']);
    assert.equal(h.store.revision, 2, 'nested writes share the outer revision');
    const [y] = h.get('y');
    assert.equal(y.mod_revision, 2);
  });

  it('fails without effect when an op on the chosen path is invalid', () => {
    const h = new Harness();
    const e = h.err({
      type: 'txn',
      req: { success: [{ request_put: { key: b('a'), value: b('1') } }, { request_put: { key: b('b'), value: b('2'), lease: '42' } }] },
    });
    assert.equal(e.message, MSG.leaseNotFound);
    assert.deepEqual(h.get('a'), []);
    assert.equal(h.store.revision, 1);
    const fut = h.err({ type: 'txn', req: { success: [{ request_put: { key: b('a'), value: b('1') } }, { request_range: { key: b('a'), revision: 9 } }] } });
    assert.equal(fut.message, MSG.futureRev);
    assert.equal(h.store.revision, 1);
  });
});

describe('kv apply is idempotent and deterministic', () => {
  it('skips indexes at or below the applied index', () => {
    const h = new Harness();
    h.put('a', '1');
    assert.equal(h.store.appliedIndex, 1);
    assert.equal(h.store.apply(1, { type: 'put', req: { key: b('a'), value: b('2') } }).kind, 'skipped');
    assert.deepEqual(values(h.get('a')), ['1']);
    assert.equal(h.store.revision, 2);
  });

  it('counts failed commands and empty entries as applied', () => {
    const h = new Harness();
    h.err({ type: 'compact', req: { revision: 5 } });
    assert.equal(h.store.appliedIndex, 1);
    assert.equal(h.store.applyEntry(2, new Uint8Array(0)).kind, 'skipped');
    assert.equal(h.store.appliedIndex, 2);
  });

  it('replaying a log over a restored snapshot reaches the same state as applying it once', () => {
    const h = new Harness();
    const cmds = Array.from({ length: 20 }, (_, i) => ({ type: 'put' as const, req: { key: b(`k${i % 7}`), value: b(`v${i}`) } }));
    let snap: Buffer = Buffer.alloc(0);
    cmds.forEach((c, i) => {
      h.store.apply(i + 1, c);
      if (i === 9) snap = h.store.snapshot();
    });
    const r = KvStore.restore(snap);
    assert.equal(r.appliedIndex, 10);
    cmds.forEach((c, i) => r.apply(i + 1, c)); // the whole log again, from index 1
    assert.equal(r.hash(), h.store.hash());
    assert.equal(r.revision, h.store.revision);
    assert.equal(r.hashKV().hash, h.store.hashKV().hash);
  });

  it('a snapshot encoded in steps frees the event loop between them and holds the state of its start while writes, a compaction and other encodings go on', async () => {
    const h = new Harness();
    const big = 'v'.repeat(256 * 1024);
    for (let i = 0; i < 24; i++) h.put(`k${i % 9}`, `${i}${big}`);
    h.ok({ type: 'leaseGrant', req: { ID: '77', TTL: 100 } });
    h.put('leased', 'x', '77');
    h.del('k8');
    const expected = h.store.snapshot();
    const at = h.store.appliedIndex;
    let pauses = 0;
    const encoded = await h.store.snapshotAsync(async () => {
      pauses++;
      // Between two steps: new keys, overwrites, deletes, a compaction, and a full encoding of
      // the newer state (Maintenance Hash), as a member serving clients does meanwhile.
      h.put(`new${pauses}`, `n${pauses}`);
      h.put('k1', `over${pauses}`);
      if (pauses === 2) h.del('k2');
      if (pauses === 3) h.ok({ type: 'compact', req: { revision: h.store.revision - 2 } });
      h.store.hash();
      await new Promise<void>((resolve) => setImmediate(resolve));
    });
    assert.ok(pauses >= 12, `the 6 MiB store was encoded (and checksummed) in ${pauses + 1} steps`);
    assert.ok(encoded.equals(expected), 'the bytes of the state when the snapshot began');
    const r = KvStore.restore(encoded);
    assert.equal(r.appliedIndex, at);
    assert.equal(r.hash(), KvStore.restore(expected).hash());
    // With a prefix (the member's envelope) the same bytes follow it, in one buffer.
    const prefixed = await KvStore.restore(expected).snapshotAsync(() => new Promise<void>((resolve) => setImmediate(resolve)), Buffer.from('envelope'));
    assert.equal(prefixed.subarray(0, 8).toString(), 'envelope');
    assert.ok(prefixed.subarray(8).equals(expected));
  });

  it('Hash and HashKV computed in steps equal the one-pass digests of the state at their start while writes and a compaction go on', async () => {
    const h = new Harness();
    const big = 'v'.repeat(200 * 1024);
    for (let i = 0; i < 30; i++) h.put(`k${i % 11}`, `${i}${big}`);
    h.ok({ type: 'leaseGrant', req: { ID: '9223372036854775807', TTL: 100 } });
    h.put('leased', 'x', '9223372036854775807');
    h.del('k10');
    const rev = h.store.revision;
    const [hash, hashKV, hashKVOld] = [h.store.hash(), h.store.hashKV(), h.store.hashKV(rev - 5)];
    assert.equal(await h.store.hashAsync(() => new Promise<void>((resolve) => setImmediate(resolve))), hash, 'the same digest in steps');
    let pauses = 0;
    const moveOn = async () => {
      pauses++;
      h.put(`new${pauses}`, `n${pauses}`);
      h.put('k1', `over${pauses}`);
      if (pauses === 2) h.del('k2');
      if (pauses === 3) h.ok({ type: 'compact', req: { revision: h.store.revision - 1 } });
      await new Promise<void>((resolve) => setImmediate(resolve));
    };
    const kvAsync = await h.store.hashKVAsync(0, moveOn);
    assert.ok(pauses >= 4, `HashKV of the 6 MiB store took ${pauses + 1} steps`);
    assert.deepEqual(kvAsync, hashKV, 'hash, header revision and compact revision of the state at its start');
    assert.notEqual(h.store.hashKV().hash, hashKV.hash, 'the store did move on');
    const before = h.store.hash();
    const hashAsync = h.store.hashAsync(moveOn);
    h.put('k3', 'changed before the first step');
    assert.equal(await hashAsync, before);
    assert.notEqual(before, hash, 'the store had moved on');
    // At an older revision (still above the compaction made meanwhile).
    const h2 = new Harness();
    for (let i = 0; i < 30; i++) h2.put(`k${i % 11}`, `${i}${big}`);
    h2.ok({ type: 'leaseGrant', req: { ID: '9223372036854775807', TTL: 100 } });
    h2.put('leased', 'x', '9223372036854775807');
    h2.del('k10');
    assert.deepEqual(await h2.store.hashKVAsync(rev - 5, () => new Promise<void>((resolve) => setImmediate(resolve))), hashKVOld);
  });

  it('hashKV differs when the data differs', () => {
    const a = new Harness();
    const c = new Harness();
    a.put('k', '1');
    c.put('k', '2');
    assert.notEqual(a.store.hashKV().hash, c.store.hashKV().hash);
    assert.equal(a.store.hashKV(1).hash, c.store.hashKV(1).hash, 'equal below the first difference');
  });

  it('refuses a corrupted snapshot', () => {
    const h = new Harness();
    h.put('a', '1');
    const snap = h.store.snapshot();
    snap[snap.length - 6] ^= 0xff;
    assert.throws(() => KvStore.restore(snap), /checksum mismatch/);
  });
});
