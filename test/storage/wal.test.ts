import { strict as assert } from "node:assert";
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { LogOrderError, WalUnavailableError } from "../../node-runtime/storage";
import { payloadFor } from "./support/payload";
import { entries, indexTerms, openWal, useTempDir, withWal } from "./support/wal-helpers";

const CONF = { voters: [1, 2, 3], learners: [] };

describe("WriteAheadLog", () => {
  const tmp = useTempDir();
  const walDir = (): string => join(tmp.path, "wal");

  it("starts empty and returns what was saved, byte for byte, after reopening", async () => {
    const first = await openWal(walDir());
    assert.deepEqual(first.recovered, { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: undefined, entries: [] });
    await first.wal.save({ term: 1, vote: 2, commit: 0 }, entries(1, 3, 1));
    await first.wal.save(undefined, [{ index: 4, term: 1, type: 1, data: new Uint8Array(0) }]);
    await first.wal.save({ term: 1, vote: 2, commit: 4 }, []);
    await first.wal.close();

    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.deepEqual(recovered.hardState, { term: 1, vote: 2, commit: 4 });
    assert.deepEqual(indexTerms(recovered.entries), [[1, 1], [2, 1], [3, 1], [4, 1]]);
    assert.equal(recovered.entries[3].type, 1);
    assert.equal(recovered.entries[3].data.length, 0);
    for (const e of recovered.entries.slice(0, 3)) assert.deepEqual(e.data, payloadFor(e.index, e.term));
  });

  it("replaces a conflicting suffix, also across a reopen and a segment boundary", async () => {
    await withWal(walDir(), { segmentBytes: 2048 }, async (wal) => {
      await wal.save(undefined, entries(1, 40, 1, 100));
      await wal.save({ term: 2, vote: 1, commit: 5 }, entries(30, 3, 2));
    });
    let r = await openWal(walDir(), { segmentBytes: 2048 });
    assert.deepEqual(indexTerms(r.recovered.entries), [...entries(1, 29, 1), ...entries(30, 3, 2)].map((e) => [e.index, e.term]));
    // Rewrite from index 10, which lives in the first segment.
    await r.wal.save({ term: 3, vote: 1, commit: 5 }, entries(10, 2, 3));
    await r.wal.close();
    r = await openWal(walDir());
    await r.wal.close();
    assert.deepEqual(indexTerms(r.recovered.entries), [...entries(1, 9, 1), ...entries(10, 2, 3)].map((e) => [e.index, e.term]));
    assert.equal(r.recovered.hardState.term, 3);
  });

  it("rotates segments at the configured size and reads them all back", async () => {
    await withWal(walDir(), { segmentBytes: 4096 }, async (wal) => {
      for (let i = 0; i < 50; i++) await wal.save({ term: 1, vote: 1, commit: i * 4 }, entries(i * 4 + 1, 4, 1, 200));
      assert.ok(wal.segmentFiles().length >= 8, `only ${wal.segmentFiles().length} segments`);
    });
    const files = (await readdir(walDir())).sort();
    assert.match(files[0], /^0{16}-0{15}1\.wal$/);
    for (const f of files.slice(0, -1)) assert.ok((await stat(join(walDir(), f))).size >= 4096);
    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.equal(recovered.entries.length, 200);
    assert.deepEqual(recovered.entries.map((e) => e.index), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.equal(recovered.hardState.commit, 196);
  });

  it("releases segments covered by a snapshot and keeps the hard state they held", async () => {
    await withWal(walDir(), { segmentBytes: 4096 }, async (wal) => {
      await wal.save({ term: 7, vote: 3, commit: 1 }, entries(1, 100, 7, 200));
      for (let i = 0; i < 20; i++) await wal.save(undefined, entries(101 + i * 5, 5, 7, 200));
      const before = wal.segmentFiles();
      await wal.markSnapshot({ index: 150, term: 7, confState: CONF });
      await wal.releaseTo(150);
      const after = wal.segmentFiles();
      const deleted = before.filter((f) => !after.includes(f));
      assert.ok(deleted.length >= 2, `deleted ${deleted.length} segments`);
      assert.ok(deleted.every((f) => f < after[0]), "only the oldest ones");
      assert.deepEqual((await readdir(walDir())).sort(), after);
    });
    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.deepEqual(recovered.hardState, { term: 7, vote: 3, commit: 1 });
    assert.deepEqual(recovered.snapshot, { index: 150, term: 7, confState: CONF });
    assert.deepEqual(recovered.entries.map((e) => e.index), Array.from({ length: 50 }, (_, i) => 151 + i));
  });

  it("never releases beyond the latest snapshot marker, nor the segment being written", async () => {
    await withWal(walDir(), { segmentBytes: 1024 }, async (wal) => {
      await wal.save(undefined, entries(1, 30, 1, 200));
      await assert.rejects(wal.releaseTo(10), /no snapshot marker covers it/);
      await wal.markSnapshot({ index: 30, term: 1, confState: CONF });
      await assert.rejects(wal.releaseTo(31), RangeError);
      await wal.releaseTo(30);
      assert.equal(wal.segmentFiles().length, 1);
    });
    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.equal(recovered.snapshot?.index, 30);
    assert.deepEqual(recovered.entries, []);
  });

  it("keeps the log after a snapshot marker whose term matches, and drops it when the term differs", async () => {
    await withWal(walDir(), {}, async (wal) => {
      await wal.save(undefined, entries(1, 10, 1));
      await wal.markSnapshot({ index: 5, term: 1, confState: CONF });
    });
    let r = await openWal(walDir());
    assert.deepEqual(r.recovered.entries.map((e) => e.index), [6, 7, 8, 9, 10]);
    // A leader's snapshot at 8 from term 2 conflicts with our entry 8 (term 1): raft discards the log.
    await r.wal.markSnapshot({ index: 8, term: 2, confState: CONF });
    await assert.rejects(r.wal.save(undefined, entries(10, 1, 2)), LogOrderError, "the old entries no longer exist");
    await r.wal.save(undefined, entries(9, 2, 2));
    await r.wal.close();
    r = await openWal(walDir());
    await r.wal.close();
    assert.deepEqual(r.recovered.snapshot?.index, 8);
    assert.deepEqual(indexTerms(r.recovered.entries), [[9, 2], [10, 2]]);
  });

  it("accepts a snapshot ahead of its log (a follower catching up) and continues after it", async () => {
    await withWal(walDir(), {}, async (wal) => {
      await wal.save(undefined, entries(1, 3, 1));
      await wal.markSnapshot({ index: 1000, term: 4, confState: CONF });
      await wal.save({ term: 4, vote: 0, commit: 1000 }, entries(1001, 2, 4));
    });
    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.equal(recovered.snapshot?.index, 1000);
    assert.deepEqual(indexTerms(recovered.entries), [[1001, 4], [1002, 4]]);
  });

  it("rejects saves that would leave a gap or rewrite the snapshot, without disturbing later saves", async () => {
    await withWal(walDir(), {}, async (wal) => {
      await assert.rejects(wal.save(undefined, entries(2, 1, 1)), /gap after index 0/);
      await wal.save(undefined, entries(1, 5, 1));
      await assert.rejects(wal.save(undefined, entries(7, 1, 1)), LogOrderError);
      await assert.rejects(wal.save(undefined, [...entries(6, 1, 1), ...entries(8, 1, 1)]), /not contiguous/);
      await assert.rejects(wal.save({ term: -1, vote: 0, commit: 0 }, []), RangeError);
      await wal.markSnapshot({ index: 3, term: 1, confState: CONF });
      await assert.rejects(wal.save(undefined, entries(3, 1, 2)), /covered by the snapshot/);
      await assert.rejects(wal.markSnapshot({ index: 2, term: 1, confState: CONF }), /older than marker/);
      await wal.save(undefined, entries(6, 1, 1));
    });
    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.deepEqual(recovered.entries.map((e) => e.index), [4, 5, 6]);
  });

  it("serializes concurrent saves in call order and coalesces them into few durable (O_DSYNC) writes", async () => {
    const probe = await open(join(tmp.path, "probe"), "w");
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const original = proto.write;
    let syncs = 0;
    proto.write = function (this: unknown, ...args: unknown[]) {
      syncs++;
      return original.apply(this, args);
    };
    try {
      await withWal(walDir(), {}, async (wal) => {
        syncs = 0;
        const resolved: number[] = [];
        const saves = Array.from({ length: 200 }, (_, i) =>
          wal.save({ term: 1, vote: 1, commit: i }, entries(i + 1, 1, 1)).then(() => resolved.push(i)),
        );
        await Promise.all(saves);
        assert.deepEqual(resolved, Array.from({ length: 200 }, (_, i) => i));
        assert.ok(syncs <= 3, `200 queued saves took ${syncs} durable writes`);
      });
    } finally {
      proto.write = original;
    }
    const { recovered, wal } = await openWal(walDir());
    await wal.close();
    assert.equal(recovered.entries.length, 200);
    assert.equal(recovered.hardState.commit, 199);
  });

  it("stops accepting writes after a failed durable write, and a reopen recovers what is on disk", async () => {
    const probe = await open(join(tmp.path, "probe"), "w");
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const original = proto.write;
    const { wal } = await openWal(walDir());
    await wal.save(undefined, entries(1, 2, 1));
    proto.write = () => Promise.reject(Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" }));
    try {
      const failing = wal.save(undefined, entries(3, 1, 1));
      const queued = wal.save(undefined, entries(4, 1, 1));
      await assert.rejects(failing, /EIO/);
      await assert.rejects(queued, WalUnavailableError);
      await assert.rejects(wal.save(undefined, entries(5, 1, 1)), /reopen to recover/);
    } finally {
      proto.write = original;
    }
    await wal.close();
    const again = await openWal(walDir());
    await again.wal.close();
    assert.ok(again.recovered.entries.length >= 2);
  });

  it("refuses calls after close", async () => {
    const { wal } = await openWal(walDir());
    const pending = wal.save(undefined, entries(1, 1, 1));
    await wal.close();
    await pending;
    await assert.rejects(wal.save(undefined, entries(2, 1, 1)), WalUnavailableError);
    await wal.close();
  });
});
