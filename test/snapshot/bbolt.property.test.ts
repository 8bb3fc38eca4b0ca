/**
 * The bbolt encoder and decoder agree with each other on any content (empty buckets, inline
 * buckets, overflow pages, several branch levels), every file passes the `bbolt check` rules, and
 * a store exported to etcd's format and read back is the same store.
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { BoltReader, bufferSource } from "../../node-runtime/kv/etcd-backend/bbolt-reader";
import { writeBolt, writeBoltAsync, type BoltEntry } from "../../node-runtime/kv/etcd-backend/bbolt-writer";
import { etcdSnapshotChunks } from "../../node-runtime/kv/etcd-backend/export";
import { importBackend } from "../../node-runtime/kv/etcd-backend/import";
import { snapshotStatus } from "../../node-runtime/kv/etcd-backend/status";
import { encodeCommand, KvStore, type KvCommand } from "../../node-runtime/kv";
import { encodeSnapshot } from "../../node-runtime/kv/snapshot";
import { decodeKeyValue, decodeLease, encodeKeyValue, encodeLease, parseRevKey, revKey } from "../../node-runtime/kv/etcd-backend/schema";

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max }).map((a) => Buffer.from(a));

/** Keys of mixed lengths (some long enough to make branch pages overflow-prone), values up to 3 pages. */
const bucketArb = fc.record({
  name: fc.uint8Array({ minLength: 1, maxLength: 12 }).map((a) => Buffer.from(a)),
  entries: fc.oneof(
    fc.array(fc.tuple(bytes(24), bytes(40)), { maxLength: 20 }),
    fc.array(fc.tuple(bytes(300), bytes(12_000)), { maxLength: 12 }),
    fc.array(fc.tuple(bytes(16), bytes(64)), { minLength: 200, maxLength: 1500 }),
  ),
});

function normalize(entries: [Buffer, Buffer][]): BoltEntry[] {
  const byKey = new Map<string, BoltEntry>();
  for (const [k, v] of entries) if (k.length > 0) byKey.set(k.toString("hex"), { key: k, value: v });
  return [...byKey.values()].sort((a, b) => Buffer.compare(a.key, b.key));
}

function roundTrip(buckets: { name: Buffer; entries: BoltEntry[] }[], pageSize: number): Buffer {
  const db = writeBolt(
    buckets.map((b) => ({ name: b.name, entries: () => b.entries })),
    pageSize,
  );
  const file = Buffer.concat([...db.pages]);
  assert.equal(file.length, db.size);
  return file;
}

describe("bbolt encoder/decoder", () => {
  it("round-trips any set of buckets and passes bbolt's consistency check", () => {
    fc.assert(
      fc.property(fc.array(bucketArb, { maxLength: 6 }), fc.constantFrom(1024, 4096, 8192), (raw, pageSize) => {
        const byName = new Map<string, { name: Buffer; entries: BoltEntry[] }>();
        for (const b of raw) byName.set(b.name.toString("hex"), { name: b.name, entries: normalize(b.entries) });
        const buckets = [...byName.values()];
        const file = roundTrip(buckets, pageSize);
        const r = BoltReader.open(bufferSource(file));
        assert.equal(r.meta.pageSize, pageSize);
        assert.deepEqual(r.check(), []);
        const read = [...r.buckets()].map(({ name, bucket }) => ({
          name: name.toString("hex"),
          entries: [...r.entries(bucket)].map((e) => [Buffer.from(e.key).toString("hex"), Buffer.from(e.value).toString("hex")]),
        }));
        const want = buckets
          .sort((a, b) => Buffer.compare(a.name, b.name))
          .map((b) => ({ name: b.name.toString("hex"), entries: b.entries.map((e) => [e.key.toString("hex"), e.value.toString("hex")]) }));
        assert.deepEqual(read, want);
      }),
      { numRuns: 60 },
    );
  });

  it("the async planner pauses during a large plan and writes the same bytes", async () => {
    const entries = Array.from({ length: 50_000 }, (_, i) => ({ key: Buffer.from(`k${String(i).padStart(6, "0")}`), value: Buffer.from(`v${i}`) }));
    const buckets = [{ name: Buffer.from("key"), entries: () => entries }];
    let pauses = 0;
    const db = await writeBoltAsync(buckets, 4096, async () => void pauses++);
    assert.ok(pauses >= 3, `paused ${pauses} times`);
    assert.ok(Buffer.concat([...db.pages]).equals(Buffer.concat([...writeBolt(buckets).pages])));
  });

  it("refuses what is not a database, as bbolt does", () => {
    assert.throws(() => BoltReader.open(bufferSource(Buffer.alloc(5000))), /file size too small/);
    assert.throws(() => BoltReader.open(bufferSource(Buffer.alloc(20000, 7))), /invalid database/);
    const file = roundTrip([{ name: Buffer.from("b"), entries: normalize([[Buffer.from("k"), Buffer.from("v")]]) }], 4096);
    file[16 + 20] ^= 1; // meta 0 root: its checksum no longer matches, meta 1 is used
    assert.equal(BoltReader.open(bufferSource(file)).meta.txid, 1n);
    file[4096 + 16 + 20] ^= 1;
    assert.throws(() => BoltReader.open(bufferSource(file)), /invalid database/);
  });
});

