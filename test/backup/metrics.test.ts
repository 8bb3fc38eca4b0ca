/**
 * Issue 13's "a metric and log line per backup with its age" on the member's own /metrics: the
 * agent's runs (against s3rver through the AWS SDK) leave a state file that the member
 * (--backup-state-dir) serves as raftkv_backup_* series, read at each scrape, so the newest
 * backup's age keeps growing when backups stop; and the real bundle serves them.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Registry } from "prom-client";
import { runBackup, type MemberView } from "../../node-runtime/backup/agent";
import { registerBackupMetrics } from "../../node-runtime/server/obs/backup-metrics";
import { TestCluster } from "../server/harness/cluster";
import { FakeMember, useS3Backups } from "./support";

describe("backup metrics on the member's /metrics (--backup-state-dir)", function () {
  this.timeout(120_000);
  const s3 = useS3Backups();
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-backup-metrics-"));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // The runs happen "two hours ago" on a fake clock, so the real member below sees an old backup.
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 7_200_000;
  const run = (member: MemberView, at: Date) =>
    runBackup(member, s3.store, { bucket: s3.bucket, prefix: "m1", reason: "scheduled", ifLeader: true, retentionDays: 7, workDir: path.join(dir, "work"), stateDir: path.join(dir, "state"), now: () => at });

  it("exports nothing before the agent ran, then the runs and the newest backup's age as it grows at each scrape", async () => {
    let clock = t0;
    const registry = new Registry();
    registerBackupMetrics(registry, path.join(dir, "state"), () => clock);
    // No state yet: no series at all (an age of 0 would read as "a backup just now").
    assert.doesNotMatch(await registry.metrics(), /^raftkv_backup_\w+\{/m);

    const up = await run(new FakeMember("raftkv-1", "raftkv-1", 1), new Date(clock));
    assert.equal(up.uploaded, true);
    clock += 30_000;
    const skipped = await run(new FakeMember("raftkv-2", "raftkv-1", 1), new Date(clock));
    assert.match(skipped.line, /is 30 s old$/);
    clock += 1_000;
    let text = await registry.metrics();
    const loc = 'location="s3://raftkv-backups/m1/"';
    assert.match(text, new RegExp(`^raftkv_backup_latest_age_seconds\\{${loc}\\} 31$`, "m"));
    assert.match(text, new RegExp(`^raftkv_backup_runs_total\\{${loc},result="uploaded"\\} 1$`, "m"));
    assert.match(text, new RegExp(`^raftkv_backup_runs_total\\{${loc},result="skipped"\\} 1$`, "m"));
    assert.match(text, new RegExp(`^raftkv_backup_runs_total\\{${loc},result="failed"\\} 0$`, "m"));
    assert.match(text, new RegExp(`^raftkv_backup_last_revision\\{${loc}\\} 2$`, "m"));
    assert.match(text, new RegExp(`^raftkv_backup_latest_timestamp_seconds\\{${loc}\\} ${t0 / 1000}$`, "m"));

    // The agent stops running (timer broken, host down): the age keeps growing at each scrape.
    clock += 3_600_000;
    text = await registry.metrics();
    assert.match(text, new RegExp(`^raftkv_backup_latest_age_seconds\\{${loc}\\} 3631$`, "m"));

    // A failing run counts as failed and keeps the newest backup's age going.
    const failing: MemberView = { identify: async () => ({ name: "raftkv-1", leader: "raftkv-1" }), snapshot: async () => Promise.reject(new Error("disk gone")) };
    await assert.rejects(run(failing, new Date(clock)), /backup from raftkv-1 failed: disk gone/);
    text = await registry.metrics();
    assert.match(text, new RegExp(`^raftkv_backup_runs_total\\{${loc},result="failed"\\} 1$`, "m"));
    assert.match(text, new RegExp(`^raftkv_backup_latest_age_seconds\\{${loc}\\} 3631$`, "m"));
  });

  it("the shipped member serves them on its metrics port", async () => {
    // Uses the state the previous test's runs left (the newest backup was taken at t0).
    const c = await TestCluster.start({ size: 3, extraFlags: [`--backup-state-dir=${path.join(dir, "state")}`] });
    try {
      const m = c.members[0]!;
      const before = Math.floor(Date.now() / 1000);
      const text = await (await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`)).text();
      const after = Math.floor(Date.now() / 1000);
      const age = /^raftkv_backup_latest_age_seconds\{location="s3:\/\/raftkv-backups\/m1\/"\} (\d+)$/m.exec(text);
      assert.ok(age, text.split("\n").filter((l) => l.startsWith("raftkv_backup")).join("\n") || "no raftkv_backup_* series");
      assert.ok(Number(age[1]) >= before - t0 / 1000 && Number(age[1]) <= after - t0 / 1000, `age ${age[1]} s, expected ${before - t0 / 1000}..${after - t0 / 1000}`);
      assert.match(text, /^raftkv_backup_runs_total\{location="s3:\/\/raftkv-backups\/m1\/",result="uploaded"\} 1$/m);
    } finally {
      await c.destroy();
    }
  });
});
