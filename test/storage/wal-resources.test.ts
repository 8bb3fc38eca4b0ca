/**
 * The WAL and the process's resources (issue 15): running out of file descriptors while a
 * segment rotates makes the write wait and retry, not fail (which would stop the member), and
 * the WAL directory is private to its owner (0700), as etcd makes it.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { closeSync, openSync, readdirSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { entries, indexTerms, openWal, useTempDir } from "./support/wal-helpers";

function setFdLimit(limit: string): void {
  execFileSync("prlimit", [`--pid=${process.pid}`, `--nofile=${limit}`]);
}

function currentFdLimit(): string {
  return execFileSync("prlimit", [`--pid=${process.pid}`, "--nofile", "--raw", "--noheadings", "--output=SOFT,HARD"], { encoding: "utf8" })
    .trim()
    .split(/\s+/)
    .join(":");
}

describe("WAL resources", () => {
  const tmp = useTempDir();

  it("a segment rotation that finds no free file descriptor waits and completes once one is free", async () => {
    const dir = join(tmp.path, "wal");
    const { wal } = await openWal(dir, { segmentBytes: 4096 });
    await wal.save(undefined, entries(1, 2, 1, 3000));
    const saved = currentFdLimit();
    const hogs: number[] = [];
    let outcome: string | undefined;
    try {
      setFdLimit(`${readdirSync("/proc/self/fd").length + 32}:${saved.split(":")[1]!}`);
      try {
        for (;;) hogs.push(openSync("/dev/null", "r"));
      } catch (e) {
        assert.equal((e as { code?: string }).code, "EMFILE");
      }
      // This write crosses the segment size: it needs a new file.
      const p = wal.save(undefined, entries(3, 2, 1, 3000)).then(
        () => (outcome = "saved"),
        (e: Error) => (outcome = `failed: ${e.message}`),
      );
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(outcome, undefined, "the write waits while no descriptor is free");
      for (const fd of hogs.splice(0)) closeSync(fd);
      await p;
      assert.equal(outcome, "saved");
    } finally {
      for (const fd of hogs) closeSync(fd);
      setFdLimit(saved);
    }
    await wal.close();
    const r = await openWal(dir, { segmentBytes: 4096 });
    await r.wal.close();
    assert.deepEqual(indexTerms(r.recovered.entries), [[1, 1], [2, 1], [3, 1], [4, 1]]);
  });

  it("creates the WAL directory 0700 and closes up one left 0755", async () => {
    const fresh = join(tmp.path, "fresh", "wal");
    await (await openWal(fresh)).wal.close();
    assert.equal((await stat(fresh)).mode & 0o777, 0o700);
    const old = join(tmp.path, "old-wal");
    await mkdir(old, { mode: 0o755 });
    await (await openWal(old)).wal.close();
    assert.equal((await stat(old)).mode & 0o777, 0o700);
  });
});
