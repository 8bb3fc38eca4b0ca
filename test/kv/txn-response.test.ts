/**
 * Txn responses (issue 15): a txn that only reads is answered like the same txn applied, without
 * an entry; a txn whose response would exceed gRPC's send limit is refused with grpc-go's message
 * (what etcd answers) before its key-values are copied, and a write txn so refused has no effect.
 */
import assert from 'node:assert/strict';
import { isReadOnlyTxn, isSerializableTxn, KvStore } from '../../node-runtime/kv/store';
import type { TxnRequest } from '../../node-runtime/kv/types';
import { MAX_RESPONSE_BYTES } from '../../node-runtime/kv/wire-size';
import { b, Harness, values } from './helpers';

const all = { request_range: { key: b('\0'), range_end: b('\0') } };

describe('kv txn responses', () => {
  it('tells read-only and serializable txns as etcd does', () => {
    assert.equal(isReadOnlyTxn({ success: [all], failure: [all] }), true);
    assert.equal(isReadOnlyTxn({}), true);
    assert.equal(isReadOnlyTxn({ success: [all], failure: [{ request_put: { key: b('k') } }] }), false, 'either branch');
    assert.equal(isReadOnlyTxn({ success: [{ request_txn: { success: [all] } }] }), false, 'a nested txn counts as a write');
    assert.equal(isSerializableTxn({ success: [{ request_range: { key: b('a'), serializable: true } }] }), true);
    assert.equal(isSerializableTxn({ success: [{ request_range: { key: b('a'), serializable: true } }], failure: [all] }), false);
  });

  it('reads a txn locally with the same answer as applying it, without a new revision', () => {
    const h = new Harness();
    h.put('a', '1');
    h.put('b', '2');
    const t: TxnRequest = {
      compare: [{ key: b('a'), target: 'VALUE', result: 'EQUAL', value: b('1') }],
      success: [{ request_range: { key: b('a'), range_end: b('c') } }, { request_range: { key: b('b'), revision: 2 } }],
      failure: [{ request_range: { key: b('b') } }],
    };
    const read = h.store.readTxn(t);
    assert.deepEqual(read, h.ok({ type: 'txn', req: t }));
    assert.equal(read.succeeded, true);
    assert.deepEqual(values(read.responses[0]!.response_range!.kvs), ['1', '2']);
    assert.equal(read.header.revision, 3);
    assert.equal(h.store.revision, 3);
    assert.throws(() => h.store.readTxn({ success: [{ request_range: { key: b('a'), revision: 9 } }] }), /future revision/);
  });

  it('refuses a response over the send limit before building it, with grpc-go\'s message', () => {
    const h = new Harness(new KvStore({ maxResponseBytes: 64 * 1024 }));
    for (let i = 0; i < 10; i++) h.put(`k${i}`, 'v'.repeat(1000)); // ~10 KB per full range
    const ranges = (n: number): TxnRequest => ({ success: Array.from({ length: n }, () => all) });
    assert.equal(h.store.readTxn(ranges(5)).responses.length, 5);
    assert.throws(
      () => h.store.readTxn(ranges(7)),
      (e: Error & { code?: string }) => e.code === 'RESOURCE_EXHAUSTED' && /^grpc: trying to send message larger than max \(\d+ vs\. 65536\)$/.test(e.message),
    );
    // keys_only ranges are small: the bound counts what would be sent.
    assert.equal(h.store.readTxn({ success: Array.from({ length: 50 }, () => ({ request_range: { ...all.request_range, keys_only: true } })) }).responses.length, 50);

    // A write txn over the limit fails at apply, on every member alike, without effect.
    const rev = h.store.revision;
    const err = h.err({ type: 'txn', req: { success: [{ request_put: { key: b('new'), value: b('x') } }, ...ranges(7).success!] } });
    assert.equal(err.code, 'RESOURCE_EXHAUSTED');
    assert.equal(h.store.revision, rev);
    assert.equal(h.get('new').length, 0);
    // Deletes with prev_kv count too.
    assert.equal(h.err({ type: 'txn', req: { success: [...ranges(6).success!, { request_delete_range: { key: b('\0'), range_end: b('\0'), prev_kv: true } }] } }).code, 'RESOURCE_EXHAUSTED');
    assert.equal(h.get('\0', '\0').length, 10);
  });

  it('is bounded by gRPC\'s send limit by default', () => {
    assert.equal(MAX_RESPONSE_BYTES, 2 ** 31 - 1);
  });
});
