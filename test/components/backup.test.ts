/**
 * The backup side of the deployment: settings and the IAM policy (pure), the scripts and units it
 * renders (bash -n, shellcheck, systemd-analyze), and those scripts run for real against a
 * temporary root: the agent's install writes a 0600 env file and enables the timer; the
 * pre-change step calls the agent as documented and a failed backup stops the change; a restore
 * step turns a real snapshot into a member data directory with the real `raftkv` bundle.
 */
import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { backupPolicyDocument } from "../../components/backup";
import { BACKUP, renderBackupEnv, renderBackupInstallScript, renderBackupRemoveScript, renderBackupService, renderBackupTimer, renderBeforeChangeFunction, renderRestoreStep } from "../../components/backupHost";
import { resolveBackupSettings } from "../../components/backupSettings";
import { HOST, renderMemberUnit } from "../../components/hostFiles";
import { renderBackupBeforeReplaceScript, renderMemberInstallScript, renderMemberLeaveScript, renderMemberRollScript } from "../../components/hostScripts";
import { joinPlan } from "../../components/membership";
import { planHostMembers } from "../../components/topology";
import { encodeCommand, KvStore, type KvCommand } from "../../node-runtime/kv";
import { etcdSnapshotChunks } from "../../node-runtime/kv/etcd-backend/export";
import { readMeta } from "../../node-runtime/storage";

const IPS = ["10.42.0.10", "10.42.1.10", "10.42.2.10", "10.42.0.11", "10.42.1.11"];
const plans = joinPlan(planHostMembers(IPS));
const ENV = renderBackupEnv({ bucket: "raftkv-backup-bucket-1a2b3c4", prefix: "raftkv-dev/", region: "eu-west-1", retentionDays: 7 });

