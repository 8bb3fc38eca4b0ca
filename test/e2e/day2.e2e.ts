/**
 * Day-2 operations (issue 11), run the way `pulumi up` runs them: the real index.ts under the
 * engine's mocks, each plan carried out on a lab of real Debian 13 hosts over SSH through the
 * stack's bastion. One lab and one stack for the whole file; the scenarios build on each other
 * (a failure stops the rest). The workload writes and reads linearizably through the load
 * balancer from a client namespace in the VPC holding a worker's credentials (the worker
 * itself is replaced by an image change), counting every failed request.
 */
import { strict as assert } from "node:assert";
import { DEFAULT_METRICS_PORT } from "../../components/topology";
import type { StepReport } from "./apply";
import { execRemote, sshTargetFromInputs, withSsh } from "./apply/ssh";
import type { LabHost, LabNetNs } from "./apply/contract";
import { DEFAULT_AMI, planUpdate, runProgram } from "./engine";
import { ebsByIdPath } from "./lab";
import type { ScenarioWorkloads } from "./lib/scenario-workloads";
import { StackFixture } from "./lib/stack-fixture";
import { suiteLog, urnName as short } from "./lib/suite-log";

const VPC_CIDR = "10.81.0.0/16";
const CLIENT_IP = "10.81.2.250";
const NEW_AMI = "ami-0d2newerdebian13";
const VOLUME = "aws:ebs/volume:Volume";

const log = suiteLog("day2");

