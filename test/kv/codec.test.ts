import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BinReader, BinWriter } from '../../node-runtime/kv/binary';
import { decodeCommand, encodeCommand } from '../../node-runtime/kv/codec';
import { INT64_MAX_NUMBER, INT64_MIN_NUMBER, int64ToNumber, wireInt64 } from '../../node-runtime/kv/int64';
import type { Compare, KvCommand, RangeRequest, RequestOp, TxnRequest } from '../../node-runtime/kv/types';

const bytes = fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u));
// Every int64 field over the whole int64 range, as the API hands it to the state machine (a
// decimal string from protobuf turned into a number), with the edges and small values weighted in.
const rev = fc.oneof(
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(int64ToNumber),
  fc.constantFrom(0, -1, 1, 2 ** 53, -(2 ** 53), 2 ** 62, -(2 ** 62), INT64_MAX_NUMBER, INT64_MIN_NUMBER),
  fc.integer({ min: -5, max: 2 ** 40 }),
);
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

  it('carries the int64 extremes of every integer field (etcdctl compaction 9223372036854775807 once killed every member)', () => {
    for (const text of ['9223372036854775807', '-9223372036854775808', '4611686018427387904', '-4611686018427387905']) {
      const n = wireInt64(text)!;
      const cmds: KvCommand[] = [
        { type: 'compact', req: { revision: n, physical: false } },
        { type: 'leaseGrant', req: { ID: '1', TTL: n } },
        {
          type: 'txn',
          req: {
            compare: [
              { result: 'LESS', target: 'VERSION', key: Buffer.from('k'), version: n },
              { result: 'EQUAL', target: 'CREATE', key: Buffer.from('k'), create_revision: n },
              { result: 'GREATER', target: 'MOD', key: Buffer.from('k'), mod_revision: n },
            ],
            success: [{ request_range: { key: Buffer.from('k'), limit: n, revision: n, min_mod_revision: n, max_mod_revision: n, min_create_revision: n, max_create_revision: n } }],
            failure: [],
          },
        },
      ];
      for (const cmd of cmds) {
        const enc = encodeCommand(cmd);
        const back = decodeCommand(enc);
        assert.deepEqual(encodeCommand(back), enc, text);
        assert.deepEqual(back.type === 'compact' ? back.req.revision : back.type === 'leaseGrant' ? back.req.TTL : (back.req as { compare: Array<{ version?: number }> }).compare[0]!.version, n);
      }
    }
  });

  it('reads exactly the varints it writes: 10 bytes and 64 bits at most', () => {
    for (const n of [0, 1, -1, 2 ** 49, 2 ** 52, 2 ** 53, -(2 ** 53) - 2, 2 ** 62, INT64_MAX_NUMBER, INT64_MIN_NUMBER]) {
      const w = new BinWriter();
      w.svar(n);
      const r = new BinReader(w.finish());
      assert.equal(r.svar(), n);
      assert.ok(r.done);
    }
    const w = new BinWriter();
    w.uvar(2 ** 64 - 2048);
    assert.equal(w.finish().length, 10);
    assert.equal(new BinReader(w.finish()).uvar(), 2 ** 64 - 2048);
    // An 11-byte varint, and a 10-byte one with more than bit 63 in its last byte.
    assert.throws(() => new BinReader(Buffer.from([...Array(10).fill(0xff), 0x01])).uvar(), /overflows 64 bits/);
    assert.throws(() => new BinReader(Buffer.from([...Array(9).fill(0xff), 0x02])).svar(), /overflows 64 bits/);
    // Values no int64 holds are refused at encode time, never written for a decoder to choke on.
    for (const bad of [2 ** 63, -(2 ** 63) - 4096, 1.5, Number.NaN, Infinity]) assert.throws(() => new BinWriter().svar(bad), /cannot encode/);
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