describe("backup settings and policy", () => {
  const ctx = { clusterToken: "raftkv-dev", hasSecretAccessKey: false };
  it("defaults: on, every 30 min, 7 days, the bucket kept, the volumes not; prefix = cluster token", () => {
    const s = resolveBackupSettings({}, ctx);
    assert.deepEqual(
      [s.enabled, s.interval, s.retentionDays, s.retainBucket, s.retainDataVolumes, s.prefix, s.restoreFrom],
      [true, "30min", 7, true, false, "raftkv-dev/", undefined],
    );
  });
  it("restoreFrom: s3 URLs and absolute paths; anything else refused with the reason", () => {
    assert.deepEqual(resolveBackupSettings({ restoreFrom: "s3://old-bucket/raftkv-prod/" }, ctx).restoreFrom, { kind: "s3", url: "s3://old-bucket/raftkv-prod/", bucket: "old-bucket", key: "raftkv-prod/" });
    assert.deepEqual(resolveBackupSettings({ restoreFrom: "/backups/x.db" }, ctx).restoreFrom, { kind: "file", path: "/backups/x.db" });
    assert.throws(() => resolveBackupSettings({ restoreFrom: "x.db" }, ctx), /use s3:\/\/bucket\/key/);
    assert.throws(() => resolveBackupSettings({ restoreFrom: "s3://B/x" }, ctx), /is not an S3 URL/);
    assert.throws(() => resolveBackupSettings({ backupInterval: "30 minutes" }, ctx), /raftkv:backupInterval/);
    assert.throws(() => resolveBackupSettings({ backupS3AccessKeyId: "AK" }, ctx), /set together/);
  });
  it("the role may write, read and list only the cluster's prefix, and read only the restore source", () => {
    const doc = JSON.parse(backupPolicyDocument("bkt", "raftkv-dev/", { bucket: "old", key: "raftkv-prod/" })) as { Statement: Array<{ Action: string | string[]; Resource: string; Condition?: unknown }> };
    assert.deepEqual(
      doc.Statement.map((s) => [s.Action, s.Resource, s.Condition]),
      [
        [["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], "arn:aws:s3:::bkt/raftkv-dev/*", undefined],
        ["s3:ListBucket", "arn:aws:s3:::bkt", { StringLike: { "s3:prefix": "raftkv-dev/*" } }],
        ["s3:GetObject", "arn:aws:s3:::old/raftkv-prod/*", undefined],
        ["s3:ListBucket", "arn:aws:s3:::old", { StringLike: { "s3:prefix": "raftkv-prod/*" } }],
      ],
    );
    const noVersions = JSON.stringify(doc);
    assert.ok(!/DeleteObjectVersion|s3:\*|PutBucket/.test(noVersions), "no version deletes, no bucket changes: history survives a compromised host");
  });
});

describe("backup scripts and units (static checks)", function () {
  this.timeout(60_000);
  it("every script passes bash -n and shellcheck; the units pass systemd-analyze verify", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "raftkv-bk-lint-"));
    try {
      const scripts: Record<string, string> = {
        "backup-install.sh": renderBackupInstallScript({ interval: "30min", revision: "r1" }),
        "backup-install-off.sh": renderBackupInstallScript({ interval: undefined, revision: "r1" }),
        "backup-remove.sh": renderBackupRemoveScript(),
      };
      for (const j of plans) {
        const base = { join: j, clusterToken: "raftkv-dev", uploadDir: "/home/admin", revision: "abc", backupBeforeChange: true };
        const restore = j.clusterState === "new" ? { beforeFirstStart: renderRestoreStep(j, "s3://old-bucket/raftkv-prod/", "raftkv-dev") } : {};
        scripts[`${j.member.name}-install.sh`] = renderMemberInstallScript("create", { ...base, ...restore });
        scripts[`${j.member.name}-roll.sh`] = renderMemberRollScript("update", base);
        if (j.clusterState === "existing") scripts[`${j.member.name}-leave.sh`] = renderMemberLeaveScript(base);
        scripts[`${j.member.name}-backup-before-replace.sh`] = renderBackupBeforeReplaceScript({ leaving: j.member, runner: plans[j === plans[0] ? 1 : 0]!.member });
      }
      const files = Object.entries(scripts).map(([n, t]) => {
        const f = path.join(dir, n);
        writeFileSync(f, t);
        const syntax = spawnSync("bash", ["-n", f], { encoding: "utf8" });
        assert.equal(syntax.status, 0, `${n}: ${syntax.stderr}`);
        return f;
      });
      const sc = spawnSync("shellcheck", ["--severity=style", ...files], { encoding: "utf8" });
      assert.equal(sc.status, 0, sc.stdout + sc.stderr);
      writeFileSync(path.join(dir, "raftkv-backup.service"), renderBackupService());
      writeFileSync(path.join(dir, "raftkv-backup.timer"), renderBackupTimer("20s"));
      const v = spawnSync("systemd-analyze", ["verify", path.join(dir, "raftkv-backup.timer"), path.join(dir, "raftkv-backup.service")], { encoding: "utf8" });
      assert.equal(v.status, 0, v.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("the roll takes its backup only when it is about to restart or reload; without backups nothing is added", () => {
    const roll = renderMemberRollScript("update", { join: plans[0]!, revision: "r", backupBeforeChange: true });
    assert.ok(roll.indexOf("backup_before_change \"$LOCAL_ENDPOINT\"") < roll.indexOf(`systemctl restart ${HOST.unitName}`));
    assert.ok(!renderMemberRollScript("update", { join: plans[0]!, revision: "r" }).includes("backup_before_change"));
    assert.ok(!renderMemberLeaveScript({ join: plans[4]! }).includes("backup_before_change"));
    const join = renderMemberInstallScript("create", { join: plans[3]!, clusterToken: "t", uploadDir: "/home/admin", revision: "r", backupBeforeChange: true });
    assert.ok(join.indexOf("backup_before_change https://") < join.indexOf("member add"), "a joining member backs up before it is added");
  });

  it("with backups on, the member serves the agent's state on /metrics: its unit passes --backup-state-dir; without, nothing", () => {
    const on = renderMemberUnit(plans[0]!, { clusterToken: "t", backupStateDir: BACKUP.stateDir });
    assert.match(on, new RegExp(` --backup-state-dir=${BACKUP.stateDir}( |$)`, "m"));
    assert.doesNotMatch(renderMemberUnit(plans[0]!, { clusterToken: "t" }), /backup-state-dir/);
  });
});

describe("backup scripts executed against a temporary root", function () {
  this.timeout(120_000);
  let root: string;
  let stubs: string;
  const calls = () => (existsSync(path.join(root, "calls.log")) ? readFileSync(path.join(root, "calls.log"), "utf8") : "");

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "raftkv-bk-root-"));
    stubs = path.join(root, "stub-bin");
    mkdirSync(stubs);
    for (const cmd of ["systemctl", "chown"]) {
      writeFileSync(path.join(stubs, cmd), `#!/bin/sh\necho "${cmd} $*" >> "${root}/calls.log"\nif [ "${cmd} $1" = "systemctl is-active" ]; then exit 0; fi\n`);
      chmodSync(path.join(stubs, cmd), 0o755);
    }
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const run = (script: string, stdin = "") =>
    spawnSync("bash", ["-c", script, "test"], { input: stdin, encoding: "utf8", env: { ...process.env, PATH: `${stubs}:${process.env["PATH"]}`, RAFTKV_ROOT: root } });

  it("agent install: the env file 0600 from stdin, service and timer, the timer enabled; without an interval the timer goes", () => {
    const r = run(renderBackupInstallScript({ interval: "20s", revision: "r1" }), ENV);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(path.join(root, BACKUP.envFile), "utf8"), ENV);
    assert.equal((statSync(path.join(root, BACKUP.envFile)).mode & 0o777).toString(8), "600");
    assert.match(readFileSync(path.join(root, BACKUP.timerPath), "utf8"), /^OnUnitActiveSec=20s$/m);
    assert.match(readFileSync(path.join(root, BACKUP.servicePath), "utf8"), /^ExecStart=\/usr\/bin\/node \/opt\/raftkv\/raftkvctl\.cjs backup run --if-leader --reason scheduled$/m);
    assert.match(calls(), /systemctl enable raftkv-backup\.timer\nsystemctl restart raftkv-backup\.timer/);
    assert.notEqual(run(renderBackupInstallScript({ interval: "20s", revision: "r1" }), "no settings\n").status, 0, "refuses stdin without the settings");
    const off = run(renderBackupInstallScript({ interval: undefined, revision: "r2" }), ENV);
    assert.equal(off.status, 0, off.stderr);
    assert.ok(!existsSync(path.join(root, BACKUP.timerPath)));
    assert.match(calls(), /systemctl disable --now raftkv-backup\.timer/);
  });

  it("before a change: the agent runs with the env file, reason pre-change, de-duplicated, no metrics; a failure stops the script; no env file, no backup", () => {
    // A stand-in for `ctl`: records its arguments and the variables the agent would read.
    const fake = (exit: number) => `log() { echo "$*" >&2; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ctl() { echo "ctl $* bucket=$RAFTKV_BACKUP_BUCKET state=\${RAFTKV_BACKUP_STATE_DIR:-unset} work=$RAFTKV_BACKUP_WORK_DIR" >> "$ROOT/calls.log"; return ${exit}; }
ROOT="$RAFTKV_ROOT"
${renderBeforeChangeFunction()}
backup_before_change https://10.42.0.10:2379
echo changed >> "$ROOT/calls.log"
`;
    const skipped = run(fake(0));
    assert.equal(skipped.status, 0, skipped.stderr);
    assert.equal(calls(), "changed\n", "no env file: no backup");
    mkdirSync(path.join(root, "etc/raftkv"), { recursive: true });
    writeFileSync(path.join(root, BACKUP.envFile), ENV);
    const ok = run(fake(0));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(
      calls(),
      `changed\nctl https://10.42.0.10:2379 backup run --reason pre-change --skip-if-newer ${BACKUP.preChangeWindowSec} bucket=raftkv-backup-bucket-1a2b3c4 state=unset work=${root}${BACKUP.preChangeWorkDir}\nchanged\n`,
    );
    const failed = run(fake(1));
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /FAIL: the backup before the change failed/);
    assert.equal(calls().split("\n").filter((l) => l === "changed").length, 2, "the change did not run after the failed backup");
  });

  it("leave scripts: a resize down backs up through the staying members before the removal and stops on a failed backup; the backup before a host goes runs on a member that stays", () => {
    // The installed raftkvctl: records its arguments; `backup run` fails when FAIL_BACKUP is set.
    mkdirSync(path.join(root, "opt/raftkv"), { recursive: true });
    writeFileSync(
      path.join(root, HOST.ctlBundle),
      `const fs = require("fs");
fs.appendFileSync(${JSON.stringify(path.join(root, "ctl.log"))}, process.argv.slice(2).filter((a) => !/^--(cacert|cert|key)=/.test(a)).join(" ") + "\\n");
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
if (args[0] === "backup") process.exit(process.env.FAIL_BACKUP ? 1 : 0);
if (args[0] === "endpoint") process.exit(process.env.NO_MEMBER ? 1 : 0);
if (args[0] === "member" && args[1] === "list") process.stdout.write('{"members":[{"ID":1,"name":"raftkv-1","peerURLs":["https://10.42.0.10:2380"]},{"ID":77,"name":"raftkv-5","peerURLs":["https://10.42.1.11:2380"]}]}');
`,
    );
    mkdirSync(path.join(root, "etc/raftkv"), { recursive: true });
    writeFileSync(path.join(root, BACKUP.envFile), ENV);
    const ctlLog = () => readFileSync(path.join(root, "ctl.log"), "utf8");
    const staying = "https://10.42.0.10:2379,https://10.42.1.10:2379,https://10.42.2.10:2379,https://10.42.0.11:2379";

    const ok = run(renderMemberLeaveScript({ join: plans[4]!, backupBeforeChange: true }));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(
      ctlLog(),
      `--endpoints=${staying} backup run --reason pre-change --skip-if-newer ${BACKUP.preChangeWindowSec}\n--endpoints=${staying} member list -w json\n--endpoints=${staying} member remove 4d\n`,
    );

    rmSync(path.join(root, "ctl.log"));
    const failed = spawnSync("bash", ["-c", renderMemberLeaveScript({ join: plans[4]!, backupBeforeChange: true }), "test"], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${stubs}:${process.env["PATH"]}`, RAFTKV_ROOT: root, FAIL_BACKUP: "1" },
    });
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /the backup before the change failed/);
    assert.doesNotMatch(ctlLog(), /member remove/, "no removal without its backup");

    // Before raftkv-1's host goes (replaced, or destroy): a backup on raftkv-2, through raftkv-2.
    const before = (env: Record<string, string>) => {
      rmSync(path.join(root, "ctl.log"), { force: true });
      return spawnSync("bash", ["-c", renderBackupBeforeReplaceScript({ leaving: plans[0]!.member, runner: plans[1]!.member }), "test"], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${stubs}:${process.env["PATH"]}`, RAFTKV_ROOT: root, ...env },
      });
    };
    const local = "--endpoints=https://127.0.0.1:2379";
    const taken = before({});
    assert.equal(taken.status, 0, taken.stderr);
    assert.equal(ctlLog(), `${local} --dial-timeout=3s --command-timeout=5s endpoint status\n${local} backup run --reason pre-change --skip-if-newer ${BACKUP.preChangeWindowSec}\n`);
    const refused = before({ FAIL_BACKUP: "1" });
    assert.equal(refused.status, 1, "a failed backup stops the replacement while the cluster answers");
    assert.match(refused.stderr, /the backup before the change failed/);
    const gone = before({ NO_MEMBER: "1", FAIL_BACKUP: "1" });
    assert.equal(gone.status, 0, gone.stderr);
    assert.match(gone.stderr, /raftkv-2 does not answer: no backup before raftkv-1's host goes/);
    assert.doesNotMatch(ctlLog(), /backup run/);
  });

  it("restore step: a real snapshot through the real raftkv bundle into the member's data directory, with its flags; a member with data is left alone", function () {
    this.timeout(180_000);
    const dist = path.join(root, "opt/raftkv");
    execFileSync(process.execPath, [path.join(__dirname, "../../scripts/build.mjs"), "--outdir", dist, "raftkv", "raftkvctl"], { stdio: "pipe" });
    const kv = new KvStore();
    for (let i = 1; i <= 20; i++) kv.applyEntry(i, encodeCommand({ type: "put", req: { key: Buffer.from(`/k/${i}`), value: Buffer.from(`v${i}`) } } as KvCommand));
    const snap = path.join(root, "home-admin-restore.db");
    writeFileSync(snap, Buffer.concat([...etcdSnapshotChunks({ kv: kv.view(), members: [], removedMembers: [] }).chunks]));
    mkdirSync(path.join(root, HOST.dataDir), { recursive: true });
    // A local source is the path Pulumi uploaded the file to (used as given, not under ROOT).
    const step = renderRestoreStep(plans[1]!, snap, "raftkv-dev", process.execPath);
    const script = `set -euo pipefail\nROOT="$RAFTKV_ROOT"\nlog() { echo "$*" >&2; }\nfail() { echo "FAIL: $*" >&2; exit 1; }\n${step}\n`;
    const r = run(script);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /restored snapshot .* member [0-9a-f]+ of cluster [0-9a-f]+, revision 21, .* 20 keys/);
    const meta = readMeta(path.join(root, HOST.dataDir));
    return meta.then((m) => {
      assert.equal(m?.name, "raftkv-2");
      assert.equal(m?.clusterToken, "raftkv-dev");
      assert.match(calls(), new RegExp(`chown -R raftkv:raftkv ${root}${HOST.dataDir}`));
      const again = run(script);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stderr, /raftkv-2 already has data: not restoring/);
    });
  });
});
