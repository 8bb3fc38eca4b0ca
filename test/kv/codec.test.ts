import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeCommand, encodeCommand } from '../../node-runtime/kv/codec';
import type { Compare, KvCommand, RangeRequest, RequestOp, TxnRequest } from '../../node-runtime/kv/types';

const bytes = fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u));
const rev = fc.integer({ min: -5, max: 2 ** 40 });
const leaseId = fc.oneof(fc.constant('0'), fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String));

const range: fc.Arbitrary<RangeRequest> = fc.record({
  key: bytes,
  range_end: bytes,
  limit: rev,
  revision: rev,
  sort_order: fc.constantFrom('NONE' as const, 'ASCEND' as const, 'DESCEND' as const),
  sort_target: fc.constantFrom('KEY' as const, 'VERSION' as const, 'CREATE' as const, 'MOD' as const, 'VALUE' as const),
  serializable: fc.boolean(),
  keys_only: fc.boolean(),
  count_only: fc.boolean(),
  min_mod_revision: rev,
  max_mod_revision: rev,
  min_create_revision: rev,
  max_create_revision: rev,
});
const put = fc.record({ key: bytes, value: bytes, lease: leaseId, prev_kv: fc.boolean(), ignore_value: fc.boolean(), ignore_lease: fc.boolean() });
const del = fc.record({ key: bytes, range_end: bytes, prev_kv: fc.boolean() });
const result = fc.constantFrom('EQUAL' as const, 'GREATER' as const, 'LESS' as const, 'NOT_EQUAL' as const);
const compare: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ result, target: fc.constant('VERSION' as const), key: bytes, range_end: bytes, version: rev }),
  fc.record({ result, target: fc.constant('CREATE' as const), key: bytes, range_end: bytes, create_revision: rev }),
  fc.record({ result, target: fc.constant('MOD' as const), key: bytes, range_end: bytes, mod_revision: rev }),
  fc.record({ result, target: fc.constant('VALUE' as const), key: bytes, range_end: bytes, value: bytes }),
  fc.record({ result, target: fc.constant('LEASE' as const), key: bytes, range_end: bytes, lease: leaseId }),
);
const { txn } = fc.letrec<{ txn: TxnRequest; op: RequestOp }>((tie) => ({
  txn: fc.record({
    compare: fc.array(compare, { maxLength: 3 }),
    success: fc.array(tie('op'), { maxLength: 3 }),
    failure: fc.array(tie('op'), { maxLength: 3 }),
  }),
  op: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ request_range: range }),
    fc.record({ request_put: put }),
    fc.record({ request_delete_range: del }),
    fc.record({ request_txn: tie('txn') }),
  ),
}));
const command: fc.Arbitrary<KvCommand> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), req: put }),
  fc.record({ type: fc.constant('deleteRange' as const), req: del }),
  fc.record({ type: fc.constant('txn' as const), req: txn }),
  fc.record({ type: fc.constant('compact' as const), req: fc.record({ revision: rev, physical: fc.boolean() }) }),
  fc.record({ type: fc.constant('leaseGrant' as const), req: fc.record({ ID: leaseId, TTL: rev }) }),
  fc.record({ type: fc.constant('leaseRevoke' as const), req: fc.record({ ID: leaseId }) }),
  fc.record({
    type: fc.constant('alarm' as const),
    req: fc.record({
      action: fc.constantFrom('GET' as const, 'ACTIVATE' as const, 'DEACTIVATE' as const),
      memberID: leaseId,
      alarm: fc.constantFrom('NONE' as const, 'NOSPACE' as const, 'CORRUPT' as const),
    }),
  }),
);

describe('kv command codec', () => {
  it('round-trips every command shape, deterministically', () => {
    fc.assert(
      fc.property(command, (cmd) => {
        const enc = encodeCommand(cmd);
        // structuredClone: fast-check builds null-prototype records; compare plain data.
        assert.deepEqual(structuredClone(decodeCommand(enc)), structuredClone(cmd));
        assert.deepEqual(encodeCommand(decodeCommand(enc)), enc);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps a put small: a few bytes over key and value', () => {
    const enc = encodeCommand({ type: 'put', req: { key: Buffer.from('foo'), value: Buffer.from('bar') } });
    // format, type, flags, 2 × (length + bytes), lease "0" = 13 bytes.
    assert.equal(enc.length, 13);
  });

  it('refuses truncated input, unknown formats and trailing bytes', () => {
    const enc = encodeCommand({ type: 'put', req: { key: Buffer.from('foo'), value: Buffer.from('bar') } });
    assert.throws(() => decodeCommand(enc.subarray(0, enc.length - 1)), /truncated/);
    assert.throws(() => decodeCommand(Buffer.concat([enc, Buffer.from([0])])), /trailing/);
    const other = Buffer.from(enc);
    other[0] = 9;
    assert.throws(() => decodeCommand(other), /unknown format/);
  });
});
