/** Recovery from damage: torn tails are cut and logged; anything else is refused with file and offset. */
import { strict as assert } from "node:assert";
import { appendFile, readdir, readFile, rename, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { WalCorruptionError } from "../../node-runtime/storage";
import { entries, openWal, useTempDir, withWal } from "./support/wal-helpers";

// Layout facts of format version 1, used to aim damage at exact records.
const INFO_RECORD = 16 + 49; // segment info without a snapshot
const ENTRY_RECORD = 16 + 17 + 100; // entries written with 100-byte payloads below
const entryOffset = (k: number): number => INFO_RECORD + k * ENTRY_RECORD;

describe("WAL recovery from damage", () => {
  const tmp = useTempDir();
  const walDir = (): string => join(tmp.path, "wal");
  const segments = async (): Promise<string[]> => (await readdir(walDir())).sort();

  async function writeTen(segmentBytes?: number): Promise<void> {
    await withWal(walDir(), { segmentBytes }, async (wal) => {
      for (let i = 1; i <= 10; i++) await wal.save(undefined, entries(i, 1, 1, 100));
    });
  }

  async function flipByte(file: string, offset: number): Promise<void> {
    const path = join(walDir(), file);
    const buf = await readFile(path);
    buf[offset] ^= 0x5a;
    await writeFile(path, buf);
  }

  it("cuts a record torn mid-write at the end of the last segment, logs it, and keeps writing", async () => {
    await writeTen();
    const [seg] = await segments();
    await truncate(join(walDir(), seg), entryOffset(9) + 50);

    const first = await openWal(walDir());
    assert.deepEqual(first.recovered.entries.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(first.logs.length, 1);
    assert.match(first.logs[0].msg, /torn WAL tail/);
    assert.deepEqual(
      { file: first.logs[0].fields?.file, offset: first.logs[0].fields?.offset, discardedBytes: first.logs[0].fields?.discardedBytes },
      { file: seg, offset: entryOffset(9), discardedBytes: 50 },
    );
    assert.equal((await stat(join(walDir(), seg))).size, entryOffset(9), "the torn bytes are gone from disk");
    await first.wal.save(undefined, entries(10, 2, 1, 100));
    await first.wal.close();

    const second = await openWal(walDir());
    await second.wal.close();
    assert.equal(second.logs.length, 0);
    assert.equal(second.recovered.entries.length, 11);
  });

  it("cuts a tail of zeros or of a partial header", async () => {
    await writeTen();
    const [seg] = await segments();
    await appendFile(join(walDir(), seg), Buffer.alloc(4096));
    let r = await openWal(walDir());
    await r.wal.close();
    assert.equal(r.recovered.entries.length, 10);
    assert.equal(r.logs[0].fields?.reason, "record header checksum mismatch");

    await appendFile(join(walDir(), seg), Buffer.from([1, 2, 3]));
    r = await openWal(walDir());
    await r.wal.close();
    assert.equal(r.recovered.entries.length, 10);
    assert.match(String(r.logs[0].fields?.reason), /incomplete record header/);
  });

  it("cuts a torn entry whose data happens to contain a valid-looking record", async () => {
    await writeTen();
    const [seg] = await segments();
    const path = join(walDir(), seg);
    const embedded = (await readFile(path)).subarray(entryOffset(0), entryOffset(1));
    await withWal(walDir(), {}, async (wal) => {
      await wal.save(undefined, [{ index: 11, term: 1, type: 0, data: Buffer.concat([Buffer.alloc(40, 1), embedded, Buffer.alloc(40, 2)]) }]);
    });
    await truncate(path, entryOffset(10) + 16 + 17 + 40 + embedded.length + 10);
    const { recovered, wal, logs } = await openWal(walDir());
    await wal.close();
    assert.equal(recovered.entries.length, 10);
    assert.equal(logs[0].fields?.offset, entryOffset(10));
  });

  it("refuses a damaged record in the middle of the last segment, naming file and offset, and changes nothing", async () => {
    await writeTen();
    const [seg] = await segments();
    const before = await readFile(join(walDir(), seg));
    await flipByte(seg, entryOffset(4) + 60); // inside entry 5's payload
    await assert.rejects(openWal(walDir()), (err: unknown) => {
      assert.ok(err instanceof WalCorruptionError);
      assert.equal(err.file, seg);
      assert.equal(err.offset, entryOffset(4));
      assert.match(err.message, new RegExp(`${seg} at byte offset ${entryOffset(4)}: record payload checksum mismatch; an intact record follows at offset ${entryOffset(5)}`));
      return true;
    });
    assert.equal((await stat(join(walDir(), seg))).size, before.length);
  });

  it("refuses a damaged length field instead of mistaking it for a torn tail", async () => {
    await writeTen();
    const [seg] = await segments();
    await flipByte(seg, entryOffset(7) + 2); // length of entry 8 now claims megabytes
    await assert.rejects(openWal(walDir()), new RegExp(`${seg} at byte offset ${entryOffset(7)}: record header checksum mismatch`));
  });

  it("refuses damage in a segment that is not the last, even in its final record", async () => {
    await writeTen(ENTRY_RECORD * 3);
    const segs = await segments();
    assert.ok(segs.length >= 3);
    const size = (await stat(join(walDir(), segs[0]))).size;
    await flipByte(segs[0], size - 10);
    await assert.rejects(openWal(walDir()), (err: unknown) => {
      assert.ok(err instanceof WalCorruptionError);
      assert.equal(err.file, segs[0]);
      assert.equal(err.offset, size - ENTRY_RECORD);
      return true;
    });
    // Cutting a non-last segment short is refused too: only the last may be torn.
    await flipByte(segs[0], size - 10);
    await truncate(join(walDir(), segs[0]), size - 10);
    await assert.rejects(openWal(walDir()), /runs past the end of the file/);
  });

  it("refuses a WAL with a segment missing from the middle", async () => {
    await writeTen(ENTRY_RECORD * 2);
    const segs = await segments();
    await unlink(join(walDir(), segs[1]));
    await assert.rejects(openWal(walDir()), new RegExp(`${segs[2]} at byte offset 0: segment sequence jumps from 0 to 2`));
  });

  it("refuses a segment whose name does not match its content", async () => {
    await writeTen(ENTRY_RECORD * 2);
    const segs = await segments();
    const last = segs[segs.length - 1];
    await rename(join(walDir(), last), join(walDir(), last.replace(/-[0-9a-f]{16}\.wal$/, "-00000000000000ff.wal")));
    await assert.rejects(openWal(walDir()), /does not match the file name/);
  });

  it("restarts a segment left empty or half-started by a crash during rotation", async () => {
    await writeTen(ENTRY_RECORD * 2);
    const segs = await segments();
    const lastSeq = parseInt(segs[segs.length - 1].slice(0, 16), 16);
    // What a crash leaves between creating the next segment and syncing its first record.
    const next = `${(lastSeq + 1).toString(16).padStart(16, "0")}-${(11).toString(16).padStart(16, "0")}.wal`;
    await writeFile(join(walDir(), next), Buffer.alloc(0));
    let r = await openWal(walDir());
    await r.wal.close();
    assert.equal(r.logs.length, 0, "an empty newest segment is a rotation that never got going, not damage");
    assert.equal(r.recovered.entries.length, 10);
    assert.equal((await stat(join(walDir(), next))).size, INFO_RECORD, "its first record was written");

    await truncate(join(walDir(), next), 20);
    r = await openWal(walDir());
    assert.match(r.logs[0].msg, /torn WAL tail/);
    await r.wal.save(undefined, entries(11, 1, 1, 100));
    await r.wal.close();
    r = await openWal(walDir());
    await r.wal.close();
    assert.deepEqual(r.recovered.entries.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal((await segments()).at(-1), next);
  });
});
