/**
 * The deployment, run the way a user runs it (issue 10): the real index.ts under the engine's
 * mocks, each plan carried out on a lab of real Debian 13 hosts (systemd, sshd, cloud-init),
 * every command over real SSH through the bastion the stack creates. One lab for the whole
 * file; the scenarios build on each other in order (a failure stops the rest), each with a
 * background writer and a linearizable reader through the load balancer, counts printed, and
 * every member's data compared at the end.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { hostAddress, publicSubnetCidr } from "../../components/addressing";
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from "../helpers/s3-server";
import { Applier, type StepReport } from "./apply";
import type { LabHost, Plan, RecordedResource, StackState } from "./apply/contract";
import { planDestroy, planUpdate, runProgram, summarizePlan as summarize } from "./engine";
import { openLab, type Lab, type NetNs } from "./lab";
import { compareMembers, Workload, type WorkloadFinal } from "./workload";

const VPC_CIDR = "10.77.0.0/16";
const REGION = "eu-west-1";
// S3 for the backups (s3rver in a namespace of the public subnet, as in backup.e2e.ts).
const S3_IP = hostAddress(publicSubnetCidr(VPC_CIDR), 200);
const S3_PORT = 25001;
const INSTANCE = "aws:ec2/instance:Instance";
const COMMAND = "command:remote:Command";

interface Counts {
  scenario: string;
  writesOk: number;
  writesFailed: number;
  readsOk: number;
  readsFailed: number;
  stale: number;
  errors: string[];
}

const report: Counts[] = [];
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
const log = (line: string) => console.log(`      [e2e ${elapsed()}] ${line}`);

function record(scenario: string, f: WorkloadFinal): Counts {
  const c = { scenario, writesOk: f.writes.ok, writesFailed: f.writes.failed, readsOk: f.reads.ok, readsFailed: f.reads.failed, stale: f.reads.stale, errors: f.errors };
  report.push(c);
  log(`${scenario}: writes ${c.writesOk} ok / ${c.writesFailed} failed, linearizable reads ${c.readsOk} ok / ${c.readsFailed} failed / ${c.stale} stale${c.errors.length ? `; errors: ${c.errors.join(" | ")}` : ""}`);
  return c;
}

describe("deployment end to end: Pulumi program -> real hosts over SSH", function () {
  this.timeout(20 * 60_000);
  this.bail(true);

  let lab: Lab;
  let applier: Applier;
  let state: StackState | undefined;
  let keyDir: string;
  let sshPublicKey: string;
  let sshPrivateKey: string;
  let workload: Workload | undefined;
  let scenarioNo = 0;
  let workloadName = "";
  let s3ns: NetNs | undefined;
  let s3: S3Server | undefined;

  const config = (masters: number, certGeneration: number): Record<string, string> => ({
    "aws:region": REGION,
    "raftkv:masters": String(masters),
    "raftkv:workers": "1",
    "raftkv:vpcCidr": VPC_CIDR,
    "raftkv:adminCidrs": JSON.stringify([`${lab.runnerIp}/32`]),
    "raftkv:sshPublicKey": sshPublicKey,
    "raftkv:sshPrivateKey": sshPrivateKey,
    "raftkv:dataVolumeGiB": "1",
    // Backups on (the default), to s3rver: every change takes its pre-change backup, and the
    // shrink below proves that removing a dead host never needs it, backup agent included.
    // Scheduled backups are backup.e2e.ts's subject: the default interval never fires here.
    "raftkv:backupS3Endpoint": s3!.endpoint,
    "raftkv:backupS3AccessKeyId": S3RVER_CREDENTIALS.accessKeyId,
    "raftkv:backupS3SecretAccessKey": S3RVER_CREDENTIALS.secretAccessKey,
    "raftkv:certGeneration": String(certGeneration),
  });

  /** `pulumi up` with this config: run the program, plan against the state, apply. */
  async function up(cfg: Record<string, string>): Promise<Plan> {
    const next = await runProgram(cfg, state);
    const plan = planUpdate(state, next);
    // The bucket the program declares exists in s3rver before any host talks to it (S3 creates it first).
    const bucket = next.resources.find((r) => r.type === "aws:s3/bucket:Bucket");
    if (bucket !== undefined) await createBucket(String(bucket.outputs["bucket"]));
    log(`pulumi up: ${summarize(plan)}`);
    state = await applier.apply(plan, state);
    return plan;
  }

  const s3Client = () => new S3Client({ region: REGION, endpoint: s3!.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
  async function createBucket(name: string): Promise<void> {
    const client = s3Client();
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } catch (e) {
      if ((e as Error).name !== "BucketAlreadyOwnedByYou" && (e as Error).name !== "BucketAlreadyExists") throw e;
    } finally {
      client.destroy();
    }
  }
  /** The backups' object keys in the stack's bucket. */
  async function backupKeys(): Promise<string[]> {
    const bucket = (state?.resources ?? []).find((r) => r.type === "aws:s3/bucket:Bucket");
    assert.ok(bucket, "the stack has a backup bucket");
    const client = s3Client();
    try {
      const out = await client.send(new ListObjectsV2Command({ Bucket: String(bucket.outputs["bucket"]) }));
      return (out.Contents ?? []).map((o) => o.Key!).sort();
    } finally {
      client.destroy();
    }
  }

  const instances = (): RecordedResource[] => (state?.resources ?? []).filter((r) => r.type === INSTANCE);
  const masterNames = (): string[] => instances().map((r) => r.name).filter((n) => /^raftkv-\d+$/.test(n)).sort();
  const host = (name: string): LabHost => {
    const h = applier.host(name);
    assert.ok(h, `no lab host ${name}`);
    return h;
  };
  const worker = () => host("raftkv-worker-1");
  const nlb = () => {
    const lbs = applier.loadBalancers();
    assert.equal(lbs.length, 1, "one load balancer");
    return lbs[0]!;
  };

  async function startWorkload(name: string): Promise<Workload> {
    scenarioNo++;
    workloadName = name;
    const w = await Workload.start({ worker: worker(), address: nlb().ips[0]!, serverName: nlb().dnsName, prefix: `/e2e/s${scenarioNo}/` });
    workload = w;
    await w.waitForWrites(5);
    return w;
  }

  async function finishWorkload(): Promise<Counts> {
    const name = workloadName;
    const w = workload!;
    workload = undefined;
    const final = await w.stop();
    const counts = record(name, final);
    const members = await compareMembers(masterNames().map(host), w.prefix, final.acked);
    log(`${name}: every member holds the same ${members[0]!.keys} keys: ${members.map((m) => `${m.host}@rev${m.revision}`).join(", ")}`);
    return counts;
  }

  async function memberCount(): Promise<number> {
    const r = await host("raftkv-1").exec(["raftkvctl", "member", "list", "-w", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout.replace(/"ID":\s*(\d+)/g, '"ID":"$1"')) as { members: unknown[] }).members.length;
  }

  /** Runs a shell line on the worker as an operator would, with the env file the install wrote. */
  async function onWorker(line: string) {
    return worker().exec(["bash", "-c", `set -a; . /etc/raftkv/raftkv.env; set +a; ${line}`], { timeoutMs: 60_000 });
  }

  /** The roll steps of the last run never overlapped. */
  function assertRolledOneAtATime(runs: StepReport[], expected: number): void {
    const rolls = runs.filter((r) => /::raftkv-\d+-roll$/.test(r.urn)).sort((a, b) => a.startedMs - b.startedMs);
    assert.equal(rolls.length, expected, `${expected} member rolls ran`);
    for (let i = 1; i < rolls.length; i++) {
      assert.ok(rolls[i]!.startedMs >= rolls[i - 1]!.endedMs, `${rolls[i]!.urn} started before ${rolls[i - 1]!.urn} finished`);
    }
  }

  before(async () => {
    keyDir = mkdtempSync(path.join(os.tmpdir(), "raftkv-e2e-key-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "raftkv-e2e", "-f", path.join(keyDir, "id")]);
    sshPrivateKey = readFileSync(path.join(keyDir, "id"), "utf8");
    sshPublicKey = readFileSync(path.join(keyDir, "id.pub"), "utf8").trim();
    lab = await openLab({ name: `e2e${process.pid % 10000}`, vpcCidr: VPC_CIDR, publicCidr: publicSubnetCidr(VPC_CIDR) });
    applier = new Applier({ lab, log: (l) => (process.env["RAFTKV_E2E_VERBOSE"] ? log(l) : undefined) });
    s3ns = await lab.addNamespace("s3", [S3_IP]);
    s3 = await startS3Server({ address: S3_IP, port: S3_PORT, bucket: "raftkv-e2e-unused", spawner: (argv) => s3ns!.spawn(argv, { stdio: ["ignore", "pipe", "pipe"] }) });
    process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] = "true";
  });

  after(async () => {
    if (workload !== undefined) {
      // A scenario failed with its workload running: its counts still belong in the report.
      const w = workload;
      workload = undefined;
      await w.stop().then((f) => record(`${workloadName} (failed)`, f), () => w.kill());
    }
    await applier?.close();
    await s3?.stop();
    await s3ns?.close();
    await lab?.close();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    if (report.length > 0) {
      console.log("\n      failed requests per scenario (writes failed / reads failed / stale reads, of writes ok / reads ok):");
      for (const c of report) console.log(`        ${c.scenario.padEnd(34)} ${c.writesFailed} / ${c.readsFailed} / ${c.stale}   of ${c.writesOk} / ${c.readsOk}`);
    }
    console.log(`      e2e suite took ${elapsed()}`);
  });

  it("up: 3 masters and 1 worker through the bastion the stack creates; etcdctl through the load balancer", async () => {
    await up(config(3, 1));
    // The runner reached no private host directly: every command it ran went through a proxy it can reach.
    for (const c of state!.resources.filter((r) => r.type === COMMAND)) {
      const conn = c.inputs["connection"] as { host: string; proxy?: { host: string } };
      assert.ok(lab.runnerCanReach(conn.proxy?.host ?? conn.host), `${c.name} connects via ${conn.proxy?.host ?? conn.host}, which the runner cannot reach`);
    }
    const bastions = instances().filter((r) => r.inputs["associatePublicIpAddress"] === true);
    assert.equal(bastions.length, 1, "the stack created one instance with a public address: the bastion");
    assert.deepEqual(masterNames(), ["raftkv-1", "raftkv-2", "raftkv-3"]);
    assert.equal(await memberCount(), 3);

    const w = await startWorkload("up");
    // What a user types on a worker: Debian's etcdctl and the raftkvctl the install put there.
    for (const ctl of ["etcdctl", "raftkvctl"]) {
      const put = await onWorker(`${ctl} put name john`);
      assert.equal(put.code, 0, `${ctl}: ${put.stderr}`);
      assert.equal(put.stdout, "OK\n");
      const get = await onWorker(`${ctl} get name`);
      assert.equal(get.code, 0, `${ctl}: ${get.stderr}`);
      assert.equal(get.stdout, "name\njohn\n");
      const keys = await onWorker(`${ctl} get / --prefix --keys-only`);
      assert.equal(keys.code, 0, `${ctl}: ${keys.stderr}`);
      const listed = keys.stdout.split("\n").filter((l) => l !== "");
      assert.ok(listed.length > 0 && listed.every((k) => k.startsWith("/")), `${ctl}: keys under "/": ${keys.stdout.slice(0, 200)}`);
      assert.ok(listed.some((k) => k.startsWith(w.prefix)), `${ctl}: the workload's keys are listed`);
    }
    const c = await finishWorkload();
    assert.equal(c.stale, 0, "no stale linearizable read");
  });

  it("lose one master (stop its host): writes go on; start it: it catches up", async () => {
    await startWorkload("lose and regain one master");
    const lost = host("raftkv-3");
    await lost.stop();
    log("raftkv-3 stopped");
    await workload!.waitForWrites(30, 120_000);
    await lost.start();
    log("raftkv-3 started");
    await workload!.waitForWrites(10, 120_000);
    const c = await finishWorkload();
    assert.equal(c.stale, 0, "no stale linearizable read");
  });

  it("leaf rotation (certGeneration bump): zero failed requests, members roll one at a time", async () => {
    const before = await host("raftkv-1").exec(["cat", "/etc/raftkv/pki/server.crt"]);
    await startWorkload("leaf rotation");
    await up(config(3, 2));
    assertRolledOneAtATime(applier.lastRun, 3);
    const after = await host("raftkv-1").exec(["cat", "/etc/raftkv/pki/server.crt"]);
    assert.notEqual(after.stdout, before.stdout, "raftkv-1 has a new server certificate");
    const c = await finishWorkload();
    assert.deepEqual([c.writesFailed, c.readsFailed, c.stale], [0, 0, 0], `failed requests: ${c.errors.join(" | ")}`);
  });

  it("resize 3 -> 5 -> 7 -> 3 with backups on: joins learner-first, quorum kept at every step, zero failed writes; raftkv-7's host dies first and the shrink still completes without ever dialling it (leaves and backups run on a member that stays; its backup agent goes with it), one at a time", async () => {
    await startWorkload("resize 3 -> 5 -> 7 -> 3 (raftkv-7 dead)");
    for (const n of [5, 7, 3]) {
      let deadIp = "";
      if (n === 3) {
        // The usual reason to shrink: a member's host is gone. Its leave never touches it.
        deadIp = host("raftkv-7").privateIp;
        await host("raftkv-7").kill();
        log("raftkv-7's host is dead (power cut)");
      }
      const plan = await up(config(n, 2));
      if (n === 3) {
        // A command's delete connects only when it has a `delete` script and is not deletedWith a
        // resource this run deletes (the provider is not called); a CopyToRemote's never.
        const deleting = new Set(plan.steps.filter((st) => st.op === "delete").map((st) => st.urn));
        const dialled = plan.steps.filter(
          (st) =>
            st.old !== undefined &&
            (st.op !== "delete" ||
              (st.old.type === COMMAND && st.old.inputs["delete"] !== undefined && !(st.old.options.deletedWith !== undefined && deleting.has(st.old.options.deletedWith)))) &&
            (st.old.inputs["connection"] as { host?: string } | undefined)?.host === deadIp,
        );
        assert.deepEqual(dialled.map((st) => `${st.op} ${st.urn}`), [], "no step of the shrink connects to the dead host");
      }
      if (n === 7) {
        for (const j of ["raftkv-4", "raftkv-5", "raftkv-6", "raftkv-7"]) {
          const stderr = String((state?.resources ?? []).find((r) => r.name === `${j}-install`)?.outputs["stderr"] ?? "");
          assert.match(stderr, /as a learner[\s\S]*is a voter/, `${j} joined as a learner and was promoted: ${stderr.slice(-400)}`);
        }
      }
      if (n === 3) assertLeftOneAtATime(applier.lastRun, 4);
      assert.equal(await memberCount(), n, `${n} members after the resize`);
      assert.deepEqual(masterNames(), Array.from({ length: n }, (_, i) => `raftkv-${i + 1}`));
      const c = await workload!.waitForWrites(5);
      assert.equal(c.writes.failed, 0, `failed writes while resizing to ${n}: ${c.errors.join(" | ")}`);
      log(`resized to ${n}: ${c.writes.ok} writes so far, none failed`);
    }
    for (const gone of ["raftkv-4", "raftkv-5", "raftkv-6", "raftkv-7"]) assert.equal(applier.host(gone), undefined, `${gone}'s instance is terminated`);
    // Backups were really on: the changes took their pre-change backup (one per 15 min, so the leaf rotation's may be the one).
    const keys = await backupKeys();
    assert.ok(keys.some((k) => /-pre-change-raftkv-\d+-rev\d+\.db$/.test(k)), `a pre-change backup in the bucket: ${keys.join(" ")}`);
    const c = await finishWorkload();
    assert.deepEqual([c.writesFailed, c.stale], [0, 0], `failed writes: ${c.errors.join(" | ")}`);
  });

  it("raftkv:auth on (issue 16): through the load balancer, the worker's certificate reads and writes only its prefix and reaches no admin RPC; admin stays root", async () => {
    // Last before the destroy: the workload and the first scenario write outside /raftkv-worker-1/
    // with the worker's certificate, so auth on from the start would break them.
    const plan = await up({ ...config(3, 2), "raftkv:auth": "true" });
    assert.ok(plan.steps.length > 0 && plan.steps.every((s) => s.op === "create" && /auth/.test(s.urn)), `only the auth bootstrap is added: ${plan.steps.map((s) => `${s.op} ${s.urn}`).join(", ")}`);
    const boot = state!.resources.find((r) => r.type === COMMAND && r.name.endsWith("-auth-bootstrap"));
    assert.match(String(boot?.outputs["stdout"] ?? ""), /raftkv-auth: auth enabled/);

    // etcd's words: "etcdserver: permission denied" for KV and Cluster RPCs, the auth store's
    // raw "auth: permission denied" for Maintenance ones (Snapshot), as etcd 3.4 answers.
    const denied = async (line: string, words = /^Error: .*etcdserver: permission denied$/m) => {
      const r = await onWorker(line);
      assert.notEqual(r.code, 0, `${line} succeeded: ${r.stdout}`);
      assert.match(r.stderr, words, `${line}: ${r.stderr}`);
    };
    // The worker's own certificate (the env file's ETCDCTL_CERT, CN raftkv-worker-1): its prefix.
    const put = await onWorker("etcdctl put /raftkv-worker-1/k tenant");
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, "OK\n");
    const get = await onWorker("raftkvctl get /raftkv-worker-1/k");
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "/raftkv-worker-1/k\ntenant\n");
    // Outside it: a key the first scenario wrote, a write, and admin RPCs (member list is open to
    // every known user, as in etcd; changing members is root only; the ID names no member, so
    // even a wrongly allowed call would change nothing).
    await denied("etcdctl get name");
    await denied("etcdctl put /raftkv-worker-2/k x");
    await denied("etcdctl member remove 1234abcd");
    await denied("etcdctl snapshot save /tmp/raftkv-e2e-snap.db", /auth: permission denied/);

    // The operators' admin certificate (the stack's adminCertPem/adminKeyPem) is root.
    const pem = (type: string, name: RegExp, field: string): string => {
      const r = state!.resources.find((x) => x.type === type && name.test(x.name));
      const v = r?.outputs[field];
      assert.ok(typeof v === "string" && v.includes("-----BEGIN"), `no ${field} for ${name}`);
      return v;
    };
    const cert = pem("tls:index/locallySignedCert:LocallySignedCert", /-admin-client-g2$/, "certPem");
    const key = pem("tls:index/privateKey:PrivateKey", /-admin-client-g2-key$/, "privateKeyPem");
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const asAdmin = `ETCDCTL_CERT=/root/admin.crt ETCDCTL_KEY=/root/admin.key`;
    const setup = await onWorker(`echo ${b64(cert)} | base64 -d > /root/admin.crt && (umask 077; echo ${b64(key)} | base64 -d > /root/admin.key)`);
    assert.equal(setup.code, 0, setup.stderr);
    const admin = await onWorker(`${asAdmin} etcdctl get name && ${asAdmin} etcdctl user get admin && ${asAdmin} etcdctl member list | wc -l`);
    assert.equal(admin.code, 0, admin.stderr);
    assert.equal(admin.stdout, "name\njohn\nUser: admin\nRoles: root\n3\n");
    await onWorker("rm -f /root/admin.crt /root/admin.key /tmp/raftkv-e2e-snap.db*");
  });

  it("pulumi destroy: every host's commands are gone before its instance, nothing is left running", async () => {
    const plan = planDestroy(state!);
    log(`pulumi destroy: ${summarize(plan)}`);
    state = await applier.apply(plan, state);
    assert.deepEqual(state.resources, []);
    for (const t of applier.lastRun.filter((r) => r.op === "delete" && r.urn.includes(INSTANCE))) {
      const host = t.urn.split("::").pop()!;
      const own = applier.lastRun.filter((r) => r.op === "delete" && r.urn.includes("command:remote:") && r.urn.split("::").pop()!.startsWith(`${host}-`));
      if (host !== "raftkv-bastion") assert.ok(own.length > 0, `${host} had commands`);
      for (const c of own) assert.ok(t.startedMs >= c.endedMs, `${host} was terminated while ${c.urn} still ran`);
    }
    for (const name of ["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-worker-1"]) assert.equal(applier.host(name), undefined, `${name} is terminated`);
    assert.ok(!instances().length, "no instance in the state");
    assert.deepEqual(applier.loadBalancers(), [], "the load balancer forwarder is gone");
  });
});

/** The joined members' leave commands (run on the first master) never overlapped. */
function assertLeftOneAtATime(runs: StepReport[], expected: number): void {
  const leaves = runs.filter((r) => r.op === "delete" && /::raftkv-[4-7]-leave$/.test(r.urn)).sort((a, b) => a.startedMs - b.startedMs);
  assert.equal(leaves.length, expected, `${expected} joined members left`);
  for (let i = 1; i < leaves.length; i++) {
    assert.ok(leaves[i]!.startedMs >= leaves[i - 1]!.endedMs, `${leaves[i]!.urn} left while ${leaves[i - 1]!.urn} was still leaving`);
  }
}
