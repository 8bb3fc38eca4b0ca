/**
 * The applier's providers on real lab hosts, with a hand-written plan (no engine): instances
 * from user data and key pairs, commands over real SSH through a bastion with the provider's
 * environment rules, file copies, the load balancer forwarder reached through "VPC DNS", and a
 * failure reported with its step, resource and stderr.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Applier, ApplyError } from "./apply";
import type { Plan, RecordedResource, StackState, Step } from "./apply/contract";
import { openLab, type Lab } from "./lab";

const VPC = "10.78.0.0/16";
const PUBLIC = "10.78.255.0/24";
const BASTION_IP = "10.78.255.20";
const PRIVATE_IP = "10.78.0.10";
const NLB_IP = "10.78.0.4";
const NLB_DNS = "internal-lb-0123456789abcdef.elb.eu-west-1.amazonaws.com";

function res(type: string, name: string, inputs: Record<string, unknown>, outputs: Record<string, unknown> = {}, id = `${name}-id`): RecordedResource {
  return { urn: `urn:pulumi:e2e::raftkv::${type}::${name}`, type, name, custom: true, inputs, secretInputs: [], dependencies: [], options: {}, id, outputs: { ...inputs, ...outputs } };
}

const create = (r: RecordedResource, after: number[] = []): Step => ({ op: "create", urn: r.urn, new: r, diffKeys: [], deleteBeforeReplace: false, after });

describe("e2e applier on real hosts: instances, SSH through a bastion, load balancer", function () {
  this.timeout(10 * 60_000);
  let lab: Lab;
  let applier: Applier;
  let dir: string;
  let key: string;
  let pub: string;
  let state: StackState | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-applier-e2e-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "id")]);
    key = readFileSync(path.join(dir, "id"), "utf8");
    pub = readFileSync(path.join(dir, "id.pub"), "utf8").trim();
    lab = await openLab({ name: `ap${process.pid % 100000}`, vpcCidr: VPC, publicCidr: PUBLIC });
    applier = new Applier({ lab });
  });

  after(async () => {
    await applier?.close();
    await lab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const conn = (host: string, viaBastion: boolean, extra: Record<string, unknown> = {}) => ({
    host,
    user: "admin",
    privateKey: key,
    perDialTimeout: 5,
    dialErrorLimit: 2,
    ...(viaBastion ? { proxy: { host: BASTION_IP, user: "admin", privateKey: key } } : {}),
    ...extra,
  });

  it("boots instances, runs commands through the bastion (environment only as sshd's AcceptEnv allows), copies files, forwards the NLB", async () => {
    const kp = res("aws:ec2/keyPair:KeyPair", "ssh", { publicKey: pub }, { keyName: "ssh-1234567" });
    const bastion = res("aws:ec2/instance:Instance", "bastion", { keyName: "ssh-1234567", associatePublicIpAddress: true }, { privateIp: BASTION_IP, publicIp: BASTION_IP }, "i-bastion");
    const ud = "#!/bin/bash\necho from-user-data > /var/tmp/user-data-ran\n";
    const box = res("aws:ec2/instance:Instance", "box", { keyName: "ssh-1234567", privateIp: PRIVATE_IP, userData: ud, ebsBlockDevices: [{ deviceName: "/dev/sdb", volumeSize: 1 }] }, {}, "i-box");
    const file = path.join(dir, "payload.txt");
    writeFileSync(file, "payload\n");
    const copy = res("command:remote:CopyToRemote", "copy", { connection: conn(PRIVATE_IP, true), source: { $asset: "file", path: file, hash: "x" }, remotePath: "/home/admin/sub/dir/payload.txt" });
    const service = [
      "sudo systemd-run --unit=fake-member node -e '",
      'require("http").createServer((q, s) => { s.end(q.url === "/health" ? "{\\"health\\":\\"true\\"}" : "no"); }).listen(2381);',
      'require("net").createServer((c) => c.end("hello from box\\n")).listen(2379);',
      "'",
    ].join(" ");
    const cmd = res("command:remote:Command", "probe", {
      connection: conn(PRIVATE_IP, true),
      create: `cat; echo "lang=$LANG secret=\${RAFTKV_SECRET:-unset}"; cat /var/tmp/user-data-ran; cat sub/dir/payload.txt; lsblk -dn -o SIZE /dev/nvme1n1 || true; ${service}`,
      update: `echo updated prev="\${PULUMI_COMMAND_STDOUT:-none}"`,
      delete: "sudo systemctl stop fake-member; echo bye > /var/tmp/deleted",
      stdin: "from-stdin\n",
      environment: { LANG: "C.UTF-8", RAFTKV_SECRET: "must-not-arrive" },
    });
    const nlb = res("aws:lb/loadBalancer:LoadBalancer", "lb", { internal: true, loadBalancerType: "network", subnetMappings: [{ subnetId: "subnet-a", privateIpv4Address: NLB_IP }] }, { arn: "arn:lb", dnsName: NLB_DNS }, "arn:lb");
    const tg = res("aws:lb/targetGroup:TargetGroup", "tg", { port: 2379, protocol: "TCP", deregistrationDelay: 1, healthCheck: { protocol: "HTTP", port: "2381", path: "/health", interval: 1, healthyThreshold: 2, unhealthyThreshold: 2, matcher: "200" } }, { arn: "arn:tg" }, "arn:tg");
    const listener = res("aws:lb/listener:Listener", "listener", { loadBalancerArn: "arn:lb", port: 2379, protocol: "TCP", defaultActions: [{ type: "forward", targetGroupArn: "arn:tg" }] });
    const attach = res("aws:lb/targetGroupAttachment:TargetGroupAttachment", "attach", { targetGroupArn: "arn:tg", targetId: "i-box", port: 2379 });
    const resources = [kp, bastion, box, copy, cmd, nlb, tg, listener, attach];
    const plan: Plan = {
      steps: [create(kp), create(bastion, [0]), create(box, [0]), create(copy, [1, 2]), create(cmd, [3]), create(nlb), create(tg), create(listener, [5, 6]), create(attach, [2, 6])],
      next: { resources, outputs: {} },
    };
    state = await applier.apply(plan, undefined);
    const probe = state.resources.find((r) => r.name === "probe")!;
    const out = String(probe.outputs["stdout"]);
    assert.match(out, /^from-stdin\n/, "stdin reached the command");
    assert.match(out, /lang=C\.UTF-8 secret=unset\n/, "LANG is accepted by Debian's sshd (AcceptEnv LANG LC_*), RAFTKV_SECRET is dropped");
    assert.match(out, /\nfrom-user-data\n/, "user data ran through cloud-init");
    assert.match(out, /\npayload\n/, "CopyToRemote created the parent directories and copied the file");
    assert.match(out, /\n\s*1G\n/, "the 1 GiB EBS block device is the host's second disk");

    // From the private host, the NLB's DNS name resolves and forwards to the healthy target.
    const dial = `node -e 'const s=require("net").connect(2379, process.argv[1]); s.on("data", d => { process.stdout.write(d); s.end(); }); s.on("error", e => { console.error(e.message); process.exit(1); })' ${NLB_DNS}`;
    const h = lab.host("box")!;
    let answer = "";
    for (let i = 0; i < 60 && answer === ""; i++) {
      const r = await h.exec(["bash", "-c", dial]);
      if (r.stdout.includes("hello from box")) answer = r.stdout;
      else await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(answer, "hello from box\n");
  });

  it("update runs `update` with the previous output offered as PULUMI_COMMAND_STDOUT (dropped by sshd), delete runs `delete`", async () => {
    const old = state!.resources.find((r) => r.name === "probe")!;
    const next = { ...old, inputs: { ...old.inputs, stdin: "changed\n" } };
    state = await applier.apply({ steps: [{ op: "update", urn: old.urn, old, new: next, diffKeys: ["stdin"], deleteBeforeReplace: false, after: [] }], next: { resources: state!.resources.map((r) => (r.urn === old.urn ? next : r)), outputs: {} } }, state);
    assert.equal(state.resources.find((r) => r.name === "probe")!.outputs["stdout"], "updated prev=none\n");
    const cur = state.resources.find((r) => r.name === "probe")!;
    state = await applier.apply({ steps: [{ op: "delete", urn: cur.urn, old: cur, diffKeys: [], deleteBeforeReplace: false, after: [] }], next: { resources: state.resources.filter((r) => r.urn !== cur.urn), outputs: {} } }, state);
    const r = await lab.host("box")!.exec(["cat", "/var/tmp/deleted"]);
    assert.equal(r.stdout, "bye\n");
  });

  it("fails like pulumi up: a private host without the proxy is unreachable from the runner; a failing command names its step and stderr", async () => {
    const direct = res("command:remote:Command", "direct", { connection: conn(PRIVATE_IP, false, { dialErrorLimit: 1, perDialTimeout: 2 }), create: "true" });
    await assert.rejects(applier.apply({ steps: [create(direct)], next: { resources: [...state!.resources, direct], outputs: {} } }, state), (e: unknown) => {
      assert.ok(e instanceof ApplyError);
      assert.match(e.message, /^step 0 \(create urn:pulumi:e2e::raftkv::command:remote:Command::direct\) failed: create of direct over ssh admin@10\.78\.0\.10:22: ssh: .*dial failed 2 times, giving up/);
      assert.equal(e.state.resources.find((r) => r.name === "direct"), undefined);
      return true;
    });
    const failing = res("command:remote:Command", "failing", { connection: conn(PRIVATE_IP, true), create: "echo working; echo 'fatal: no quorum' >&2; exit 3" });
    await assert.rejects(applier.apply({ steps: [create(failing)], next: { resources: [...state!.resources, failing], outputs: {} } }, state), (e: unknown) => {
      assert.ok(e instanceof ApplyError);
      assert.match(e.message, /failed: create of failing on admin@10\.78\.0\.10:22 via admin@10\.78\.255\.20:22: process exited with status 3\n--- stderr \(tail\) ---\nfatal: no quorum$/);
      return true;
    });
  });
});
