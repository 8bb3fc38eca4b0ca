/**
 * The lab of real hosts for the deployment end-to-end suite (see README.md beside this file and
 * /work/wt/E2E.md for the contract): Debian 13 hosts booted with systemd-nspawn, each in its
 * own network namespace on a per-lab bridge that plays the VPC.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureBaseImage } from "./image";
import { LabHost, ebsByIdPath, type Host, type HostSpec } from "./host";
import { assertRangeFree, cidrContains, createAttachedNetns, createVpc, deleteNetns, parseCidr, parseIp, vethName } from "./net";
import { labDir, sweepAbandonedLabs, sweepLab, type LabState } from "./sweep";
import { mustRun, runCommand } from "./run";

export type { Host, HostSpec, ExecResult } from "./host";
export { DATA_DISK_DEVICE, ebsByIdPath } from "./host";
export { sweepLab } from "./sweep";

export interface LabOptions {
  /** [a-z0-9]{1,8}; names the lab's bridge, namespaces and directory. */
  name: string;
  vpcCidr: string;
  /** The public subnet (components/addressing.ts publicSubnetCidr(vpcCidr)): the only one the runner reaches. */
  publicCidr: string;
}

export interface NetNs {
  readonly name: string;
  readonly path: string;
  /** A process inside the namespace (the machine's filesystem, only the network is the namespace's). */
  spawn(argv: string[], opts?: SpawnOptions): ChildProcess;
  /** Kills what it spawned and removes the namespace and its veth. */
  close(): Promise<void>;
}

export interface Lab {
  readonly name: string;
  /** The runner's own address on the VPC bridge (.1 of the public subnet). */
  readonly runnerIp: string;
  /** Boots a host; resolves once sshd answers and cloud-init has installed the admin keys. */
  addHost(spec: HostSpec): Promise<Host>;
  host(name: string): Host | undefined;
  hostByIp(ip: string): Host | undefined;
  /** A bare namespace on the bridge with these addresses (the load balancer's forwarder). */
  addNamespace(name: string, ips: string[]): Promise<NetNs>;
  /** Whether the runner (this process) can reach `ip`: only inside the public subnet. */
  runnerCanReach(ip: string): boolean;
  /**
   * EBS-like volumes: a sparse file per volume under the lab's directory, independent of any
   * host. Attached to a host as a loop device with the names EC2 gives it (host.ts
   * attachVolume); a terminated host releases its volumes, which keep their data.
   */
  createVolume(volumeId: string, sizeMiB: number): Promise<void>;
  /** Grows a volume in place (EBS ModifyVolume): an attached host sees the new size at once. */
  resizeVolume(volumeId: string, sizeMiB: number): Promise<void>;
  deleteVolume(volumeId: string): Promise<void>;
  attachVolume(volumeId: string, hostName: string): Promise<void>;
  detachVolume(volumeId: string, hostName: string): Promise<void>;
  /** Everything gone: containers, namespaces, veths, bridge, route, loop devices, mounts, files. */
  close(): Promise<void>;
}

