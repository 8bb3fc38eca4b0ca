import assert from 'node:assert/strict';
import { EXPIRED_RETRY_MS } from '../../node-runtime/kv/lessor';
import { KvStore } from '../../node-runtime/kv/store';
import { MSG } from '../../node-runtime/kv/errors';
import { Harness, b, keys } from './helpers';

describe('kv leases', () => {
  it('grants with a given or derived ID, raises short TTLs to the minimum, refuses duplicates and huge TTLs', () => {
    const h = new Harness();
    const g = h.ok({ type: 'leaseGrant', req: { ID: '100', TTL: 1 } });
    assert.deepEqual([g.ID, g.TTL], ['100', 2]);
    const dup = h.err({ type: 'leaseGrant', req: { ID: '100', TTL: 5 } });
    assert.deepEqual([dup.code, dup.message], ['FAILED_PRECONDITION', MSG.leaseExists]);
    const auto = h.ok({ type: 'leaseGrant', req: { ID: '0', TTL: 30 } });
    assert.notEqual(auto.ID, '0');
    assert.ok(BigInt(auto.ID) > 0n);
    assert.equal(h.err({ type: 'leaseGrant', req: { ID: '1', TTL: 9_000_000_001 } }).message, MSG.leaseTTLTooLarge);
    assert.deepEqual(h.store.leases().leases.map((l) => l.ID), ['100', auto.ID].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1)));
    assert.equal(h.store.revision, 1, 'grants do not advance the revision');
  });

  it('revoke deletes every attached key in one revision and forgets the lease', () => {
    const h = new Harness();
    h.ok({ type: 'leaseGrant', req: { ID: '9', TTL: 60 } });
    h.put('b', '1', '9');
    h.put('a', '1', '9');
    h.put('c', '1');
    h.put('d', '1', '9');
    h.put('d', '2'); // detached again
    const events: string[][] = [];
    h.store.watch({ key: b('\0'), range_end: b('\0') }, (evs, rev) => events.push(evs.map((e) => `${rev}:${e.type}:${e.kv.key}`)));
    const r = h.ok({ type: 'leaseRevoke', req: { ID: '9' } });
    assert.equal(r.header.revision, 7);
    assert.deepEqual(keys(h.get('\0', '\0')), ['c', 'd']);
    assert.deepEqual(events, [['7:DELETE:a', '7:DELETE:b']]);
    assert.deepEqual(h.store.leases().leases, []);
    const again = h.err({ type: 'leaseRevoke', req: { ID: '9' } });
    assert.deepEqual([again.code, again.message], ['NOT_FOUND', MSG.leaseNotFound]);
  });

  it('answers time-to-live with keys, and TTL -1 for an unknown lease', () => {
    const h = new Harness();
    h.ok({ type: 'leaseGrant', req: { ID: '3', TTL: 10 } });
    h.put('x', '1', '3');
    h.put('w', '1', '3');
    h.store.lessor.promote(1_000);
    const t = h.store.timeToLive('3', true, 4_500);
    // 6.5 s left: etcd reports whole seconds rounded down.
    assert.deepEqual([t.TTL, t.grantedTTL, t.keys.map(String)], [6, 10, ['w', 'x']]);
    assert.equal(h.store.timeToLive('3', false, 4_500).keys.length, 0);
    assert.equal(h.store.timeToLive('4', true, 0).TTL, -1);
  });

  it('expires only through the leader: expired() names leases, keys go only when the revoke is applied', () => {
    const h = new Harness();
    h.ok({ type: 'leaseGrant', req: { ID: '1', TTL: 5 } });
    h.ok({ type: 'leaseGrant', req: { ID: '2', TTL: 20 } });
    h.put('k', 'v', '1');
    assert.deepEqual(h.store.lessor.expired(1e12), [], 'a follower never expires anything');
    h.store.lessor.promote(0);
    assert.deepEqual(h.store.lessor.expired(4_999), []);
    assert.equal(h.store.lessor.renew('1', 3_000), 5);
    assert.deepEqual(h.store.lessor.expired(7_999), []);
    assert.deepEqual(h.store.lessor.expired(8_000), ['1']);
    assert.deepEqual(h.store.lessor.expired(8_001), [], 'not proposed again at once');
    assert.deepEqual(h.store.lessor.expired(8_000 + EXPIRED_RETRY_MS), ['1'], 'retried if the revoke did not apply');
    assert.equal(h.get('k').length, 1, 'expiry alone deletes nothing');
    h.ok({ type: 'leaseRevoke', req: { ID: '1' } });
    assert.equal(h.get('k').length, 0);
    assert.deepEqual(h.store.lessor.expired(20_000), ['2']);
  });

  it('a new leader gives every lease a fresh TTL; renew needs leadership and a known lease', () => {
    const h = new Harness();
    h.ok({ type: 'leaseGrant', req: { ID: '1', TTL: 5 } });
    assert.equal(assertThrows(() => h.store.lessor.renew('1', 0)), 'etcdserver: not leader');
    h.store.lessor.promote(0);
    h.store.lessor.demote();
    h.store.lessor.promote(100_000);
    assert.deepEqual(h.store.lessor.expired(104_999), []);
    assert.deepEqual(h.store.lessor.expired(105_000), ['1']);
    assert.equal(assertThrows(() => h.store.lessor.renew('77', 0)), MSG.leaseNotFound);
  });

  it('an expired lease is not renewed, and its retry mark is not its deadline (member simulator seed 143)', () => {
    const h = new Harness();
    h.ok({ type: 'leaseGrant', req: { ID: '1', TTL: EXPIRED_RETRY_MS / 1000 } });
    h.store.lessor.promote(0);
    const lease = h.store.lessor.get('1')!;
    const deadline = EXPIRED_RETRY_MS;
    assert.deepEqual(h.store.lessor.expired(deadline), ['1']);
    // A keep-alive at the same instant would have set the very deadline the retry mark used to
    // be, so the leader could not tell it happened and revoked a lease it had just renewed.
    assert.ok(h.store.lessor.isExpired(lease, deadline), 'expired until renewed');
    assert.equal(assertThrows(() => h.store.lessor.renew('1', deadline)), MSG.leaseNotFound, 'an expired lease is not renewed');
    assert.equal(h.store.timeToLive('1', false, deadline + 1).TTL, 0, 'and has no time left (not the retry mark)');
    assert.deepEqual(h.store.lessor.expired(deadline + EXPIRED_RETRY_MS - 1), [], 'not named again before the retry');
    assert.deepEqual(h.store.lessor.expired(deadline + EXPIRED_RETRY_MS), ['1']);
    // A new term's leader gives it a fresh deadline; renewed, it is not expired.
    h.store.lessor.demote();
    h.store.lessor.promote(10_000);
    assert.equal(h.store.lessor.renew('1', 10_500), EXPIRED_RETRY_MS / 1000);
    assert.ok(!h.store.lessor.isExpired(lease, 10_500 + EXPIRED_RETRY_MS - 1));
    assert.deepEqual(h.store.lessor.expired(10_500 + EXPIRED_RETRY_MS - 1), []);
  });

  it('a lease granted while leading gets its deadline at the next expiry check', () => {
    const h = new Harness();
    h.store.lessor.promote(0);
    h.ok({ type: 'leaseGrant', req: { ID: '1', TTL: 5 } });
    assert.deepEqual(h.store.lessor.expired(1_000), []);
    assert.deepEqual(h.store.lessor.expired(5_999), []);
    assert.deepEqual(h.store.lessor.expired(6_000), ['1']);
  });

  it('leases and their keys survive snapshot and restore', () => {
    const h = new Harness();
    h.ok({ type: 'leaseGrant', req: { ID: '8', TTL: 50 } });
    h.put('a', '1', '8');
    const r = KvStore.restore(h.store.snapshot());
    assert.deepEqual(r.timeToLive('8', true, 0).keys.map(String), ['a']);
    r.apply(100, { type: 'leaseRevoke', req: { ID: '8' } });
    assert.equal(r.range({ key: b('a') }).count, 0);
  });
});

function assertThrows(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('did not throw');
}