describe("day-2 operations end to end (issue 11)", function () {
  this.timeout(20 * 60_000);
  this.bail(true);

  let stack: StackFixture;
  let clientNs: LabNetNs | undefined;
  let workloads: ScenarioWorkloads;

  /** The stack's backups in the S3 listing: key, reason, member and revision (the agent's key format). */
  async function listBackups(): Promise<Array<{ key: string; reason: string; member: string; revision: number }>> {
    return (await stack.bucketKeys()).flatMap((key) => {
      const m = /-(scheduled|pre-change)-(raftkv-\d+)-rev(\d+)\.db$/.exec(key);
      return m ? [{ key, reason: m[1]!, member: m[2]!, revision: Number(m[3]) }] : [];
    });
  }

  const step = (runs: StepReport[], op: string, name: string): StepReport | undefined => runs.find((r) => r.op === op && short(r.urn) === name);

  async function members(): Promise<Array<{ ID: string; name: string; isLearner?: boolean }>> {
    const r = await stack.host("raftkv-1").exec(["raftkvctl", "member", "list", "-w", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout.replace(/"ID":\s*(\d+)/g, '"ID":"$1"')) as { members: Array<{ ID: string; name: string; isLearner?: boolean }> }).members;
  }

  /** The workload runs in a namespace of its own with the worker's credentials (copied once). */
  async function workloadClient(): Promise<LabHost> {
    clientNs ??= await stack.addNamespace("client", [CLIENT_IP]);
    const worker = stack.worker();
    return { name: "client", privateIp: CLIENT_IP, netnsPath: clientNs.path, exec: worker.exec.bind(worker) } as unknown as LabHost;
  }

  before(async () => {
    // Backups on (the default), to s3rver: a replacement takes its backup first (#13). Scheduled
    // backups are backup.e2e.ts's subject: the default interval never fires here.
    stack = await StackFixture.open({ labName: `d2${process.pid % 100000}`, vpcCidr: VPC_CIDR, keyLabel: "raftkv-day2", log, s3Port: 25002 });
    workloads = stack.workloads({ prefix: "/day2/", log, client: workloadClient });
  });

  after(async () => {
    await stack?.close();
    log("day-2 suite done");
  });

  it("up: the image is pinned in the state; each member's data is on the volume the stack created, found by its volume ID; the member refuses the root disk", async () => {
    await stack.up(stack.config());
    const pins = stack.resources("command:local:Command");
    assert.equal(pins.length, 1, "one image pin (one architecture)");
    assert.equal(pins[0]!.outputs["stdout"], DEFAULT_AMI);
    for (const i of stack.instances()) assert.equal(i.inputs["ami"], DEFAULT_AMI, i.name);
    for (const name of stack.masterNames()) {
      const volume = stack.resources(VOLUME).find((v) => v.name === `${name}-data`)!;
      const dev = ebsByIdPath(volume.id);
      const same = await stack.host(name).exec(["bash", "-c", `[ "$(findmnt -n -o MAJ:MIN --mountpoint /var/lib/raftkv | tr -d ' ')" = "$(stat -L -c '%Hr:%Lr' ${dev})" ] && grep -c '^${dev} /var/lib/raftkv ' /etc/fstab`]);
      assert.equal(same.code, 0, `${name}'s state directory is not on its own volume ${volume.id}: ${same.stdout}${same.stderr}`);
    }
    assert.equal((await members()).length, 3);
    // With the volume unmounted (a failed mount), the member does not start on the root disk.
    const h = stack.host("raftkv-3");
    // (The volume step's fstab entry is hidden too: with it, systemd would mount the volume for the unit.)
    const refused = await h.exec([
      "bash",
      "-c",
      "systemctl stop raftkv; umount /var/lib/raftkv; sed -i.day2 '\\#/var/lib/raftkv#d' /etc/fstab; systemctl daemon-reload; " +
        "if systemctl start raftkv; then echo started; else echo refused; fi; sleep 1; systemctl is-active raftkv; systemctl reset-failed raftkv; ls /var/lib/raftkv/data 2>&1 | head -1",
    ]);
    assert.match(refused.stdout, /^refused\n(failed|activating|inactive)\n/, `the member started without its volume: ${refused.stdout}${refused.stderr}`);
    const back = await h.exec(["bash", "-c", "mv -f /etc/fstab.day2 /etc/fstab && systemctl daemon-reload && mount /var/lib/raftkv && systemctl restart raftkv"]);
    assert.equal(back.code, 0, back.stderr);
  });

  it("a newer image is published: nothing changes (the pin holds)", async () => {
    const next = await runProgram(stack.config(), stack.state, { amiId: NEW_AMI });
    const plan = planUpdate(stack.state, next);
    assert.deepEqual(plan.steps.map((s) => `${s.op} ${short(s.urn)}`), [], "no step at all");
  });

  it("raftkv:amiId to the new image and dataVolumeGiB 1 -> 2 in one up, backups on: one backup before the first host goes; masters replaced one at a time, each back with its data and ID before the next; volume block devices grown in place (not covered: growing the mounted ext4, which this machine refuses and a resize2fs shim passes); zero failed requests", async () => {
    const before = await members();
    const oldIds = new Map(stack.instances().map((i) => [i.name, i.id]));
    const oldVolumes = new Map(stack.resources(VOLUME).map((v) => [v.name, v.id]));
    assert.deepEqual(await listBackups(), [], "no backup before this up");
    await workloads.start("image change + volume growth (3 masters replaced)");
    const put = await stack.host("raftkv-1").exec(["bash", "-c", "raftkvctl put /day2/before-replace yes >/dev/null && raftkvctl get /day2/before-replace -w json"]);
    assert.equal(put.code, 0, put.stderr);
    const rev = Number(/"revision":"?(\d+)/.exec(put.stdout)![1]);
    const upStarted = Date.now();
    const plan = await stack.up(stack.config({ "raftkv:amiId": NEW_AMI, "raftkv:dataVolumeGiB": "2" }), { amiId: NEW_AMI });
    const runs = stack.applier.lastRun;
    // #13: one snapshot before the replacement, holding the last write, taken before the first host was stopped.
    const pre = (await listBackups()).filter((b) => b.reason === "pre-change");
    assert.equal(pre.length, 1, `one pre-change backup for the three replacements: ${JSON.stringify(pre)}`);
    assert.ok(pre[0]!.revision >= rev, `it holds revision ${rev}: ${pre[0]!.key}`);
    const stamp = /(\d{8}T\d{6}Z)-pre-change/.exec(pre[0]!.key)![1]!;
    const taken = Date.parse(`${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`);
    assert.ok(taken >= upStarted - 1000, `taken during this up: ${pre[0]!.key}`);
    const backedUp = step(runs, "delete", "raftkv-1-backup-before-replace");
    const firstStop = step(runs, "delete", "raftkv-1-data-attachment");
    assert.ok(backedUp && firstStop && firstStop.startedMs >= backedUp.endedMs, "the backup finished before raftkv-1's host was stopped");
    for (const i of stack.instances()) {
      if (i.name === "raftkv-bastion") {
        // The jump host keeps its image: replacing it would cut the commands tunnelled through it.
        assert.equal(i.id, oldIds.get(i.name), "the bastion was not replaced");
        continue;
      }
      assert.equal(i.inputs["ami"], NEW_AMI, i.name);
      assert.notEqual(i.id, oldIds.get(i.name), `${i.name} was replaced`);
    }
    // The graph itself serializes: master i+1 goes only after master i's gate saw it healthy.
    for (const [a, b] of [["raftkv-1", "raftkv-2"], ["raftkv-2", "raftkv-3"]] as const) {
      const gate = step(runs, "update", `${a}-gate`);
      const gone = step(runs, "delete", b);
      assert.ok(gate && gone, `${a}-gate update and ${b} delete ran`);
      assert.ok(gone.startedMs >= gate.endedMs, `${b} was terminated before ${a} was back (gate ended ${gate.endedMs} ms, delete started ${gone.startedMs} ms)`);
      // No new client connection goes to a member that is about to stop: deregistered first.
      const deregistered = step(runs, "delete", `${b}-clients`);
      const stopped = step(runs, "delete", `${b}-data-attachment`);
      assert.ok(deregistered && stopped && stopped.startedMs >= deregistered.endedMs, `${b} was stopped before the load balancer let it go`);
    }
    // Volumes: updated in place (ModifyVolume), the same volumes, each host sees 2 GiB.
    for (const v of stack.resources(VOLUME)) {
      assert.equal(v.id, oldVolumes.get(v.name), `${v.name} is the same volume`);
      assert.ok(plan.steps.some((st) => st.op === "update" && short(st.urn) === v.name), `${v.name} updated in place`);
    }
    for (const name of stack.masterNames()) {
      const volume = stack.resources(VOLUME).find((v) => v.name === `${name}-data`)!;
      const size = await stack.host(name).exec(["blockdev", "--getsize64", ebsByIdPath(volume.id)]);
      assert.equal(size.stdout.trim(), String(2 * 1024 ** 3), `${name} sees its grown volume`);
    }
    const after = await members();
    assert.deepEqual(after.map((m) => m.ID).sort(), before.map((m) => m.ID).sort(), "the same members came back (their volumes kept their data and identity)");
    assert.ok(after.every((m) => m.isLearner !== true));
    // The members' backup metrics show it: a scheduled agent run on a follower (which skips the
    // upload) reports the newest backup's age on the member's own /metrics.
    const status = await stack.host("raftkv-1").exec(["raftkvctl", "endpoint", "status", "--cluster", "-w", "json"]);
    assert.equal(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout.replace(/"(member_id|leader)":\s*(\d+)/g, '"$1":"$2"')) as Array<{ Endpoint: string; Status: { header: { member_id: string }; leader: string } }>;
    const follower = stack.lab.hostByIp(new URL(rows.find((r) => r.Status.header.member_id !== r.Status.leader)!.Endpoint).hostname)!.name;
    const ran = await stack.host(follower).exec(["bash", "-c", "systemctl start raftkv-backup.service && journalctl -u raftkv-backup.service --no-pager -o cat | grep 'backup skipped' | tail -1"], { timeoutMs: 120_000 });
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, new RegExp(`backup skipped: ${follower} is not the leader .*newest backup s3://\\S+${pre[0]!.key.split("/").pop()!.replace(/\./g, "\\.")} is \\d+ s old`));
    const scraped = await stack.host(follower).exec(["node", "-e", `fetch("http://127.0.0.1:${DEFAULT_METRICS_PORT}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`]);
    const age = /^raftkv_backup_latest_age_seconds\{location="s3:\/\/[^"]+"\} (\d+)$/m.exec(scraped.stdout);
    assert.ok(age, `${follower}'s /metrics has the newest backup's age: ${scraped.stdout.split("\n").filter((l) => l.includes("backup")).join(" | ")}`);
    assert.ok(Number(age[1]) <= (Date.now() - taken) / 1000 + 2, `the age (${age[1]} s) is the pre-change backup's`);
    const worker = await stack.worker().exec(["test", "-s", "/etc/raftkv/raftkv.env"]);
    assert.equal(worker.code, 0, "the replaced worker was installed again");
    const f = await workloads.finish();
    assert.deepEqual([f.writes.failed, f.reads.failed, f.reads.stale], [0, 0, 0], `failed requests: ${f.errors.join(" | ")}`);
  });

  it("SSH host keys are the program's (kept across the replacements above) and pinned: a host or bastion presenting another key is refused", async () => {
    const conn = structuredClone(stack.resources("command:remote:Command").find((r) => r.name === "raftkv-worker-1-client")!.inputs["connection"]) as Record<string, unknown> & { proxy: Record<string, unknown> };
    const key = (name: string) => String(stack.resources("tls:index/privateKey:PrivateKey").find((r) => r.name === `${name}-host-key`)!.outputs["publicKeyOpenssh"]).trim();
    assert.equal(conn["hostKey"], key("raftkv-worker-1"));
    assert.equal(conn.proxy["hostKey"], key("raftkv-bastion"));
    const worker = stack.worker();
    const onDisk = await worker.exec(["bash", "-c", "echo \"$(cat /etc/ssh/ssh_host_ed25519_key.pub)\"; ls /etc/ssh | grep -c '^ssh_host_.*_key$'"]);
    assert.equal(onDisk.stdout, `${key("raftkv-worker-1")}\n1\n`, "the host's only host key is the one the program made");
    // One dial per hop (the provider would retry a mismatch up to dialErrorLimit times).
    const run = (c: Record<string, unknown>) => {
      const t = sshTargetFromInputs(c);
      return withSsh({ ...t, dialErrorLimit: 0, ...(t.proxy !== undefined ? { proxy: { ...t.proxy, dialErrorLimit: 0 } } : {}) }, (client) => execRemote(client, "true"));
    };
    assert.equal((await run(conn)).code, 0);
    // The bastion hop: a proxy presenting another key than the pinned one is refused.
    await assert.rejects(run({ ...conn, proxy: { ...conn.proxy, hostKey: key("raftkv-1") } }), /host key mismatch: \S+ presented SHA256:\S+, the pinned key is SHA256:/);
    // The host itself gets another key (a different machine at its address): refused.
    const swap = await worker.exec(["bash", "-c", "cp -a /etc/ssh/ssh_host_ed25519_key /root/hk && cp -a /etc/ssh/ssh_host_ed25519_key.pub /root/hk.pub && rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh"]);
    assert.equal(swap.code, 0, swap.stderr);
    try {
      await assert.rejects(run(conn), (e: Error) => e.message.includes(`host key mismatch: ${worker.privateIp} presented`));
    } finally {
      const back = await worker.exec(["bash", "-c", "mv -f /root/hk /etc/ssh/ssh_host_ed25519_key && mv -f /root/hk.pub /etc/ssh/ssh_host_ed25519_key.pub && systemctl restart ssh"]);
      assert.equal(back.code, 0, back.stderr);
    }
    assert.equal((await run(conn)).code, 0);
  });

  it("pulumi destroy: completes, nothing left; no security-group rule goes before the last command", async () => {
    const hosts = stack.instances().map((i) => i.name);
    await stack.destroy();
    assert.deepEqual(stack.state?.resources, []);
    const runs = stack.applier.lastRun;
    const lastCommand = Math.max(...runs.filter((r) => r.urn.includes("command:remote")).map((r) => r.endedMs));
    for (const r of runs.filter((x) => /securityGroup(Ingress|Egress)Rule/.test(x.urn))) {
      assert.ok(r.startedMs >= lastCommand, `${short(r.urn)} was deleted while commands still ran`);
    }
    for (const name of hosts) assert.equal(stack.applier.host(name), undefined, `${name} is terminated`);
    assert.deepEqual(stack.applier.loadBalancers(), []);
  });
});
