import { strict as assert } from "node:assert";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readMeta, writeMeta, type MemberMeta } from "../../node-runtime/storage";
import { useTempDir } from "./support/wal-helpers";

const META: MemberMeta = { clusterToken: "tok-1", clusterId: "8e9e05c52164694d", memberId: "fd422379fda50e48", name: "m1", version: 1 };

describe("member metadata (member.json)", () => {
  const tmp = useTempDir();

  it("is undefined for a fresh data dir and round-trips once written", async () => {
    assert.equal(await readMeta(tmp.path), undefined);
    await writeMeta(tmp.path, META);
    assert.deepEqual(await readMeta(tmp.path), META);
    assert.deepEqual(await readdir(tmp.path), ["member.json"], "no temp file left behind");
    await writeMeta(tmp.path, { ...META, clusterId: "1" });
    assert.equal((await readMeta(tmp.path))?.clusterId, "1");
  });

  it("stores only the known fields", async () => {
    await writeMeta(tmp.path, { ...META, extra: "x" } as MemberMeta);
    assert.deepEqual(Object.keys(JSON.parse(await readFile(join(tmp.path, "member.json"), "utf8")) as object).sort(), [
      "clusterId",
      "clusterToken",
      "memberId",
      "name",
      "version",
    ]);
  });

  it("refuses malformed content with the file's path", async () => {
    const path = join(tmp.path, "member.json");
    await writeFile(path, "{ not json");
    await assert.rejects(readMeta(tmp.path), new RegExp(`${path}: not valid JSON`));
    await writeFile(path, JSON.stringify({ ...META, memberId: 5 }));
    await assert.rejects(readMeta(tmp.path), /memberId must be a string/);
  });
});
