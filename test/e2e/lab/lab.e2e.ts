/**
 * The lab itself, tested with real tools: two hosts booted from the Debian 13 image, a real
 * OpenSSH client as `admin` through the public host as jump host, the product's own data-volume
 * user data formatting and mounting a real block device, stop/kill/start, destroy and close
 * leaving nothing behind.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderDataVolumeScript } from "../../../components/hostScripts";
import { ebsByIdPath, hostToolsPresent, labLeftovers, openLab, sweepLab, type Host, type Lab } from "./index";
import { mustRun, runCommand, waitFor } from "./run";
import { labDir } from "./sweep";

const LAB = "labtest";
const VPC = "10.213.0.0/16";
const PUBLIC = "10.213.255.0/24";
const BASTION_IP = "10.213.255.10";
const MASTER_IP = "10.213.0.10";
const NLB_IP = "10.213.0.4";

const MARKER_USER_DATA = `#!/bin/bash
# Appends one line per run: proves user data ran, and that it ran once.
date -u +%s >> /var/tmp/user-data-ran
`;

describe("e2e lab: real hosts", function () {
  this.timeout(600_000);
  let lab: Lab | undefined;
  let bastion: Host;
  let master: Host;
  let tmp: string;
  let sshConfig: string;

  const ssh = (args: string[], timeoutMs = 60_000) => runCommand(["ssh", "-F", sshConfig, ...args], { timeoutMs });
  const viaBastion = (cmd: string) => ssh(["-J", `admin@${BASTION_IP}`, `admin@${MASTER_IP}`, cmd], 90_000);

  before(async function () {
    const tools = hostToolsPresent();
    if (!tools.ok) throw new Error(`this machine cannot run the e2e suite: ${tools.reason}`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-lab-test-"));
    await mustRun(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-test", "-f", path.join(tmp, "id")]);
    sshConfig = path.join(tmp, "ssh_config");
    // A config file, not -o options: ssh hands -F on to the jump connection, not -o.
    fs.writeFileSync(
      sshConfig,
      [
        "Host *",
        `  IdentityFile ${path.join(tmp, "id")}`,
        "  IdentitiesOnly yes",
        `  UserKnownHostsFile ${path.join(tmp, "known_hosts")}`,
        "  StrictHostKeyChecking accept-new",
        "  BatchMode yes",
        "  ConnectTimeout 10",
        "  LogLevel ERROR",
        "",
      ].join("\n"),
    );
    const pub = fs.readFileSync(path.join(tmp, "id.pub"), "utf8").trim();
    lab = await openLab({ name: LAB, vpcCidr: VPC, publicCidr: PUBLIC });
    const bastionUp = lab.addHost({ name: "bastion", instanceId: "i-0b0000000000000001", privateIp: BASTION_IP, userData: MARKER_USER_DATA, sshAuthorizedKeys: [pub] });
    // The applier syncs VPC DNS while hosts are still being created: entries given before the
    // tree exists must land in it.
    const early = lab.host("bastion")!.setHostsEntries({ "early.raftkv.internal": MASTER_IP });
    [bastion, master] = await Promise.all([
      bastionUp,
      lab.addHost({
        name: "raftkv-1",
        instanceId: "i-0m0000000000000001",
        privateIp: MASTER_IP,
        sshAuthorizedKeys: [pub],
      }),
    ]);
    await early;
  });

  after(async function () {
    await lab?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("the runner reaches only the public subnet: the bastion directly, the private host not at all", async function () {
    assert.equal(lab!.runnerCanReach(BASTION_IP), true);
    assert.equal(lab!.runnerCanReach(MASTER_IP), false);
    const direct = await ssh([`admin@${BASTION_IP}`, "sudo -n id -u && hostname"]);
    assert.equal(direct.code, 0, direct.stderr);
    assert.deepEqual(direct.stdout.trim().split("\n"), ["0", "bastion"]);
    const blocked = await ssh([`admin@${MASTER_IP}`, "true"]);
    assert.notEqual(blocked.code, 0);
    assert.match(blocked.stderr, /unreachable|No route to host/i);
  });

  it("SSH as admin through the bastion as jump host reaches the private host, with passwordless sudo and Node.js 20", async function () {
    const r = await viaBastion("hostname && node --version && sudo -n id -u");
    assert.equal(r.code, 0, r.stderr);
    const [hostname, node, uid] = r.stdout.trim().split("\n");
    assert.equal(hostname, "raftkv-1");
    assert.match(node ?? "", /^v20\./);
    assert.equal(uid, "0");
  });

  it("user data ran through cloud-init (NoCloud) as on EC2, once", async function () {
    const status = await bastion.exec(["cloud-init", "status", "--wait"]);
    assert.equal(status.code, 0, `${status.stdout}${status.stderr}`);
    assert.match(status.stdout, /status: done/);
    const marker = await bastion.exec(["cat", "/var/tmp/user-data-ran"]);
    assert.equal(marker.code, 0, marker.stderr);
    assert.equal(marker.stdout.trim().split("\n").length, 1);
  });

  it("an attached volume appears under its EBS by-id name; the product's volume script formats and mounts it, and the volume's block device grows in place (not covered: online ext4 growth, shimmed here for want of CAP_SYS_RESOURCE)", async function () {
    const volumeId = "vol-0123456789abcdef0";
    await lab!.createVolume(volumeId, 64);
    await lab!.attachVolume(volumeId, "raftkv-1");
    const mount = await master.exec(["bash", "-c", renderDataVolumeScript("create", { volumeId, sizeGiB: 1 })]);
    assert.equal(mount.code, 0, mount.stderr);
    const r = await viaBastion(`findmnt -n -o FSTYPE,TARGET /var/lib/raftkv && sudo -n blkid -s LABEL -o value ${ebsByIdPath(volumeId)} && grep -c ${ebsByIdPath(volumeId)} /etc/fstab`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => l.trim().replace(/\s+/g, " ")), ["ext4 /var/lib/raftkv", "raftkv-data", "1"]);
    await lab!.resizeVolume(volumeId, 128);
    const grow = await master.exec(["bash", "-c", renderDataVolumeScript("update", { volumeId, sizeGiB: 2 })]);
    assert.equal(grow.code, 0, grow.stderr);
    // The block device grew; the mounted ext4 cannot grow here (no CAP_SYS_RESOURCE: README.md).
    const size = await master.exec(["blockdev", "--getsize64", ebsByIdPath(volumeId)]);
    assert.equal(size.stdout.trim(), String(128 * 1024 * 1024), `grown in place: ${size.stdout}`);
    // Mounted on a running host: a detach is refused (EC2 leaves it "busy"), after a stop it works.
    await assert.rejects(lab!.detachVolume(volumeId, "raftkv-1"), /busy/);
  });

  it("VPC DNS: setHostsEntries names addresses in /etc/hosts, also when called while the host was being created", async function () {
    const first = await bastion.exec(["getent", "hosts", "early.raftkv.internal"]);
    assert.equal(first.code, 0, "entries set before the host's tree existed were lost");
    assert.match(first.stdout, new RegExp(`^${MASTER_IP.replace(/\./g, "\\.")}\\s`));
    await bastion.setHostsEntries({ "nlb.raftkv.internal": NLB_IP, "raftkv-1.internal": MASTER_IP });
    await bastion.setHostsEntries({ "nlb.raftkv.internal": NLB_IP });
    const r = await bastion.exec(["getent", "hosts", "nlb.raftkv.internal"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${NLB_IP.replace(/\./g, "\\.")}\\s+nlb\\.raftkv\\.internal`));
    const gone = await bastion.exec(["getent", "hosts", "raftkv-1.internal"]);
    assert.notEqual(gone.code, 0, "an entry from the previous call survived");
    const self = await bastion.exec(["getent", "hosts", "bastion"]);
    assert.match(self.stdout, new RegExp(`^${BASTION_IP.replace(/\./g, "\\.")}\\s+bastion`));
  });

  it("a bare namespace on the bridge serves every host; nothing leaves the machine", async function () {
    const ns = await lab!.addNamespace("nlb", [NLB_IP]);
    try {
      const server = ns.spawn(["node", "-e", `require("net").createServer((s) => s.end("hello from the forwarder\\n")).listen(7000, "${NLB_IP}")`], {
        stdio: "ignore",
      });
      assert.ok(server.pid);
      const got = await waitFor("the forwarder to answer from the private host", 30_000, async () => {
        const r = await master.exec(["bash", "-c", `exec 3<>/dev/tcp/${NLB_IP}/7000 && cat <&3`], { timeoutMs: 5000 });
        return r.code === 0 ? r.stdout : undefined;
      });
      assert.equal(got, "hello from the forwarder\n");
      assert.equal(lab!.runnerCanReach(NLB_IP), false);
      // No default route in a host: the internet is unreachable, not merely slow.
      const out = await master.exec(["ip", "route", "get", "1.1.1.1"]);
      assert.notEqual(out.code, 0);
      assert.match(out.stderr, /unreachable/i);
    } finally {
      await ns.close();
    }
    const left = await runCommand(["ip", "netns", "list"]);
    assert.ok(!left.stdout.includes(ns.name), `${ns.name} still exists`);
  });

  it("the console is read: a host writes far more to /dev/console than a pseudo-TTY holds (~14 KiB) without blocking, into console.log", async function () {
    // With --console=passive nothing read the console: the 15th KiB blocked its writer forever,
    // and a boot whose status lines filled it hung (systemd and cloud-init write there).
    const r = await master.exec(["bash", "-c", "for i in $(seq 1 128); do printf 'console-probe %0500d\\n' \"$i\"; done > /dev/console && echo written"], { timeoutMs: 60_000 });
    assert.equal(r.stdout.trim(), "written", `writing 64 KiB to the console blocked: ${r.stderr}`);
    const consoleLog = path.join(labDir(LAB), "hosts", "raftkv-1", "console.log");
    await waitFor("the console probe in console.log", 30_000, async () => (fs.readFileSync(consoleLog, "utf8").includes(`console-probe ${"128".padStart(500, "0")}`) ? true : undefined));
  });

  it("stop and start (EC2 stop/start) keep the data disk and its mount; a power cut and start do not rerun user data", async function () {
    const w = await viaBastion("echo kept-across-restarts | sudo -n tee /var/lib/raftkv/probe >/dev/null && sync");
    assert.equal(w.code, 0, w.stderr);
    await Promise.all([master.stop(), bastion.kill()]);
    await assert.rejects(master.exec(["true"]), /not running/);
    await Promise.all([master.start(), bastion.start()]);
    const r = await viaBastion("findmnt -n -o FSTYPE /var/lib/raftkv && cat /var/lib/raftkv/probe");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["ext4", "kept-across-restarts"]);
    const marker = await bastion.exec(["cat", "/var/tmp/user-data-ran"]);
    assert.equal(marker.stdout.trim().split("\n").length, 1, "user data ran again after a restart with the same instance-id");
  });

  it("destroy removes the host, its namespace, its disk and its tree; close leaves nothing on the machine", async function () {
    const loopsBefore = (await mustRun(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"])).split("\n").filter((l) => l.includes(LAB));
    assert.equal(loopsBefore.length, 1);
    await master.destroy();
    assert.equal(lab!.host("raftkv-1"), undefined);
    assert.equal(lab!.hostByIp(MASTER_IP), undefined);
    const left = await labLeftovers(LAB);
    assert.ok(!left.some((l) => l.includes("raftkv-1") || l.startsWith("loop")), left.join("\n"));
    await assert.rejects(master.exec(["true"]), /not running/);
    await lab!.close();
    assert.deepEqual(await labLeftovers(LAB), []);
    const bridge = await runCommand(["ip", "link", "show", `rk-${LAB}`]);
    assert.notEqual(bridge.code, 0);
    const route = await mustRun(["ip", "route", "show", "type", "unreachable"]);
    assert.ok(!route.includes(VPC), route);
  });
});

describe("e2e lab: leftovers of a crashed run", function () {
  this.timeout(600_000);
  const NAME = "labcrash";

  after(async function () {
    await sweepLab(NAME);
  });

  it("a runner killed with hosts up leaves them running; the next openLab of that name removes everything", async function () {
    const tools = hostToolsPresent();
    if (!tools.ok) throw new Error(`this machine cannot run the e2e suite: ${tools.reason}`);
    const script = `
      const { openLab } = require(${JSON.stringify(path.join(__dirname, "index.ts"))});
      (async () => {
        const lab = await openLab({ name: ${JSON.stringify(NAME)}, vpcCidr: "10.215.0.0/16", publicCidr: "10.215.255.0/24" });
        await lab.addHost({ name: "doomed", instanceId: "i-doomed", privateIp: "10.215.0.10", sshAuthorizedKeys: [], dataDisk: { sizeMiB: 32 } });
        process.stdout.write("ready\\n");
        setInterval(() => undefined, 1000);
      })().catch((e) => { process.stderr.write(String(e && e.message) + "\\n"); process.exit(1); });
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    await waitFor("the crashing runner to boot its host", 300_000, async () => {
      if (child.exitCode !== null) throw new Error(`the runner exited early: ${err}`);
      return out.includes("ready") ? true : undefined;
    });
    child.kill("SIGKILL");
    await exited;
    const left = await labLeftovers(NAME);
    for (const kind of ["process", "netns", "link", "loop", "mount", "directory"]) {
      assert.ok(left.some((l) => l.startsWith(kind)), `expected a leftover ${kind} after the crash:\n${left.join("\n")}`);
    }
    const again = await openLab({ name: NAME, vpcCidr: "10.215.0.0/16", publicCidr: "10.215.255.0/24" });
    const reopened = await labLeftovers(NAME);
    // Only the new lab's bridge and directory: the crashed run's hosts are gone.
    assert.deepEqual(reopened.filter((l) => !/^link rk-labcrash$|^directory /.test(l)), []);
    await again.close();
    assert.deepEqual(await labLeftovers(NAME), []);
  });

  it("close() finishes in a runner with nothing else to wait for (Node does not exit halfway through)", async function () {
    const script = `
      const { openLab } = require(${JSON.stringify(path.join(__dirname, "index.ts"))});
      (async () => {
        const lab = await openLab({ name: ${JSON.stringify(NAME)}, vpcCidr: "10.215.0.0/16", publicCidr: "10.215.255.0/24" });
        const host = await lab.addHost({ name: "short", instanceId: "i-short", privateIp: "10.215.0.11", sshAuthorizedKeys: [] });
        await host.stop();
        process.stdout.write("stopped\\n");
        await host.start();
        await lab.close();
        process.stdout.write("closed\\n");
      })().catch((e) => { process.stderr.write(String(e && e.message) + "\\n"); process.exit(1); });
    `;
    const r = await runCommand([process.execPath, "--import", "tsx", "-e", script], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["stopped", "closed"]);
    assert.deepEqual(await labLeftovers(NAME), []);
  });
});
