import { strict as assert } from "node:assert";
import { readdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Snapshot } from "../../node-runtime/raft/types";
import { SnapshotCorruptionError, SnapshotStore } from "../../node-runtime/storage";
import { payloadFor } from "./support/payload";
import { useTempDir } from "./support/wal-helpers";

function snap(index: number, term: number, size = 1000): Snapshot {
  return { meta: { index, term, confState: { voters: [1, 2, 3], learners: [9] } }, data: payloadFor(index, term, size) };
}

describe("SnapshotStore", () => {
  const tmp = useTempDir();
  const snapDir = (): string => join(tmp.path, "snap");
  const store = (logs: string[] = [], keep?: number): SnapshotStore =>
    new SnapshotStore(snapDir(), { keep, logger: (m, f) => logs.push(`${m} ${JSON.stringify(f)}`) });

  it("has nothing to load before the first save, and no directory is needed", async () => {
    assert.equal(await store().loadLatest(), undefined);
  });

  it("saves atomically and loads the newest back intact", async () => {
    const s = store();
    const path = await s.save(snap(10, 2));
    assert.equal(path, join(snapDir(), "000000000000000a-0000000000000002.snap"));
    await s.save(snap(30, 3, 5 * 1024 * 1024));
    await s.save(snap(20, 3));
    const got = await store().loadLatest();
    assert.deepEqual(got?.meta, snap(30, 3).meta);
    assert.deepEqual(Buffer.from(got!.data), Buffer.from(payloadFor(30, 3, 5 * 1024 * 1024)));
    assert.deepEqual((await readdir(snapDir())).filter((f) => f.includes("tmp")), [], "no temp file left behind");
  });

  it("loads only the snapshot the WAL marked and removes newer files it has no marker for", async () => {
    const s = store();
    await s.save(snap(10, 1));
    await s.save(snap(20, 2)); // marked
    await s.save(snap(50, 3)); // written, marker lost in a crash
    const logs: string[] = [];
    const got = await store(logs).loadMarked({ index: 20, term: 2 });
    assert.deepEqual(got?.meta, snap(20, 2).meta);
    assert.equal(logs.length, 1);
    assert.deepEqual((await readdir(snapDir())).sort(), ["000000000000000a-0000000000000001.snap", "0000000000000014-0000000000000002.snap"]);
    assert.equal(await store().loadMarked(undefined), undefined);
    assert.deepEqual(await readdir(snapDir()), [], "with no marker every snapshot file is an orphan");
  });

  it("refuses a WAL marker whose snapshot file is missing or damaged", async () => {
    const s = store();
    await s.save(snap(10, 1));
    await assert.rejects(store().loadMarked({ index: 11, term: 1 }), SnapshotCorruptionError);
    const file = join(snapDir(), "000000000000000a-0000000000000001.snap");
    const buf = await readFile(file);
    buf[buf.length - 10] ^= 1;
    await writeFile(file, buf);
    await assert.rejects(store().loadMarked({ index: 10, term: 1 }), SnapshotCorruptionError);
  });

  it("keeps the newest N and prunes the rest", async () => {
    const s = store([], 2);
    for (const i of [5, 6, 7, 8]) await s.save(snap(i, 1));
    assert.deepEqual((await readdir(snapDir())).sort(), ["0000000000000007-0000000000000001.snap", "0000000000000008-0000000000000001.snap"]);
  });

  it("ignores a leftover temp file from an interrupted save, then removes it", async () => {
    const s = store();
    await s.save(snap(10, 1));
    // What a crash between writing and renaming leaves: a complete-looking but unpublished file.
    const leftover = join(snapDir(), ".0000000000000063-0000000000000001.snap.1234.abcd.tmp");
    await writeFile(leftover, await readFile(join(snapDir(), "000000000000000a-0000000000000001.snap")));
    assert.equal((await s.loadLatest())?.meta.index, 10);
    await s.save(snap(11, 1));
    assert.ok(!(await readdir(snapDir())).some((f) => f.endsWith(".tmp")));
  });

  it("falls back to an older intact snapshot when the newest is damaged, with a warning", async () => {
    const s = store();
    await s.save(snap(10, 1));
    await s.save(snap(20, 1));
    const newest = join(snapDir(), "0000000000000014-0000000000000001.snap");
    const buf = await readFile(newest);
    buf[buf.length - 100] ^= 1;
    await writeFile(newest, buf);
    const logs: string[] = [];
    const got = await store(logs).loadLatest();
    assert.equal(got?.meta.index, 10);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /newest snapshot is damaged.*0000000000000014-0000000000000001\.snap: data checksum mismatch/);
  });

  it("refuses when every snapshot is damaged, saying why for each", async () => {
    const s = store();
    await s.save(snap(10, 1));
    await s.save(snap(20, 1));
    await truncate(join(snapDir(), "0000000000000014-0000000000000001.snap"), 500);
    const older = join(snapDir(), "000000000000000a-0000000000000001.snap");
    const buf = await readFile(older);
    buf[20] ^= 1; // inside the header: index field
    await writeFile(older, buf);
    await assert.rejects(store().loadLatest(), (err: unknown) => {
      assert.ok(err instanceof SnapshotCorruptionError);
      assert.match(err.message, /0000000000000014-0000000000000001\.snap: file is 500 bytes but the header promises/);
      assert.match(err.message, /000000000000000a-0000000000000001\.snap: header checksum mismatch/);
      return true;
    });
  });

  it("refuses a snapshot file whose name disagrees with its header", async () => {
    await store().save(snap(10, 1));
    const src = join(snapDir(), "000000000000000a-0000000000000001.snap");
    await writeFile(join(snapDir(), "000000000000000b-0000000000000001.snap"), await readFile(src));
    const logs: string[] = [];
    assert.equal((await store(logs).loadLatest())?.meta.index, 10);
    assert.match(logs[0], /file name disagrees/);
  });
});
