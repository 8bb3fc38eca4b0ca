/**
 * The read-only Txn answer written from the records in steps (issue 15): byte for byte what
 * grpc-js's serializer writes for the same answer as objects, whatever the ranges ask (keys only,
 * count only, limits, sorting, old revisions, the failure branch, binary keys, large lease IDs),
 * the same bytes while the store moves on between steps, and the event loop given back between
 * steps of a large answer.
 */
import assert from 'node:assert/strict';
import { encodeTxnAnswer, txnAnswerSize, type WireHeader } from '../../node-runtime/kv/read-encoder';
import type { TxnRequest } from '../../node-runtime/kv/types';
import { loadEtcdGrpc } from '../../node-runtime/server/proto';
import { b, Harness } from './helpers';

const HEADER: WireHeader = { cluster_id: '17266457381386458101', member_id: '9372538179322589801', revision: '0', raft_term: '18446744073709551615' };
const noPause = (): Promise<void> => Promise.resolve();

/** What grpc-js sends for the answer built as objects (the old path). */
function serialized(h: Harness, t: TxnRequest): Buffer {
  const res = h.store.readTxn(t);
  const serialize = loadEtcdGrpc().services.KV['Txn']!.responseSerialize;
  return serialize({ ...res, header: { ...HEADER, revision: String(res.header.revision) } });
}

async function encoded(h: Harness, t: TxnRequest, pause = noPause): Promise<Buffer> {
  const sel = h.store.selectReadTxn(t);
  return encodeTxnAnswer(sel, { ...HEADER, revision: String(sel.revision) }, pause);
}

function sample(): Harness {
  const h = new Harness();
  const lease = h.ok({ type: 'leaseGrant', req: { ID: '9223372036854775807', TTL: 60 } }).ID;
  h.put('a', '1');
  h.put('b', '');
  h.put('\u0000\u00ff\u0080key', 'x'.repeat(300), lease);
  h.put('a', '22');
  h.put('c', 'v'.repeat(20_000));
  h.del('b');
  h.put('d', '4');
  return h;
}

describe('read-only txn answers written in steps', () => {
  const range = (r: object) => ({ request_range: { key: b('\0'), range_end: b('\0'), ...r } });
  const cases: [string, TxnRequest][] = [
    ['every key', { success: [range({})] }],
    ['keys only, count only, limit with more', { success: [range({ keys_only: true }), range({ count_only: true }), range({ limit: 2 })] }],
    ['sorted, filtered, one key, a range', { success: [range({ sort_order: 'DESCEND', sort_target: 'MOD' }), range({ min_mod_revision: 4 }), { request_range: { key: b('a') } }, { request_range: { key: b('a'), range_end: b('c') } }] }],
    ['an old revision, an empty answer', { success: [range({ revision: 3 }), { request_range: { key: b('zz') } }] }],
    ['the failure branch', { compare: [{ key: b('a'), target: 'VALUE', result: 'EQUAL', value: b('nope') }], success: [range({})], failure: [range({ keys_only: true })] }],
    ['no ops', { compare: [{ key: b('a'), target: 'VERSION', result: 'GREATER', version: 0 }] }],
    ['128 full ranges', { success: Array.from({ length: 128 }, () => range({})) }],
  ];
  for (const [name, t] of cases) {
    it(`writes what grpc-js would: ${name}`, async () => {
      const h = sample();
      const want = serialized(h, t);
      const got = await encoded(h, t);
      assert.equal(got.length, txnAnswerSize(h.store.selectReadTxn(t), { ...HEADER, revision: String(h.store.revision) }));
      assert.ok(got.equals(want), `encodings differ (${got.length} vs ${want.length} bytes)`);
    });
  }

  it('answers as of its revision while the store moves on between steps, and gives the event loop back', async () => {
    const h = new Harness();
    const value = 'v'.repeat(64 * 1024);
    for (let i = 0; i < 40; i++) h.put(`k${String(i).padStart(3, '0')}`, value);
    const t: TxnRequest = { success: Array.from({ length: 16 }, () => range({})) };
    const want = serialized(h, t);
    let pauses = 0;
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    try {
      const got = await encoded(h, t, async () => {
        pauses++;
        // Writes, deletes and a compaction land while the answer is being written.
        h.put(`k${String(pauses % 40).padStart(3, '0')}`, 'changed');
        if (pauses === 3) h.del('k000', 'k020');
        if (pauses === 5) h.ok({ type: 'compact', req: { revision: h.store.revision } });
        await new Promise<void>((resolve) => setImmediate(resolve));
        await new Promise<void>((resolve) => setTimeout(resolve, 1));
      });
      assert.ok(got.equals(want), 'the answer is the state as of the txn');
    } finally {
      clearInterval(ticker);
    }
    // 16 × 40 × 64 KiB = 40 MiB: about 40 steps of a MiB.
    assert.ok(pauses >= 30, `${pauses} pauses`);
    assert.ok(ticks > 0, 'timers ran while the answer was written');
  });

  it('writes a small answer without pausing', async () => {
    const h = sample();
    let pauses = 0;
    await encoded(h, { success: [range({})] }, async () => void pauses++);
    assert.equal(pauses, 0);
  });
});
