/**
 * The deployment, run the way a user runs it (issue 10): the real index.ts under the engine's
 * mocks, each plan carried out on a lab of real Debian 13 hosts (systemd, sshd, cloud-init),
 * every command over real SSH through the bastion the stack creates. One lab for the whole
 * file; the scenarios build on each other in order (a failure stops the rest), each with a
 * background writer and a linearizable reader through the load balancer, counts printed, and
 * every member's data compared at the end.
 */
import { strict as assert } from "node:assert";
import type { StepReport } from "./apply";
import type { ScenarioWorkloads } from "./lib/scenario-workloads";
import { INSTANCE, StackFixture } from "./lib/stack-fixture";
import { suiteLog } from "./lib/suite-log";

const VPC_CIDR = "10.77.0.0/16";
const COMMAND = "command:remote:Command";

const log = suiteLog("e2e");

describe("deployment end to end: Pulumi program -> real hosts over SSH", function () {
  this.timeout(20 * 60_000);
  this.bail(true);

  let stack: StackFixture;
  let workloads: ScenarioWorkloads;

  const config = (masters: number, certGeneration: number): Record<string, string> =>
    stack.config({ "raftkv:masters": String(masters), "raftkv:certGeneration": String(certGeneration) });

  async function memberCount(): Promise<number> {
    const r = await stack.host("raftkv-1").exec(["raftkvctl", "member", "list", "-w", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout.replace(/"ID":\s*(\d+)/g, '"ID":"$1"')) as { members: unknown[] }).members.length;
  }

  /** Runs a shell line on the worker as an operator would, with the env file the install wrote. */
  async function onWorker(line: string) {
    return stack.worker().exec(["bash", "-c", `set -a; . /etc/raftkv/raftkv.env; set +a; ${line}`], { timeoutMs: 60_000 });
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
    // Backups on (the default), to s3rver: every change takes its pre-change backup, and the
    // shrink below proves that removing a dead host never needs it, backup agent included.
    // Scheduled backups are backup.e2e.ts's subject: the default interval never fires here.
    stack = await StackFixture.open({ labName: `e2e${process.pid % 10000}`, vpcCidr: VPC_CIDR, keyLabel: "raftkv-e2e", log, s3Port: 25001 });
    workloads = stack.workloads({ prefix: "/e2e/", log });
  });

  after(async () => {
    await stack?.close();
    log("e2e suite done");
  });

  it("up: 3 masters and 1 worker through the bastion the stack creates; etcdctl through the load balancer", async () => {
    await stack.up(config(3, 1));
    // The runner reached no private host directly: every command it ran went through a proxy it can reach.
    for (const c of stack.state!.resources.filter((r) => r.type === COMMAND)) {
      const conn = c.inputs["connection"] as { host: string; proxy?: { host: string } };
      assert.ok(stack.lab.runnerCanReach(conn.proxy?.host ?? conn.host), `${c.name} connects via ${conn.proxy?.host ?? conn.host}, which the runner cannot reach`);
    }
    const bastions = stack.instances().filter((r) => r.inputs["associatePublicIpAddress"] === true);
    assert.equal(bastions.length, 1, "the stack created one instance with a public address: the bastion");
    assert.deepEqual(stack.masterNames(), ["raftkv-1", "raftkv-2", "raftkv-3"]);
    assert.equal(await memberCount(), 3);

    const w = await workloads.start("up");
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
    const c = await workloads.finish();
    assert.equal(c.reads.stale, 0, "no stale linearizable read");
  });

  it("lose one master (stop its host): writes go on; start it: it catches up", async () => {
    await workloads.start("lose and regain one master");
    const lost = stack.host("raftkv-3");
    await lost.stop();
    log("raftkv-3 stopped");
    await workloads.current.waitForWrites(30, 120_000);
    await lost.start();
    log("raftkv-3 started");
    await workloads.current.waitForWrites(10, 120_000);
    const c = await workloads.finish();
    assert.equal(c.reads.stale, 0, "no stale linearizable read");
  });

  it("leaf rotation (certGeneration bump): zero failed requests, members roll one at a time", async () => {
    const before = await stack.host("raftkv-1").exec(["cat", "/etc/raftkv/pki/server.crt"]);
    await workloads.start("leaf rotation");
    await stack.up(config(3, 2));
    assertRolledOneAtATime(stack.applier.lastRun, 3);
    const after = await stack.host("raftkv-1").exec(["cat", "/etc/raftkv/pki/server.crt"]);
    assert.notEqual(after.stdout, before.stdout, "raftkv-1 has a new server certificate");
    const c = await workloads.finish();
    assert.deepEqual([c.writes.failed, c.reads.failed, c.reads.stale], [0, 0, 0], `failed requests: ${c.errors.join(" | ")}`);
  });

  it("resize 3 -> 5 -> 7 -> 3 with backups on: joins learner-first, quorum kept at every step, zero failed writes; raftkv-7's host dies first and the shrink still completes without ever dialling it (leaves and backups run on a member that stays; its backup agent goes with it), one at a time", async () => {
    await workloads.start("resize 3 -> 5 -> 7 -> 3 (raftkv-7 dead)");
    for (const n of [5, 7, 3]) {
      let deadIp = "";
      if (n === 3) {
        // The usual reason to shrink: a member's host is gone. Its leave never touches it.
        deadIp = stack.host("raftkv-7").privateIp;
        await stack.host("raftkv-7").kill();
        log("raftkv-7's host is dead (power cut)");
      }
      const plan = await stack.up(config(n, 2));
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
          const stderr = String((stack.state?.resources ?? []).find((r) => r.name === `${j}-install`)?.outputs["stderr"] ?? "");
          assert.match(stderr, /as a learner[\s\S]*is a voter/, `${j} joined as a learner and was promoted: ${stderr.slice(-400)}`);
        }
      }
      if (n === 3) assertLeftOneAtATime(stack.applier.lastRun, 4);
      assert.equal(await memberCount(), n, `${n} members after the resize`);
      assert.deepEqual(stack.masterNames(), Array.from({ length: n }, (_, i) => `raftkv-${i + 1}`));
      const c = await workloads.current.waitForWrites(5);
      assert.equal(c.writes.failed, 0, `failed writes while resizing to ${n}: ${c.errors.join(" | ")}`);
      log(`resized to ${n}: ${c.writes.ok} writes so far, none failed`);
    }
    for (const gone of ["raftkv-4", "raftkv-5", "raftkv-6", "raftkv-7"]) assert.equal(stack.applier.host(gone), undefined, `${gone}'s instance is terminated`);
    // Backups were really on: the changes took their pre-change backup (one per 15 min, so the leaf rotation's may be the one).
    const keys = await stack.bucketKeys();
    assert.ok(keys.some((k) => /-pre-change-raftkv-\d+-rev\d+\.db$/.test(k)), `a pre-change backup in the bucket: ${keys.join(" ")}`);
    const c = await workloads.finish();
    assert.deepEqual([c.writes.failed, c.reads.stale], [0, 0], `failed writes: ${c.errors.join(" | ")}`);
  });

  it("raftkv:auth on (issue 16): through the load balancer, the worker's certificate reads and writes only its prefix and reaches no admin RPC; admin stays root", async () => {
    // Last before the destroy: the workload and the first scenario write outside /raftkv-worker-1/
    // with the worker's certificate, so auth on from the start would break them.
    const plan = await stack.up({ ...config(3, 2), "raftkv:auth": "true" });
    assert.ok(plan.steps.length > 0 && plan.steps.every((s) => s.op === "create" && /auth/.test(s.urn)), `only the auth bootstrap is added: ${plan.steps.map((s) => `${s.op} ${s.urn}`).join(", ")}`);
    const boot = stack.state!.resources.find((r) => r.type === COMMAND && r.name.endsWith("-auth-bootstrap"));
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
      const r = stack.state!.resources.find((x) => x.type === type && name.test(x.name));
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
    await stack.destroy();
    assert.deepEqual(stack.state?.resources, []);
    for (const t of stack.applier.lastRun.filter((r) => r.op === "delete" && r.urn.includes(INSTANCE))) {
      const host = t.urn.split("::").pop()!;
      const own = stack.applier.lastRun.filter((r) => r.op === "delete" && r.urn.includes("command:remote:") && r.urn.split("::").pop()!.startsWith(`${host}-`));
      if (host !== "raftkv-bastion") assert.ok(own.length > 0, `${host} had commands`);
      for (const c of own) assert.ok(t.startedMs >= c.endedMs, `${host} was terminated while ${c.urn} still ran`);
    }
    for (const name of ["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-worker-1"]) assert.equal(stack.applier.host(name), undefined, `${name} is terminated`);
    assert.ok(!stack.instances().length, "no instance in the state");
    assert.deepEqual(stack.applier.loadBalancers(), [], "the load balancer forwarder is gone");
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