const REQUIRED_COMMANDS = ["systemd-nspawn", "mmdebstrap", "ip", "nsenter", "losetup", "mount", "umount", "sysctl", "ssh", "ssh-keygen", "mkfs.ext4"];

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":")
    .concat(["/usr/sbin", "/sbin"])
    .some((d) => {
      try {
        fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Whether this machine can run the e2e suite, and if not, why (one line). */
export function hostToolsPresent(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: `the e2e lab needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: "the e2e lab needs root (network namespaces, mounts, loop devices, systemd-nspawn)" };
  const missing = REQUIRED_COMMANDS.filter((c) => !onPath(c));
  if (!onPath("nft") && !onPath("iptables")) missing.push("nft or iptables");
  if (missing.length > 0) {
    return { ok: false, reason: `the e2e lab needs ${missing.join(", ")} (Debian: apt-get install systemd-container mmdebstrap iproute2 nftables iptables openssh-client e2fsprogs util-linux mount; or run .ci/run)` };
  }
  if (!fs.existsSync("/dev/loop-control")) return { ok: false, reason: "the e2e lab needs loop devices (/dev/loop-control is missing)" };
  let filesystems = "";
  try {
    filesystems = fs.readFileSync("/proc/filesystems", "utf8");
  } catch {
    // reported below
  }
  if (!/\toverlay$/m.test(filesystems)) return { ok: false, reason: "the e2e lab needs overlayfs (modprobe overlay)" };
  return { ok: true };
}

class LabImpl implements Lab {
  private readonly hosts = new Map<string, LabHost>();
  private readonly namespaces = new Map<string, NetNs>();
  private readonly usedIps = new Map<string, string>();
  private vethCounter = 0;
  private closed = false;
  private readonly volumes = new Map<string, { file: string; sizeMiB: number; attachedTo?: string; loop?: string }>();

  constructor(
    readonly name: string,
    readonly runnerIp: string,
    private readonly opts: LabOptions,
    private readonly baseRoot: string,
  ) {}

  private checkOpen(): void {
    if (this.closed) throw new Error(`lab ${this.name} is closed`);
  }

  private claimIp(ip: string, owner: string): void {
    parseIp(ip);
    const holder = this.usedIps.get(ip);
    if (holder !== undefined) throw new Error(`address ${ip} is already used by ${holder} in lab ${this.name}`);
    if (ip === this.runnerIp) throw new Error(`address ${ip} is the runner's (the VPC router address of the public subnet)`);
    this.usedIps.set(ip, owner);
  }

  private releaseIps(owner: string): void {
    for (const [ip, o] of this.usedIps) if (o === owner) this.usedIps.delete(ip);
  }

  async addHost(spec: HostSpec): Promise<Host> {
    this.checkOpen();
    if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(spec.name)) throw new Error(`invalid host name ${JSON.stringify(spec.name)}: use [a-z0-9-], at most 41 characters`);
    if (this.hosts.has(spec.name)) throw new Error(`lab ${this.name} already has a host named ${spec.name}`);
    if (spec.dataDisk && !(Number.isInteger(spec.dataDisk.sizeMiB) && spec.dataDisk.sizeMiB >= 16)) {
      throw new Error(`data disk of ${spec.name}: sizeMiB must be an integer >= 16`);
    }
    this.claimIp(spec.privateIp, `host ${spec.name}`);
    const netns = `rk-${this.name}-h-${spec.name}`;
    const veth = vethName(this.name, this.vethCounter++);
    const hostDir = path.join(labDir(this.name), "hosts", spec.name);
    const host = new LabHost(
      {
        lab: this.name,
        baseRoot: this.baseRoot,
        hostDir,
        netns,
        veth,
        vpcPrefix: parseCidr(this.opts.vpcCidr).prefix,
        onDestroyed: async (h) => {
          this.hosts.delete(h.name);
          this.releaseIps(`host ${h.name}`);
          // Terminating an instance detaches its volumes; they keep their data.
          for (const { volumeId, loop } of h.attachedVolumes()) {
            await runCommand(["losetup", "-d", loop]);
            const v = this.volumes.get(volumeId);
            if (v !== undefined) {
              delete v.attachedTo;
              delete v.loop;
            }
          }
        },
      },
      spec,
    );
    this.hosts.set(spec.name, host);
    try {
      await createAttachedNetns(this.name, netns, Number(veth.split("-").pop()), [spec.privateIp], this.opts.vpcCidr);
      await host.prepare();
      await host.start();
    } catch (err) {
      await host.kill().catch(() => undefined);
      await host.teardown().catch(() => undefined);
      throw err;
    }
    return host;
  }

  host(name: string): Host | undefined {
    return this.hosts.get(name);
  }

  hostByIp(ip: string): Host | undefined {
    return [...this.hosts.values()].find((h) => h.privateIp === ip);
  }

  async addNamespace(name: string, ips: string[]): Promise<NetNs> {
    this.checkOpen();
    if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(name)) throw new Error(`invalid namespace name ${JSON.stringify(name)}`);
    if (this.namespaces.has(name)) throw new Error(`lab ${this.name} already has a namespace named ${name}`);
    if (ips.length === 0) throw new Error(`namespace ${name} needs at least one address`);
    for (const ip of ips) this.claimIp(ip, `namespace ${name}`);
    const nsName = `rk-${this.name}-n-${name}`;
    const veth = vethName(this.name, this.vethCounter++);
    const children = new Set<ChildProcess>();
    let closed = false;
    const ns: NetNs = {
      name: nsName,
      path: `/run/netns/${nsName}`,
      spawn: (argv, opts = {}) => {
        if (closed) throw new Error(`namespace ${name} is closed`);
        const child = spawn("nsenter", [`--net=/run/netns/${nsName}`, "--", ...argv], opts);
        children.add(child);
        child.once("exit", () => children.delete(child));
        return child;
      },
      close: async () => {
        if (closed) return;
        closed = true;
        for (const c of children) c.kill("SIGKILL");
        await deleteNetns(nsName, veth); // also kills anything else left inside
        this.namespaces.delete(name);
        this.releaseIps(`namespace ${name}`);
      },
    };
    this.namespaces.set(name, ns);
    try {
      await createAttachedNetns(this.name, nsName, Number(veth.split("-").pop()), ips, this.opts.vpcCidr);
    } catch (err) {
      await ns.close();
      throw err;
    }
    return ns;
  }

  runnerCanReach(ip: string): boolean {
    return cidrContains(parseCidr(this.opts.publicCidr), parseIp(ip)) && ip !== this.runnerIp;
  }

  private volume(volumeId: string) {
    const v = this.volumes.get(volumeId);
    if (v === undefined) throw new Error(`lab ${this.name} has no volume ${volumeId}`);
    return v;
  }

  async createVolume(volumeId: string, sizeMiB: number): Promise<void> {
    this.checkOpen();
    ebsByIdPath(volumeId);
    if (this.volumes.has(volumeId)) throw new Error(`volume ${volumeId} exists`);
    if (!(Number.isInteger(sizeMiB) && sizeMiB >= 16)) throw new Error(`volume ${volumeId}: sizeMiB must be an integer >= 16`);
    const dir = path.join(labDir(this.name), "volumes");
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${volumeId}.img`);
    const fd = fs.openSync(file, "w");
    fs.ftruncateSync(fd, sizeMiB * 1024 * 1024);
    fs.closeSync(fd);
    this.volumes.set(volumeId, { file, sizeMiB });
  }

  async resizeVolume(volumeId: string, sizeMiB: number): Promise<void> {
    const v = this.volume(volumeId);
    if (sizeMiB < v.sizeMiB) throw new Error(`volume ${volumeId}: EBS volumes only grow (${v.sizeMiB} -> ${sizeMiB} MiB)`);
    fs.truncateSync(v.file, sizeMiB * 1024 * 1024);
    v.sizeMiB = sizeMiB;
    if (v.loop !== undefined) await mustRun(["losetup", "-c", v.loop]);
  }

  async deleteVolume(volumeId: string): Promise<void> {
    const v = this.volume(volumeId);
    if (v.attachedTo !== undefined) throw new Error(`volume ${volumeId} is attached to ${v.attachedTo} (VolumeInUse)`);
    fs.rmSync(v.file, { force: true });
    this.volumes.delete(volumeId);
  }

  async attachVolume(volumeId: string, hostName: string): Promise<void> {
    const v = this.volume(volumeId);
    const h = this.hosts.get(hostName);
    if (h === undefined) throw new Error(`lab ${this.name} has no host ${hostName}`);
    if (v.attachedTo !== undefined) throw new Error(`volume ${volumeId} is attached to ${v.attachedTo} (VolumeInUse)`);
    const loop = (await mustRun(["losetup", "--find", "--show", v.file])).trim();
    try {
      await h.attachVolume(volumeId, loop);
    } catch (err) {
      await runCommand(["losetup", "-d", loop]);
      throw err;
    }
    v.attachedTo = hostName;
    v.loop = loop;
  }

  async detachVolume(volumeId: string, hostName: string): Promise<void> {
    const v = this.volume(volumeId);
    if (v.attachedTo !== hostName) throw new Error(`volume ${volumeId} is not attached to ${hostName}`);
    const h = this.hosts.get(hostName);
    const loop = h !== undefined ? await h.detachVolume(volumeId) : v.loop;
    if (loop !== undefined) await runCommand(["losetup", "-d", loop]);
    delete v.attachedTo;
    delete v.loop;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Power cuts: the lab is going away, a clean halt would only cost time.
    await Promise.all([...this.hosts.values()].map((h) => h.kill().catch(() => undefined)));
    await Promise.all([...this.namespaces.values()].map((n) => n.close().catch(() => undefined)));
    await sweepLab(this.name);
  }
}

/**
 * Opens lab `name`: first removes what a crashed earlier run of the same name (or of any lab
 * whose process is gone) left, then makes the bridge and routes, and the base image if this
 * machine has none yet.
 */
export async function openLab(opts: LabOptions): Promise<Lab> {
  if (!/^[a-z0-9]{1,8}$/.test(opts.name)) throw new Error(`invalid lab name ${JSON.stringify(opts.name)}: [a-z0-9]{1,8}`);
  const tools = hostToolsPresent();
  if (!tools.ok) throw new Error(tools.reason);
  await sweepAbandonedLabs();
  await sweepLab(opts.name);
  const baseRoot = await ensureBaseImage();
  await assertRangeFree(opts.vpcCidr);
  const dir = labDir(opts.name);
  fs.mkdirSync(dir, { recursive: true });
  const state: LabState = { name: opts.name, vpcCidr: opts.vpcCidr, publicCidr: opts.publicCidr, ownerPid: process.pid };
  fs.writeFileSync(path.join(dir, "state.json"), JSON.stringify(state));
  try {
    const runnerIp = await createVpc(opts.name, opts.vpcCidr, opts.publicCidr);
    return new LabImpl(opts.name, runnerIp, opts, baseRoot);
  } catch (err) {
    await sweepLab(opts.name);
    throw err;
  }
}

/** For tests and diagnostics: whether anything of lab `name` is still on the machine. */
export async function labLeftovers(name: string): Promise<string[]> {
  const found: string[] = [];
  const dir = labDir(name);
  const ns = await runCommand(["ip", "netns", "list"]);
  for (const l of ns.stdout.split("\n")) if (l.startsWith(`rk-${name}-`)) found.push(`netns ${l.split(" ")[0]}`);
  const links = await runCommand(["ip", "-o", "link", "show"]);
  for (const l of links.stdout.split("\n")) {
    const n = /^\d+:\s+([^:@\s]+)/.exec(l)?.[1];
    if (n && (n === `rk-${name}` || n.startsWith(`rk-${name}-`))) found.push(`link ${n}`);
  }
  const loops = await runCommand(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"]);
  for (const l of loops.stdout.split("\n")) if (l.includes(`${dir}/`)) found.push(`loop ${l.trim()}`);
  for (const l of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (l.includes(`${dir}/`)) found.push(`mount ${l.split(" ")[4]}`);
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    let cmd = "";
    try {
      cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmd.includes(`${dir}/`) && Number(e) !== process.pid) found.push(`process ${e} ${cmd.replace(/\0/g, " ").trim()}`);
  }
  if (fs.existsSync(dir)) found.push(`directory ${dir}`);
  return found;
}