const keyArb = fc.constantFrom("a", "b", "c", "d/1", "d/2", "\u00ff", "\u0000z");
const cmdArb: fc.Arbitrary<KvCommand> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(keyArb, fc.string({ maxLength: 30 }), fc.boolean()).map(([k, v, leased]) => ({ type: "put", req: { key: Buffer.from(k, "latin1"), value: Buffer.from(v, "latin1"), lease: leased ? "7" : "0" } }) as KvCommand) },
  { weight: 2, arbitrary: keyArb.map((k) => ({ type: "deleteRange", req: { key: Buffer.from(k, "latin1") } }) as KvCommand) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }).map((r) => ({ type: "compact", req: { revision: r } }) as KvCommand) },
  {
    weight: 1,
    arbitrary: fc.array(keyArb, { minLength: 1, maxLength: 4 }).map(
      (ks) =>
        ({
          type: "txn",
          req: { compare: [], success: [...new Set(ks)].map((k) => ({ request_put: { key: Buffer.from(k, "latin1"), value: Buffer.from("t") } })), failure: [] },
        }) as unknown as KvCommand,
    ),
  },
);

describe("etcd records", () => {
  it("KeyValue, Lease and revision keys round-trip over the full int64 / safe-integer ranges", () => {
    const rev = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    const id = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map((x) => x.toString());
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 200 }), rev, rev, rev, id, fc.boolean(), (key, value, create, mod, version, lease, tomb) => {
        const r = { key, create, mod, version, value, lease };
        const kv = decodeKeyValue(encodeKeyValue(r));
        assert.deepEqual(kv, { ...r, key: Buffer.from(key, "latin1").toString("latin1"), value: Buffer.from(value, "latin1").toString("latin1") });
        assert.deepEqual(decodeLease(encodeLease(lease, version)), { id: lease, ttl: version });
        assert.deepEqual(parseRevKey(revKey(mod, create, tomb)), { main: mod, sub: create, tombstone: tomb });
      }),
      { numRuns: 500 },
    );
  });
});

describe("etcd backend export/import", () => {
  it("a store exported in etcd's format reads back as the same store", () => {
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 60 }), (cmds) => {
        const kv = new KvStore();
        let index = 1;
        kv.applyEntry(index++, encodeCommand({ type: "leaseGrant", req: { ID: "7", TTL: 120 } } as KvCommand));
        for (const c of cmds) kv.applyEntry(index++, encodeCommand(c));
        const snap = etcdSnapshotChunks({ kv: kv.view(), members: [{ id: 1, name: "m", peerURLs: ["https://h:1"], clientURLs: [], isLearner: false }], removedMembers: [5] });
        const file = Buffer.concat([...snap.chunks]);
        assert.equal(file.length, snap.size);
        assert.equal(file.length % 512, 32);
        const r = BoltReader.open(bufferSource(file));
        const status = snapshotStatus(r);
        const back = importBackend(r).state;
        assert.equal(back.appliedIndex, kv.appliedIndex);
        assert.equal(back.revision, kv.revision);
        assert.equal(back.compactRevision, kv.compactRevision);
        assert.equal(encodeSnapshot(back).toString("hex"), kv.snapshot().toString("hex"));
        const lastKey = kv.view().log.at(-1);
        assert.equal(status.revision, lastKey?.mod ?? 0);
      }),
      { numRuns: 150 },
    );
  });
});
