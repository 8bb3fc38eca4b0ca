/**
 * A member whose periodic snapshot file cannot be written (EMFILE, ENOSPC or any I/O error) keeps
 * serving: the WAL still holds every entry, so the save is retried later. It once went through
 * member.ts's die() path and the member exited. The error is made for real: the member's snap
 * directory is replaced by a plain file, so creating the snapshot file fails with ENOTDIR.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { eventually, RawPool } from "../server/cluster/clients";
import { TestCluster } from "../server/harness/cluster";

describe("abuse: a snapshot file that cannot be written", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;

  before(async function () {
    this.timeout(60_000);
    c = await TestCluster.start({ size: 3, snapshotCount: 50 });
    pool = new RawPool(c);
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  it("leaves the member serving and saves the snapshot once the directory is usable again", async () => {
    const leader = await c!.leader();
    const victim = c!.members.map((m) => m.name).find((n) => n !== leader)!;
    const snapDir = path.join(c!.dir, "data", victim, "snap");
    fs.rmSync(snapDir, { recursive: true, force: true });
    fs.writeFileSync(snapDir, "not a directory");
    const savedBefore = (c!.log(victim).match(/"saved snapshot"/g) ?? []).length;

    for (let i = 0; i < 120; i++) await pool!.of(leader).put(`snaperr/${i}`, `v${i}`);
    await eventually(`${victim} to report the failed save`, async () => (/snapshot not saved/.test(c!.log(victim)) ? true : undefined), 30_000);
    assert.ok(c!.running(victim), `member died:\n${c!.log(victim).slice(-2000)}`);
    await eventually(`the writes on ${victim}`, async () => ((await pool!.of(victim).value("snaperr/119", { serializable: true })) === "v119" ? true : undefined));
    await pool!.of(victim).put("snaperr/through-victim", "ok");

    fs.rmSync(snapDir, { force: true });
    for (let i = 120; i < 240; i++) await pool!.of(leader).put(`snaperr/${i}`, `v${i}`);
    await eventually(`${victim} to save a snapshot again`, async () => ((c!.log(victim).match(/"saved snapshot"/g) ?? []).length > savedBefore ? true : undefined), 30_000);
    assert.ok(c!.running(victim));
  });
});
