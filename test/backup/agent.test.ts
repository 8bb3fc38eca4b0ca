/**
 * The backup agent against a real S3-compatible server (s3rver, through @aws-sdk/client-s3 as on
 * the hosts): leader gating, object naming, retention that never removes the newest backup, the
 * pre-change de-duplication, metrics, and fetching the newest backup under a prefix back into a
 * file that `snapshot status` reads.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fetchSnapshot, METRICS_FILE, runBackup } from "../../node-runtime/backup/agent";
import { backupKey, expiredBackups, parseBackupKey, parseS3Url } from "../../node-runtime/backup/naming";
import { runCtl } from "../../node-runtime/ctl/program";
import { FakeMember, snapshotBytes, useS3Backups } from "./support";

describe("backup agent (s3rver through the AWS SDK)", function () {
  this.timeout(120_000);
  const s3 = useS3Backups();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-backup-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const opts = (prefix: string, extra: Partial<Parameters<typeof runBackup>[2]> = {}) => ({
    bucket: s3.bucket,
    prefix,
    reason: "scheduled" as const,
    ifLeader: true,
    retentionDays: 7,
    workDir: path.join(dir, "work"),
    stateDir: path.join(dir, "state"),
    ...extra,
  });

  it("a follower's scheduled run uploads nothing and reports the newest backup's age; the leader's uploads a snapshot etcd tools read", async () => {
    const follower = new FakeMember("raftkv-2", "raftkv-1");
    const skipped = await runBackup(follower, s3.store, opts("c1"));
    assert.equal(skipped.uploaded, false);
    assert.equal(follower.snapshots, 0);
    assert.match(skipped.line, /raftkv-2 is not the leader \(raftkv-1 is\); no backup under s3:\/\/raftkv-backups\/c1\/ yet/);

    const t0 = new Date("2026-12-06T07:00:00Z");
    const leader = new FakeMember("raftkv-1", "raftkv-1", 5);
    const up = await runBackup(leader, s3.store, opts("c1", { now: () => t0 }));
    assert.equal(up.uploaded, true);
    assert.equal(up.key, "c1/20261206T070000Z-scheduled-raftkv-1-rev6.db");
    assert.match(up.line, /^backup uploaded: s3:\/\/raftkv-backups\/c1\/20261206T070000Z-scheduled-raftkv-1-rev6\.db \(scheduled, \d+ bytes, revision 6, \d+ keys\) in [\d.]+ s; newest backup is 0 s old, it is the first backup$/);
    assert.deepEqual((await s3.store.list(s3.bucket, "c1/")).map((o) => o.key), [up.key]);
    assert.deepEqual(fs.readdirSync(path.join(dir, "work")), [], "the staged snapshot is removed");

    const later = await runBackup(follower, s3.store, opts("c1", { now: () => new Date(t0.getTime() + 90_000) }));
    assert.match(later.line, /newest backup s3:\/\/raftkv-backups\/c1\/20261206T070000Z-scheduled-raftkv-1-rev6\.db is 90 s old$/);
    const metrics = fs.readFileSync(path.join(dir, "state", METRICS_FILE), "utf8");
    assert.match(metrics, /^raftkv_backup_latest_age_seconds 90$/m);
    assert.match(metrics, /^raftkv_backup_runs_total\{result="uploaded"\} 1$/m);
    assert.match(metrics, /^raftkv_backup_runs_total\{result="skipped"\} 2$/m);
    assert.match(metrics, /^raftkv_backup_last_revision 6$/m);

    // Fetch the newest under the prefix and read it with `snapshot status`.
    const file = path.join(dir, "restore.db");
    const r = await fetchSnapshot(`s3://${s3.bucket}/c1/`, () => s3.store, file);
    assert.equal(r.from, `s3://${s3.bucket}/${up.key}`);
    let out = "";
    const code = await runCtl(["snapshot", "status", file, "-w", "json"], { out: (t) => void (out += t), err: () => undefined }, {});
    assert.equal(code, 0);
    assert.match(out, new RegExp(`"revision":6,"totalKey":${up.keys},"totalSize":${up.size}}`));
  });

  it("retention removes backups older than the retention, never the newest; pre-change runs are de-duplicated", async () => {
    const leader = new FakeMember("raftkv-1", "raftkv-1");
    const day = 86_400_000;
    const t0 = Date.parse("2026-11-01T00:00:00Z");
    for (const d of [0, 1, 2]) await runBackup(leader, s3.store, opts("c2", { now: () => new Date(t0 + d * day), retentionDays: 30 }));
    assert.equal((await s3.store.list(s3.bucket, "c2/")).length, 3);
    // Ten days later with a 7-day retention: all three are older than 7 days; only the new one stays.
    const r = await runBackup(leader, s3.store, opts("c2", { now: () => new Date(t0 + 10 * day) }));
    assert.equal(r.pruned.length, 3);
    assert.deepEqual((await s3.store.list(s3.bucket, "c2/")).map((o) => o.key), [r.key]);
    // The newest is kept even when it is itself past the retention.
    assert.deepEqual(expiredBackups([{ key: r.key!, size: 1 }], new Date(t0 + 100 * day), 7), []);

    const pre = opts("c2", { reason: "pre-change" as const, ifLeader: false, skipIfNewerSec: 600, now: () => new Date(t0 + 11 * day) });
    const follower = new FakeMember("raftkv-3", "raftkv-1");
    const first = await runBackup(follower, s3.store, pre);
    assert.equal(first.uploaded, true, "a pre-change backup is taken from whichever member the change runs on");
    const second = await runBackup(leader, s3.store, { ...pre, now: () => new Date(t0 + 11 * day + 300_000) });
    assert.equal(second.uploaded, false);
    assert.match(second.line, /a pre-change backup \(s3:\/\/raftkv-backups\/c2\/.*-pre-change-raftkv-3-rev4\.db\) is younger than 600 s/);
  });

  it("names and parses keys and S3 URLs; refuses what is not one", () => {
    const key = backupKey("team/prod", new Date("2026-01-02T03:04:05.678Z"), "pre-change", "raftkv-7", 42);
    assert.equal(key, "team/prod/20260102T030405Z-pre-change-raftkv-7-rev42.db");
    assert.deepEqual(parseBackupKey(key), { taken: new Date("2026-01-02T03:04:05Z"), reason: "pre-change", member: "raftkv-7", revision: 42 });
    assert.equal(parseBackupKey("team/prod/notes.txt"), undefined);
    assert.deepEqual(parseS3Url("s3://my-bucket/a/b.db"), { bucket: "my-bucket", key: "a/b.db" });
    assert.throws(() => parseS3Url("https://my-bucket/a"), /is not an S3 URL/);
  });

  it("raftkvctl backup fetch copies a local file and says clearly when S3 has nothing under a prefix", async () => {
    const src = path.join(dir, "local.db");
    fs.writeFileSync(src, snapshotBytes(2));
    const io = { out: "", err: "" };
    const sink = { out: (t: string) => void (io.out += t), err: (t: string) => void (io.err += t) };
    assert.equal(await runCtl(["backup", "fetch", src, path.join(dir, "copy.db")], sink, {}), 0);
    assert.deepEqual(fs.readFileSync(path.join(dir, "copy.db")), fs.readFileSync(src));
    const code = await runCtl(["backup", "fetch", `s3://${s3.bucket}/nothing-here/`, path.join(dir, "x.db"), `--s3-endpoint=${s3.endpoint}`], sink, {});
    assert.equal(code, 1);
    assert.equal(io.err, `Error: no backup under s3://${s3.bucket}/nothing-here/\n`);
  });
});
