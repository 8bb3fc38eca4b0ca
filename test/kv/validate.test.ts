import assert from 'node:assert/strict';
import { MSG } from '../../node-runtime/kv/errors';
import { INT64_MAX_NUMBER } from '../../node-runtime/kv/int64';
import { KvStore } from '../../node-runtime/kv/store';
import { decodeCommand } from '../../node-runtime/kv/codec';
import { prepareCommand, validateCommand, validatePut, validateTxn } from '../../node-runtime/kv/validate';
import type { KvCommand, RequestOp } from '../../node-runtime/kv/types';
import { b } from './helpers';

const put = (k: string): RequestOp => ({ request_put: { key: b(k), value: b('v') } });
const del = (k: string, end?: string): RequestOp => ({ request_delete_range: { key: b(k), range_end: end === undefined ? undefined : b(end) } });

describe('kv request validation (etcd v3rpc checks)', () => {
  it('rejects empty keys in put, range, delete and compares', () => {
    for (const e of [
      validatePut({ key: b('') }),
      validateCommand({ type: 'deleteRange', req: { key: b('') } }, 10),
      validateTxn({ compare: [{ key: b(''), target: 'VERSION', result: 'EQUAL' }] }),
      validateTxn({ success: [{ request_range: { key: b('') } }] }),
    ]) {
      assert.deepEqual([e?.code, e?.message], ['INVALID_ARGUMENT', MSG.emptyKey]);
    }
  });

  it('rejects a value with ignore_value and a lease with ignore_lease', () => {
    assert.equal(validatePut({ key: b('k'), value: b('x'), ignore_value: true })?.message, MSG.valueProvided);
    assert.equal(validatePut({ key: b('k'), lease: '5', ignore_lease: true })?.message, MSG.leaseProvided);
    assert.equal(validatePut({ key: b('k'), ignore_value: true, ignore_lease: true, lease: '0' }), undefined);
  });

  it('caps operations per txn (128 by default, configurable), nested txns included', () => {
    const ops = (n: number): RequestOp[] => Array.from({ length: n }, (_, i) => put(`k${i}`));
    assert.equal(validateTxn({ success: ops(128) }), undefined);
    assert.equal(validateTxn({ success: ops(129) })?.message, MSG.tooManyOps);
    assert.equal(validateTxn({ failure: ops(3) }, 2)?.code, 'INVALID_ARGUMENT');
    assert.equal(validateTxn({ success: [{ request_txn: { success: ops(3) } }] }, 3)?.message, MSG.tooManyOps);
  });

  it('rejects the same key put twice or put and deleted in one branch, like etcd', () => {
    assert.equal(validateTxn({ success: [put('a'), put('a')] })?.message, MSG.duplicateKey);
    assert.equal(validateTxn({ success: [del('a', 'c'), put('b')] })?.message, MSG.duplicateKey);
    assert.equal(validateTxn({ success: [put('a'), { request_txn: { success: [put('a')] } }] })?.message, MSG.duplicateKey);
    assert.equal(validateTxn({ success: [del('a'), { request_txn: { failure: [put('a')] } }] })?.message, MSG.duplicateKey);
    // Allowed: then/else of one nested txn are exclusive; the two top-level branches too;
    // overlapping deletes; a put next to a delete of another key.
    assert.equal(validateTxn({ success: [{ request_txn: { success: [put('a')], failure: [put('a')] } }] }), undefined);
    assert.equal(validateTxn({ success: [put('a')], failure: [put('a')] }), undefined);
    assert.equal(validateTxn({ success: [del('a', 'z'), del('b')] }), undefined);
    assert.equal(validateTxn({ success: [del('a'), put('b')] }), undefined);
  });

  it('rejects an encoded request larger than the limit', () => {
    const e = validateCommand({ type: 'put', req: { key: b('k') } }, 1.5 * 1024 * 1024 + 1);
    assert.deepEqual([e?.code, e?.message], ['INVALID_ARGUMENT', MSG.requestTooLarge]);
    assert.equal(validateCommand({ type: 'put', req: { key: b('k') } }, 100, { maxRequestBytes: 99, maxTxnOps: 128 })?.message, MSG.requestTooLarge);
  });

  it("refuses a lease TTL above etcd's maximum before proposing, as etcd does", () => {
    assert.equal(validateCommand({ type: 'leaseGrant', req: { ID: '7', TTL: 9_000_000_001 } }, 0)?.message, MSG.leaseTTLTooLarge);
    assert.equal(validateCommand({ type: 'leaseGrant', req: { ID: '7', TTL: INT64_MAX_NUMBER } }, 0)?.message, MSG.leaseTTLTooLarge);
    assert.equal(validateCommand({ type: 'leaseGrant', req: { ID: '7', TTL: 9_000_000_000 } }, 0), undefined);
    // etcd grants a negative TTL with the minimum TTL.
    assert.equal(validateCommand({ type: 'leaseGrant', req: { ID: '7', TTL: -5 } }, 0), undefined);
  });

  it('refuses what the codec or the state machine could not carry: non-int64 numbers, unknown enums, non-decimal IDs', () => {
    const bad: KvCommand[] = [
      { type: 'compact', req: { revision: Number.NaN } },
      { type: 'compact', req: { revision: 2 ** 63 } },
      { type: 'leaseGrant', req: { ID: 'abc', TTL: 5 } },
      { type: 'leaseRevoke', req: { ID: '1e5' } },
      { type: 'put', req: { key: b('k'), lease: 'x' } },
      { type: 'alarm', req: { action: 'ACTIVATE', memberID: '1', alarm: 'SOMETHING' as 'CORRUPT' } },
      { type: 'alarm', req: { action: 'ACTIVATE', memberID: '-1', alarm: 'CORRUPT' } },
      { type: 'txn', req: { compare: [{ key: b('k'), target: 'VERSION', result: 'EQUAL', version: 1.5 }] } },
      { type: 'txn', req: { compare: [{ key: b('k'), target: 7 as unknown as 'VERSION', result: 'EQUAL' }] } },
      { type: 'txn', req: { success: [{ request_range: { key: b('k'), limit: Infinity } }] } },
      { type: 'txn', req: { success: [{ request_range: { key: b('k'), sort_order: 'UP' as 'ASCEND' } }] } },
    ];
    for (const cmd of bad) {
      const e = validateCommand(cmd, 0);
      assert.equal(e?.code, 'INVALID_ARGUMENT', JSON.stringify(cmd));
      assert.throws(() => prepareCommand(cmd), /etcdserver: invalid/);
    }
  });

  it('whatever it lets through encodes, decodes and applies without throwing', () => {
    const n = INT64_MAX_NUMBER;
    const good: KvCommand[] = [
      { type: 'compact', req: { revision: n } },
      { type: 'compact', req: { revision: -n } },
      { type: 'leaseGrant', req: { ID: '9223372036854775807', TTL: 9_000_000_000 } },
      { type: 'leaseRevoke', req: { ID: '-9223372036854775808' } },
      {
        type: 'txn',
        req: {
          compare: [
            { key: b('k'), target: 'VERSION', result: 'LESS', version: n },
            { key: b('k'), target: 'MOD', result: 'GREATER', mod_revision: -n },
            { key: b('k'), target: 'LEASE', result: 'EQUAL', lease: '-1' },
          ],
          success: [{ request_range: { key: b('k'), limit: n, revision: n } }],
          failure: [{ request_range: { key: b('k'), limit: -n, revision: -n, max_mod_revision: n } }],
        },
      },
    ];
    const store = new KvStore();
    let index = 1;
    for (const cmd of good) {
      const bytes = prepareCommand(cmd);
      const r = store.apply(index++, decodeCommand(bytes));
      assert.notEqual(r.kind, 'skipped');
    }
  });
});
