/**
 * Cost of the KV state machine on this machine, written to bench/results/kv.md:
 * apply() of a put, a prefix range, a txn; and for N keys (default 100k and 1M) the heap per
 * key, snapshot() size and time, and restore() time.
 *
 *   node --expose-gc --import tsx bench/kv.bench.ts            (100k and 1M keys)
 *   node --expose-gc --import tsx bench/kv.bench.ts 10000      (one size, quick)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeCommand, decodeCommand } from '../node-runtime/kv/codec';
import { KvStore } from '../node-runtime/kv/store';

const VALUE = Buffer.alloc(100, 'v');
const gc = (globalThis as { gc?: () => void }).gc;

function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed + process.memoryUsage().external + process.memoryUsage().arrayBuffers;
}

const key = (i: number): Buffer => Buffer.from(`/registry/pods/ns-${i % 100}/pod-${i.toString().padStart(7, '0')}`);

function ms(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

interface SizeRow {
  n: number;
  loadUsPerPut: number;
  bytesPerKey: number;
  dbSize: number;
  snapBytes: number;
  snapMs: number;
  restoreMs: number;
  prefixRangeUs: number;
}

function measureSize(n: number): SizeRow {
  const before = heap();
  let store = new KvStore();
  const loadMs = ms(() => {
    for (let i = 0; i < n; i++) store.apply(i + 1, { type: 'put', req: { key: key(i), value: VALUE } });
  });
  const bytesPerKey = (heap() - before) / n;
  // A prefix holding 1% of the keys (ns-42 of 100 namespaces), limit 100: the scan touches only
  // that prefix (count needs all of it, as in etcd), never the other 99%.
  const q = { key: Buffer.from('/registry/pods/ns-42/'), range_end: Buffer.from('/registry/pods/ns-420'), limit: 100 };
  for (let i = 0; i < 2000; i++) store.range(q); // warm up
  const reps = 2000;
  const rangeMs = ms(() => {
    for (let i = 0; i < reps; i++) store.range(q);
  });
  let snap: Buffer = Buffer.alloc(0);
  const snapMs = ms(() => {
    snap = store.snapshot();
  });
  const dbSize = store.dbSize();
  store = new KvStore();
  gc?.();
  let restored: KvStore | undefined;
  const restoreMs = ms(() => {
    restored = KvStore.restore(snap);
  });
  if (!restored || restored.keyCount !== n) throw new Error('restore lost keys');
  return {
    n,
    loadUsPerPut: (loadMs * 1000) / n,
    bytesPerKey,
    dbSize,
    snapBytes: snap.length,
    snapMs,
    restoreMs,
    prefixRangeUs: (rangeMs * 1000) / reps,
  };
}

function perOp(label: string, ops: number, fn: (i: number) => void): [string, number] {
  for (let i = 0; i < Math.min(ops, 10_000); i++) fn(i); // warm up
  const t = ms(() => {
    for (let i = 0; i < ops; i++) fn(i);
  });
  return [label, (t * 1000) / ops];
}

function microRows(): [string, number][] {
  const store = new KvStore();
  let index = 0;
  for (let i = 0; i < 100_000; i++) store.apply(++index, { type: 'put', req: { key: key(i), value: VALUE } });
  const ops = 200_000;
  const putCmd = (i: number) => ({ type: 'put' as const, req: { key: key(i % 100_000), value: VALUE } });
  const encoded = Array.from({ length: 1000 }, (_, i) => encodeCommand(putCmd(i)));
  const rows: [string, number][] = [];
  rows.push(perOp('apply(put), overwrite of one of 100k keys', ops, (i) => store.apply(++index, putCmd(i))));
  rows.push(perOp('apply(put), new key (index insert)', ops, (i) => store.apply(++index, { type: 'put', req: { key: Buffer.from(`/new/${i}`), value: VALUE } })));
  rows.push(perOp('decodeCommand + applyEntry(put)', ops, (i) => store.applyEntry(++index, encoded[i % 1000])));
  rows.push(perOp('encodeCommand(put)', ops, (i) => encodeCommand(putCmd(i))));
  rows.push(perOp('decodeCommand(put)', ops, (i) => decodeCommand(encoded[i % 1000])));
  rows.push(
    perOp('apply(txn: compare + put)', ops / 4, (i) =>
      store.apply(++index, {
        type: 'txn',
        req: { compare: [{ key: key(i % 100_000), target: 'VERSION', result: 'GREATER', version: 0 }], success: [{ request_put: { key: key(i % 100_000), value: VALUE } }] },
      }),
    ),
  );
  rows.push(perOp('range(single key)', ops, (i) => store.range({ key: key(i % 100_000) })));
  rows.push(perOp('range(prefix of 1,000 keys, limit 10)', ops / 20, () => store.range({ key: Buffer.from('/registry/pods/ns-7/'), range_end: Buffer.from('/registry/pods/ns-70'), limit: 10 })));
  const watched = store.watch({ key: Buffer.from('/registry/pods/ns-1/'), range_end: Buffer.from('/registry/pods/ns-10') }, () => undefined);
  rows.push(perOp('apply(put) with 1 prefix watcher matching 1/100 keys', ops, (i) => store.apply(++index, putCmd(i))));
  watched.cancel();
  const compactMs = ms(() => store.apply(++index, { type: 'compact', req: { revision: store.revision } }));
  rows.push([`compact of the whole history (${store.keyCount} keys)`, compactMs * 1000]);
  return rows;
}

function main(): void {
  if (!gc) console.warn('run with node --expose-gc for memory numbers');
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const micro = microRows();
  const rows = (sizes.length ? sizes : [100_000, 1_000_000]).map(measureSize);
  const mb = (x: number): string => (x / 1024 / 1024).toFixed(1);
  const lines = [
    '# KV state machine benchmark',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), Node ${process.version}.`,
    `Load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the box inflates every number).`,
    'Command: `node --expose-gc --import tsx bench/kv.bench.ts`. Keys are like `/registry/pods/ns-42/pod-0000042` (31 bytes), values 100 bytes, one version per key.',
    '',
    '## Per operation (100k keys in the store)',
    '',
    '| operation | µs/op |',
    '|---|---:|',
    ...micro.map(([l, us]) => `| ${l} | ${us.toFixed(2)} |`),
    '',
    '## Size, snapshot and restore',
    '',
    '| keys | load µs/put | heap bytes/key | quota dbSize MiB | snapshot MiB | snapshot() ms | restore() ms | range of a 1% prefix, limit 100 (µs) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.n.toLocaleString('en')} | ${r.loadUsPerPut.toFixed(2)} | ${r.bytesPerKey.toFixed(0)} | ${mb(r.dbSize)} | ${mb(r.snapBytes)} | ${r.snapMs.toFixed(0)} | ${r.restoreMs.toFixed(0)} | ${r.prefixRangeUs.toFixed(1)} |`,
    ),
    '',
  ];
  const out = lines.join('\n');
  console.log(out);
  const dir = path.join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'kv.md'), out);
}

main();
