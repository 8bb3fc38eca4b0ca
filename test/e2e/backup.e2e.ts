/**
 * Backups and disaster recovery on real hosts (issue 13): the real index.ts under the engine's
 * mocks, its plans carried out on a lab of Debian 13 hosts over SSH through the stack's bastion;
 * an S3-compatible server (s3rver, in a namespace on the VPC bridge) stands in for S3, reached by
 * the hosts' AWS SDK through raftkv:backupS3Endpoint. Scheduled backups appear, uploaded by the
 * leader only; `pulumi destroy` takes a last backup and leaves the bucket; a fresh `up` with
 * raftkv:restoreFrom starts a new cluster holding the data.
 */
import { strict as assert } from "node:assert";
import { DEFAULT_METRICS_PORT } from "../../components/topology";
import { planUpdate, runProgram } from "./engine";
import { StackFixture } from "./lib/stack-fixture";
import { suiteLog } from "./lib/suite-log";

const VPC_CIDR = "10.82.0.0/16";
/** The engine runs stack "e2e": the cluster token, and so the backup prefix, is raftkv-e2e. */
const PREFIX = "raftkv-e2e/";
const log = suiteLog("backup e2e");

interface Listed {
  key: string;
  reason: string;
  member: string;
  revision: number;
}

describe("backups and disaster recovery end to end: scheduled backups to S3, destroy, restoreFrom", function () {
  this.timeout(15 * 60_000);
  this.bail(true);

  let stack: StackFixture;
  let firstBackupCount = 0;
  /** The bucket the program declares (kept after destroy: the restore reads it). */
  const bucket = (): string => {
    assert.ok(stack.bucket, "the program declared a bucket");
    return stack.bucket;
  };

  const config = (extra: Record<string, string> = {}): Record<string, string> =>
    stack.config({
      "raftkv:workers": "0",
      // Short, so two scheduled runs come quickly (the timer waits one interval before the first).
      "raftkv:backupInterval": "5s",
      ...extra,
    });

  /** A shell line on a master as an operator runs it: the member's env file and the backup settings loaded. */
  async function onMaster(name: string, line: string) {
    const r = await stack.host(name).exec(["bash", "-c", `set -a; . /etc/raftkv/raftkv.env; . /etc/raftkv/backup.env; set +a; ${line}`], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `${name}: ${line}: ${r.stderr}`);
    return r.stdout;
  }
  async function backups(bucketName: string, prefix = PREFIX): Promise<Listed[]> {
    const out = await onMaster("raftkv-1", `raftkvctl backup list --bucket ${bucketName} --prefix ${prefix}`);
    return out
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const [url, reason, member, revision] = l.split(", ");
        return { key: url!, reason: reason!, member: member!, revision: Number(revision) };
      });
  }
  async function leader(): Promise<string> {
    const out = await onMaster("raftkv-1", "raftkvctl endpoint status --cluster -w json");
    const rows = JSON.parse(out.replace(/"(member_id|leader)":\s*(\d+)/g, '"$1":"$2"')) as Array<{ Endpoint: string; Status: { header: { member_id: string }; leader: string } }>;
    const lead = rows.find((r) => r.Status.header.member_id === r.Status.leader);
    assert.ok(lead, "a member is the leader");
    const ip = new URL(lead.Endpoint).hostname;
    return stack.lab.hostByIp(ip)?.name ?? ip;
  }
  before(async () => {
    // s3rver in the public subnet: the hosts reach it through the VPC, the runner (creating buckets) directly.
    stack = await StackFixture.open({ labName: `bk${process.pid % 100000}`, vpcCidr: VPC_CIDR, keyLabel: "raftkv-bk-e2e", log, s3Port: 25000 });
  });

  after(async () => {
    await stack?.close();
    log("done");
  });

  it("up: the stack declares a versioned, encrypted, private bucket and a prefix-only role; the leader uploads a backup on every tick", async () => {
    await stack.up(config());
    const [b] = stack.resources("aws:s3/bucket:Bucket");
    assert.ok(b, "a bucket is declared");
    assert.equal(b.options.retainOnDelete, true, "the bucket outlives destroy by default");
    assert.deepEqual(stack.resources("aws:s3/bucketVersioning:BucketVersioning")[0]?.inputs["versioningConfiguration"], { status: "Enabled" });
    assert.equal((stack.resources("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")[0]?.inputs["rules"] as Array<{ applyServerSideEncryptionByDefault: { sseAlgorithm: string } }>)[0]!.applyServerSideEncryptionByDefault.sseAlgorithm, "AES256");
    const pab = stack.resources("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[0]!.inputs;
    assert.deepEqual([pab["blockPublicAcls"], pab["blockPublicPolicy"], pab["ignorePublicAcls"], pab["restrictPublicBuckets"]], [true, true, true, true]);
    assert.ok(stack.resources("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").length === 1);
    const policy = String(stack.resources("aws:iam/rolePolicy:RolePolicy")[0]!.inputs["policy"]);
    assert.ok(policy.includes(`"Resource":"arn:aws:s3:::${bucket()}/${PREFIX}*"`), `the role writes only ${PREFIX}: ${policy}`);
    const profile = stack.resources("aws:iam/instanceProfile:InstanceProfile")[0]!;
    const masters = stack.resources("aws:ec2/instance:Instance").filter((r) => /^raftkv-\d$/.test(r.name));
    assert.equal(masters.length, 3);
    for (const m of masters) {
      assert.equal(m.inputs["iamInstanceProfile"], profile.outputs["name"], `${m.name} runs with the backup role`);
    }
    const volumes = stack.resources("aws:ebs/volume:Volume");
    assert.equal(volumes.length, 3);
    for (const v of volumes) assert.notEqual(v.options.retainOnDelete, true, `${v.name} goes with the stack by default`);

    // Turning on retainDataVolumes later replaces nothing (retainOnDelete is an option of the volumes,
    // not an input): planned from a program run made while the backups below accumulate.
    const retainedRun = runProgram(config({ "raftkv:retainDataVolumes": "true" }), stack.state);
    retainedRun.catch(() => undefined);
    // Data, then scheduled backups: every one from the leader, the newest holding the data.
    await onMaster("raftkv-1", `printf '\\n${Array.from({ length: 40 }, (_, i) => `put /bk/key-${i} value-${i}`).join("\\n")}\\n\\n\\n' | raftkvctl txn`);
    const rev = Number(/"revision":"?(\d+)/.exec(await onMaster("raftkv-1", "raftkvctl get /bk/key-0 -w json"))![1]);
    const lead = await leader();
    let seen: Listed[] = [];
    const deadline = Date.now() + 120_000;
    for (;;) {
      seen = (await backups(bucket())).filter((b) => b.reason === "scheduled");
      if (seen.length >= 2 && seen[0]!.revision >= rev) break;
      assert.ok(Date.now() < deadline, `scheduled backups on every tick, the newest at revision >= ${rev}, within 120 s: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 3000));
    }
    firstBackupCount = seen.length;
    log(`${seen.length} scheduled backups, newest ${seen[0]!.key} (leader ${lead})`);
    for (const s of seen) assert.equal(s.member, lead, `${s.key} was uploaded by the leader`);
    const follower = ["raftkv-1", "raftkv-2", "raftkv-3"].find((n) => n !== lead)!;
    const journal = await onMaster(follower, "journalctl -u raftkv-backup.service --no-pager -o cat");
    // A follower's tick may come before the leader's first upload: then it names no backup yet.
    assert.match(journal, new RegExp(`backup skipped: ${follower} is not the leader \\(${lead} is\\); (newest backup s3://\\S+ is \\d+ s old|no backup under s3://\\S+ yet)`));
    const leaderJournal = await onMaster(lead, "journalctl -u raftkv-backup.service --no-pager -o cat");
    assert.match(leaderJournal, /backup uploaded: s3:\/\/\S+ \(scheduled, \d+ bytes, revision \d+, \d+ keys\) in [\d.]+ s; newest backup is 0 s old/);
    const retained = planUpdate(stack.state, await retainedRun);
    assert.deepEqual(retained.steps.filter((st) => st.op === "replace" || st.op === "delete").map((st) => st.urn), [], "nothing replaced or deleted");
    const metrics = await onMaster(lead, "cat /var/lib/raftkv/backup/raftkv_backup.prom");
    assert.match(metrics, /^raftkv_backup_latest_age_seconds \d+$/m);
    assert.match(metrics, /^raftkv_backup_runs_total\{result="uploaded"\} [1-9]\d*$/m);
    // The same series on the member's own /metrics, the age computed at scrape time.
    const scraped = await onMaster(lead, `node -e 'fetch("http://127.0.0.1:${DEFAULT_METRICS_PORT}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))'`);
    assert.match(scraped, /^raftkv_backup_latest_age_seconds\{location="[^"]+"\} \d+$/m);
    assert.match(scraped, /^raftkv_backup_runs_total\{location="[^"]+",result="uploaded"\} [1-9]\d*$/m);
  });

  it("pulumi destroy: a last backup is taken, the hosts go, the bucket and its backups stay", async () => {
    await onMaster("raftkv-1", "raftkvctl put /bk/last-word written-just-before-destroy");
    const plan = await stack.destroy();
    assert.equal(stack.resources("aws:ec2/instance:Instance").length, 0, "no instance left");
    for (const n of ["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-bastion"]) assert.equal(stack.applier.host(n), undefined, `${n} is terminated`);
    assert.ok(!plan.steps.some((s) => s.op === "delete" && s.old?.type.startsWith("aws:s3/") && s.old.options.retainOnDelete !== true), "no bucket resource is deleted");
  });

  const restored: Record<string, string> = { "raftkv:clusterToken": "raftkv-bk-e2e-2", "raftkv:retainDataVolumes": "true" };

  it("up with restoreFrom: a new cluster seeded from the newest backup serves every key, the last write included", async () => {
    restored["raftkv:restoreFrom"] = `s3://${bucket()}/${PREFIX}`;
    const oldBucket = bucket();
    await stack.up(config(restored));
    const all = await backups(oldBucket).catch(() => [] as Listed[]);
    assert.ok(all.some((b) => b.reason === "pre-change"), `destroy left a pre-change backup: ${JSON.stringify(all)}`);
    assert.ok(all.filter((b) => b.reason === "scheduled").length >= firstBackupCount, "the scheduled backups are still there");
    for (const m of ["raftkv-1", "raftkv-2", "raftkv-3"]) {
      const keys = (await onMaster(m, "raftkvctl get /bk/ --prefix --keys-only")).split("\n").filter((l) => l !== "");
      assert.equal(keys.length, 41, `${m} serves the 40 keys and the last word: ${keys.join(" ")}`);
      assert.equal(await onMaster(m, "raftkvctl get /bk/last-word --print-value-only"), "written-just-before-destroy\n");
    }
    const members = JSON.parse((await onMaster("raftkv-1", "raftkvctl member list -w json")).replace(/"ID":\s*(\d+)/g, '"ID":"$1"')) as { members: Array<{ name: string }> };
    assert.deepEqual(members.members.map((m) => m.name).sort(), ["raftkv-1", "raftkv-2", "raftkv-3"]);
    for (const v of stack.resources("aws:ebs/volume:Volume")) assert.equal(v.options.retainOnDelete, true, `raftkv:retainDataVolumes keeps ${v.name}`);
  });

  it("a roll (certGeneration bump) takes one pre-change backup first, holding the newest write", async () => {
    await onMaster("raftkv-2", "raftkvctl put /bk/before-roll yes");
    const rev = Number(/"revision":"?(\d+)/.exec(await onMaster("raftkv-2", "raftkvctl get /bk/before-roll -w json"))![1]);
    const before = Date.now();
    await stack.up(config({ ...restored, "raftkv:certGeneration": "2" }));
    const pre = (await backups(bucket(), "raftkv-bk-e2e-2/")).filter((b) => b.reason === "pre-change");
    assert.equal(pre.length, 1, `one pre-change backup for the three rolls: ${JSON.stringify(pre)}`);
    assert.ok(pre[0]!.revision >= rev, `it holds revision ${rev}: ${pre[0]!.key}`);
    const stamp = /\/(\d{8}T\d{6}Z)-/.exec(pre[0]!.key)![1]!;
    const taken = Date.parse(`${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`);
    assert.ok(taken >= before - 1000, "taken during this up");
  });
});
