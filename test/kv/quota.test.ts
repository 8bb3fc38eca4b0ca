import assert from 'node:assert/strict';
import { MSG } from '../../node-runtime/kv/errors';
import { KvStore } from '../../node-runtime/kv/store';
import { Harness, b } from './helpers';
import type { KvCommand } from '../../node-runtime/kv/types';

describe('kv quota and the NOSPACE alarm', () => {
  const fill = (h: Harness): void => {
    for (let i = 0; h.apply({ type: 'put', req: { key: b(`k${i}`), value: Buffer.alloc(100) } }).kind === 'ok'; i++);
  };

  it('raises NOSPACE when a write would pass the quota and then blocks puts, txns with puts and grants', () => {
    const h = Harness.with({ quotaBytes: 2000 });
    fill(h);
    assert.ok(h.store.dbSize() <= 2000);
    assert.deepEqual(h.store.alarms(), [{ memberID: '0', alarm: 'NOSPACE' }]);
    const rev = h.store.revision;
    const small = h.err({ type: 'put', req: { key: b('x'), value: b('') } });
    assert.deepEqual([small.code, small.message], ['RESOURCE_EXHAUSTED', MSG.noSpace]);
    assert.equal(h.err({ type: 'txn', req: { failure: [{ request_put: { key: b('x') } }] } }).message, MSG.noSpace);
    assert.equal(h.err({ type: 'leaseGrant', req: { ID: '1', TTL: 10 } }).message, MSG.noSpace);
    assert.equal(h.store.revision, rev);
  });

  it('still allows reads, read-only txns, deletes and compaction; disarming lets writes in again', () => {
    const h = Harness.with({ quotaBytes: 2000 });
    fill(h);
    assert.equal(h.store.range({ key: b('k0') }).count, 1);
    assert.equal(h.ok({ type: 'txn', req: { success: [{ request_range: { key: b('k0') } }] } }).succeeded, true);
    assert.equal(h.del('k', 'l') > 0, true);
    h.ok({ type: 'compact', req: { revision: h.store.revision } });
    assert.ok(h.store.dbSize() < 200);
    assert.equal(h.err({ type: 'put', req: { key: b('x') } }).message, MSG.noSpace, 'the alarm stays until disarmed');
    const off = h.ok({ type: 'alarm', req: { action: 'DEACTIVATE', memberID: '0', alarm: 'NOSPACE' } });
    assert.deepEqual(off.alarms, [{ memberID: '0', alarm: 'NOSPACE' }]);
    assert.deepEqual(h.store.alarms(), []);
    h.put('x', 'y');
  });

  it('alarms are replicated state: activate, list and survive a snapshot', () => {
    const h = new Harness();
    h.ok({ type: 'alarm', req: { action: 'ACTIVATE', memberID: '42', alarm: 'CORRUPT' } });
    h.ok({ type: 'alarm', req: { action: 'ACTIVATE', memberID: '42', alarm: 'CORRUPT' } });
    assert.deepEqual(h.ok({ type: 'alarm', req: { action: 'GET', memberID: '0', alarm: 'NONE' } }).alarms, [{ memberID: '42', alarm: 'CORRUPT' }]);
    assert.deepEqual(KvStore.restore(h.store.snapshot()).alarms(), [{ memberID: '42', alarm: 'CORRUPT' }]);
  });

  it('counts history and leases in the size, and frees it on compaction', () => {
    const h = new Harness();
    const empty = h.store.dbSize();
    h.put('key', 'x'.repeat(1000));
    h.put('key', 'y'.repeat(1000));
    const two = h.store.dbSize();
    assert.ok(two - empty >= 2000);
    h.ok({ type: 'compact', req: { revision: 3 } });
    assert.ok(h.store.dbSize() < two - 900);
    const before = h.store.dbSize();
    h.ok({ type: 'leaseGrant', req: { ID: '1', TTL: 10 } });
    assert.ok(h.store.dbSize() > before);
  });

  it('a CORRUPT alarm refuses every write with DATA_LOSS until disarmed, reads still work (etcd 3.4 applierV3Corrupt)', () => {
    const h = new Harness();
    h.put('k', 'v');
    h.ok({ type: 'leaseGrant', req: { ID: '9', TTL: 10 } });
    h.ok({ type: 'alarm', req: { action: 'ACTIVATE', memberID: '7', alarm: 'CORRUPT' } });
    const rev = h.store.revision;
    for (const cmd of [
      { type: 'put', req: { key: b('x'), value: b('y') } },
      { type: 'deleteRange', req: { key: b('k') } },
      { type: 'txn', req: { success: [{ request_range: { key: b('k') } }] } },
      { type: 'compact', req: { revision: 1 } },
      { type: 'leaseGrant', req: { ID: '10', TTL: 10 } },
      { type: 'leaseRevoke', req: { ID: '9' } },
    ] satisfies KvCommand[]) {
      const e = h.err(cmd);
      assert.deepEqual([e.code, e.message], ['DATA_LOSS', MSG.corrupt], cmd.type);
    }
    assert.equal(h.store.revision, rev);
    assert.equal(h.store.range({ key: b('k') }).count, 1);
    h.ok({ type: 'alarm', req: { action: 'DEACTIVATE', memberID: '7', alarm: 'CORRUPT' } });
    h.put('x', 'y');
  });
});
