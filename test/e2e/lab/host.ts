/**
 * One lab host: an overlay over the base image, a NoCloud seed carrying the instance's user data
 * and SSH keys, an optional data disk (a loop device over a sparse file), and systemd-nspawn
 * booting it with systemd as PID 1 inside the host's network namespace.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { mustRun, runCommand, waitFor, type RunResult } from "./run";
import { deleteNetns } from "./net";
import { collectBootEvidence } from "./evidence";
import { createMachineCgroups, removeMachineCgroups } from "./cgroup";

export interface HostSpec {
  /** e.g. "raftkv-1"; also the hostname cloud-init sets from local-hostname. */
  name: string;
  /** cloud-init instance-id: user data runs once per instance-id, as on EC2. */
  instanceId: string;
  privateIp: string;
  /** cloud-init NoCloud user-data (a "#!" script or #cloud-config), as EC2 user data. */
  userData?: string;
  /** For the `admin` user (cloud-init default user, passwordless sudo), as the Debian AMI. */
  sshAuthorizedKeys: string[];
  /** A loop device bound into the container as its second block device (/dev/nvme1n1). */
  dataDisk?: { sizeMiB: number };
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Host {
  readonly name: string;
  readonly privateIp: string;
  readonly netnsPath: string;
  /** As root inside the host (all its namespaces, via nsenter); rejects if the host is not running. */
  exec(argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** Clean shutdown (EC2 stop): tree and data disk kept. */
  stop(): Promise<void>;
  /** Power cut: SIGKILL the container. */
  kill(): Promise<void>;
  /** Boot again (same instance-id: user data does not run again); resolves once sshd answers. */
  start(): Promise<void>;
  /** EC2 terminate: container, its tree and its data disk gone. */
  destroy(): Promise<void>;
  /** "VPC DNS": name -> ip in /etc/hosts. Replaces the entries set by the previous call. */
  setHostsEntries(entries: Record<string, string>): Promise<void>;
}

/**
 * Online ext4 growth (resize2fs on a mounted filesystem) needs CAP_SYS_RESOURCE, which root has on
 * EC2 but this machine's runner, and so every lab host, does not have. The shim (first in root's
 * PATH) runs the real resize2fs and turns exactly that refusal into a line on stderr and success;
 * every other failure stays a failure. The volume's growth itself (the block device's size) is
 * reproduced; the filesystem's is not (README.md).
 */
const RESIZE2FS_SHIM = `#!/bin/sh
# raftkv e2e lab: see RESIZE2FS_SHIM in test/e2e/lab/host.ts.
out="$(/usr/sbin/resize2fs "$@" 2>&1)" && { printf '%s\\n' "$out"; exit 0; }
case "$out" in
  *"Permission denied to resize filesystem"*) echo "lab: online resize needs CAP_SYS_RESOURCE, which this lab cannot grant: filesystem not grown" >&2; exit 0 ;;
esac
printf '%s\\n' "$out" >&2
exit 1
`;

/** The NVMe name EC2 gives an EBS volume on Nitro instances: udev's by-id link of its serial. */
export function ebsByIdPath(volumeId: string): string {
  if (!/^vol-[0-9a-z]+$/.test(volumeId)) throw new Error(`invalid EBS volume id ${JSON.stringify(volumeId)}`);
  return `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`;
}

/** What a host needs from its lab. */
export interface HostContext {
  lab: string;
  baseRoot: string;
  hostDir: string;
  netns: string;
  veth: string;
  vpcPrefix: number;
  /** Called once a host is gone (frees its address and releases the volumes attached to it). */
  onDestroyed(host: LabHost): void | Promise<void>;
}

/** The device name the data disk gets inside: the second NVMe disk of a Nitro instance. */
export const DATA_DISK_DEVICE = "/dev/nvme1n1";
const HOSTS_BEGIN = "# BEGIN raftkv-lab vpc dns";
const HOSTS_END = "# END raftkv-lab vpc dns";
const EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BOOT_TIMEOUT_MS = Number(process.env.RAFTKV_E2E_BOOT_TIMEOUT_MS ?? 180_000);
const STOP_TIMEOUT_MS = 60_000;

export const machineName = (lab: string, host: string): string => `rk-${lab}-${host}`;

/** The PIDs whose parent is `ppid`. */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === ppid && fields[0] !== "Z") out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function yamlString(s: string): string {
  return JSON.stringify(s); // JSON strings are YAML strings
}

export class LabHost implements Host {
  readonly name: string;
  readonly privateIp: string;
  readonly netnsPath: string;
  readonly instanceId: string;
  private readonly machine: string;
  private readonly merged: string;
  private loopDevice: string | undefined;
  private nspawn: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private state: "new" | "running" | "stopped" | "destroyed" = "new";
  private prepared = false;
  private hostsLines: string[] = [];
  /** Attached EBS-like volumes (Lab.attachVolume): loop device and the names it has inside. */
  private readonly volumes = new Map<string, { loop: string; device: string; byId: string }>();

  constructor(
    private readonly ctx: HostContext,
    private readonly spec: HostSpec,
  ) {
    this.name = spec.name;
    this.privateIp = spec.privateIp;
    this.instanceId = spec.instanceId;
    this.netnsPath = `/run/netns/${ctx.netns}`;
    this.machine = machineName(ctx.lab, spec.name);
    this.merged = path.join(ctx.hostDir, "root");
  }

  get running(): boolean {
    return this.state === "running";
  }

  /** Tree, identity, seed and disk; the network namespace already exists. */
  async prepare(): Promise<void> {
    const { hostDir, baseRoot } = this.ctx;
    for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(hostDir, d), { recursive: true });
    await mustRun([
      "mount",
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${baseRoot},upperdir=${path.join(hostDir, "upper")},workdir=${path.join(hostDir, "work")}`,
      this.merged,
    ]);
    const r = this.merged;
    fs.writeFileSync(path.join(r, "etc/machine-id"), `${randomBytes(16).toString("hex")}\n`);
    fs.writeFileSync(path.join(r, "etc/hostname"), `${this.name}\n`);
    fs.writeFileSync(
      path.join(r, "etc/hosts"),
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${this.privateIp}\t${this.name}\n${HOSTS_BEGIN}\n${HOSTS_END}\n`,
    );
    fs.mkdirSync(path.join(r, "usr/local/sbin"), { recursive: true });
    fs.writeFileSync(path.join(r, "usr/local/sbin/resize2fs"), RESIZE2FS_SHIM, { mode: 0o755 });
    this.prepared = true;
    this.writeHostsBlock();
    const seed = path.join(r, "var/lib/cloud/seed/nocloud");
    fs.mkdirSync(seed, { recursive: true, mode: 0o700 });
    const keys = this.spec.sshAuthorizedKeys.map((k) => `  - ${yamlString(k.trim())}`).join("\n");
    fs.writeFileSync(
      path.join(seed, "meta-data"),
      `instance-id: ${yamlString(this.instanceId)}\nlocal-hostname: ${yamlString(this.name)}\n` +
        (keys ? `public-keys:\n${keys}\n` : ""),
      { mode: 0o600 },
    );
    fs.writeFileSync(path.join(seed, "user-data"), this.spec.userData ?? "", { mode: 0o600 });
    if (this.spec.dataDisk) {
      const img = path.join(hostDir, "disk.img");
      const fd = fs.openSync(img, "w");
      fs.ftruncateSync(fd, this.spec.dataDisk.sizeMiB * 1024 * 1024);
      fs.closeSync(fd);
      this.loopDevice = (await mustRun(["losetup", "--find", "--show", img])).trim();
    }
  }

  async start(): Promise<void> {
    if (this.state === "running") return;
    if (this.state === "destroyed") throw new Error(`host ${this.name} was destroyed`);
    fs.rmSync(`/run/systemd/nspawn/propagate/${this.machine}`, { recursive: true, force: true });
    const args = [
      "-D",
      this.merged,
      "-M",
      this.machine,
      `--hostname=${this.name}`,
      "--boot",
      "--register=no",
      "--keep-unit",
      // read-only, not passive: passive allocates the console's pseudo-TTY and never reads it,
      // so once ~14 KiB are written to /dev/console (systemd's status lines, cloud-init's
      // output) every writer blocks, systemd (PID 1) included, and the boot hangs with sshd
      // never started (README.md "Why --console=read-only"). read-only copies the console into
      // console.log and reads no input.
      "--console=read-only",
      "--resolv-conf=off",
      "--timezone=off",
      "--link-journal=no",
      `--network-namespace-path=${this.netnsPath}`,
    ];
    if (this.loopDevice) {
      // The disk as the device the user data looks for, and under its own name too: without
      // udev there is no /dev/disk/by-label, so `mount LABEL=...` finds it by scanning the
      // kernel's partition list (/proc/partitions names it loopN).
      args.push(`--bind=${this.loopDevice}:${DATA_DISK_DEVICE}`, `--bind=${this.loopDevice}`);
    }
    // Attached volumes keep their attachment across stop/start, as EBS volumes do.
    for (const v of this.volumes.values()) args.push(`--bind=${v.loop}:${v.device}`, `--bind=${v.loop}:${v.byId}`);
    const log = fs.openSync(path.join(this.ctx.hostDir, "console.log"), "a");
    // Into a cgroup of its own first (cgroup.ts: containers sharing one cgroup tree broke each
    // other's unit starts), then exec systemd-nspawn.
    const procs = createMachineCgroups(this.machine).map((d) => path.join(d, "cgroup.procs"));
    const child = spawn(
      "/bin/sh",
      ["-c", 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 1; shift; done; shift; exec systemd-nspawn "$@"', "sh", ...procs, "--", ...args],
      { detached: true, stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    // Not keeping the runner alive by itself (a forgotten host is swept by the next openLab),
    // but referenced again while someone waits for it to exit (see waitExited).
    child.unref();
    this.nspawn = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    this.state = "running";
    // The container may also end on its own (`poweroff` inside, a crash): the host is then stopped.
    void this.exited.then(() => {
      if (this.nspawn === child && this.state === "running") this.afterExit();
    });
    try {
      await this.waitBooted();
      await this.checkDataDisk();
    } catch (err) {
      const tail = fs.readFileSync(path.join(this.ctx.hostDir, "console.log"), "utf8").trim().split("\n").slice(-15).join("\n");
      // While the container still runs: its journal and systemd's jobs say why (evidence.ts).
      const evidence =
        this.state === "running"
          ? await collectBootEvidence({ machine: this.machine, hostDir: this.ctx.hostDir, initPid: this.initPid(), exec: (argv, o) => this.exec(argv, o) }).then(
              (e) => `\n${e.summary}`,
              (e: Error) => `\n(no evidence: ${e.message})`,
            )
          : "";
      throw new Error(`host ${this.name} did not boot: ${(err as Error).message}\n--- console (last lines) ---\n${tail}${evidence}`);
    }
  }

  /**
   * The container must be allowed to open its data disk. Here the runner's device cgroup (v1)
   * allows everything and systemd-nspawn adds no device policy when it registers no scope; on a
   * machine where the runner's device cgroup is restricted, allow the loop device explicitly
   * (cgroup v1), and in any case fail with a clear reason rather than let the user data fail.
   */
  private async checkDataDisk(): Promise<void> {
    const loop = this.loopDevice;
    const init = this.initPid();
    if (loop === undefined || init === undefined) return;
    const cg = /^\d+:devices:(.*)$/m.exec(fs.readFileSync(`/proc/${init}/cgroup`, "utf8"))?.[1];
    const { rdev } = fs.statSync(loop);
    const allow = cg && cg !== "/" ? path.join("/sys/fs/cgroup/devices", cg, "devices.allow") : undefined;
    if (allow && fs.existsSync(allow)) {
      try {
        fs.writeFileSync(allow, `b ${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)} rwm`);
      } catch {
        // the parent cgroup denies it; reported by the check below
      }
    }
    const r = await this.exec(["blockdev", "--getsize64", DATA_DISK_DEVICE], { timeoutMs: 30_000 });
    if (r.code !== 0) {
      throw new Error(
        `host ${this.name} cannot open its data disk ${DATA_DISK_DEVICE} (${loop}): ${r.stderr.trim()}; the runner's device cgroup must allow block devices`,
      );
    }
  }

  /**
   * Attaches a volume's loop device, as EC2 attaches an EBS volume to a running instance: the
   * next NVMe name, and (what udev makes from the volume's serial on a Nitro instance)
   * /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id>. A running host gets the device
   * nodes at once; every later boot binds them.
   */
  async attachVolume(volumeId: string, loop: string): Promise<void> {
    if (this.state === "destroyed") throw new Error(`host ${this.name} was destroyed`);
    if (this.volumes.has(volumeId)) throw new Error(`volume ${volumeId} is already attached to ${this.name}`);
    const used = new Set([...(this.loopDevice ? [DATA_DISK_DEVICE] : []), ...[...this.volumes.values()].map((v) => v.device)]);
    let n = 1;
    while (used.has(`/dev/nvme${n}n1`)) n++;
    const v = { loop, device: `/dev/nvme${n}n1`, byId: ebsByIdPath(volumeId) };
    this.volumes.set(volumeId, v);
    if (this.state !== "running") return;
    const { rdev } = fs.statSync(loop);
    const major = Math.floor(rdev / 256) & 0xfff;
    const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    const r = await this.exec([
      "sh",
      "-c",
      `mknod -m 0660 ${v.device} b ${major} ${minor} && mkdir -p /dev/disk/by-id && ln -sf ../../${v.device.slice(5)} ${v.byId} && blockdev --getsize64 ${v.byId}`,
    ]);
    if (r.code !== 0) {
      this.volumes.delete(volumeId);
      throw new Error(`attaching ${volumeId} to ${this.name} failed: ${r.stderr.trim()}`);
    }
  }

  /** Detaches a volume (after a clean stop, or from a running host: its nodes disappear). Returns its loop device. */
  async detachVolume(volumeId: string): Promise<string> {
    const v = this.volumes.get(volumeId);
    if (v === undefined) throw new Error(`volume ${volumeId} is not attached to ${this.name}`);
    if (this.state === "running") {
      const busy = await this.exec(["sh", "-c", `findmnt -n -S ${v.device} || findmnt -n -S ${v.byId} || true`]);
      if (busy.stdout.trim() !== "") throw new Error(`volume ${volumeId} is busy: mounted on ${this.name} (${busy.stdout.trim()}); stop the instance first`);
      await this.exec(["rm", "-f", v.device, v.byId]);
    }
    this.volumes.delete(volumeId);
    return v.loop;
  }

  /** Volumes still attached (a terminated host releases them). */
  attachedVolumes(): Array<{ volumeId: string; loop: string }> {
    return [...this.volumes.entries()].map(([volumeId, v]) => ({ volumeId, loop: v.loop }));
  }

  /** sshd answers on the private address, and cloud-init has installed the admin keys. */
  private async waitBooted(): Promise<void> {
    await waitFor(`sshd on ${this.name} (${this.privateIp}:22)`, BOOT_TIMEOUT_MS, async () => {
      if (this.state !== "running") throw new Error("systemd-nspawn exited");
      // From inside the host's namespace: the runner itself may not reach a private address.
      const r = await runCommand(
        ["nsenter", `--net=${this.netnsPath}`, "--", "bash", "-c", `exec 3<>/dev/tcp/${this.privateIp}/22 && head -c 4 <&3`],
        { timeoutMs: 5000 },
      );
      return r.stdout.startsWith("SSH-") ? true : undefined;
    });
    if (this.spec.sshAuthorizedKeys.length > 0) {
      await waitFor(`the admin user's SSH keys on ${this.name}`, BOOT_TIMEOUT_MS, async () => {
        const r = await this.exec(["test", "-s", "/home/admin/.ssh/authorized_keys"], { timeoutMs: 10_000 });
        return r.code === 0 ? true : undefined;
      });
    }
  }

  /** For measurements (measure.ts): the container's PID 1 as seen from the machine. */
  initPidForMeasure(): number | undefined {
    return this.initPid();
  }

  /** The container's PID 1 (as seen from the machine). */
  private initPid(): number | undefined {
    const pid = this.nspawn?.pid;
    if (pid === undefined || this.state !== "running") return undefined;
    // While booting, systemd-nspawn briefly has a helper child still in the machine's PID
    // namespace; the container's PID 1 is the child in a namespace of its own.
    const own = fs.readlinkSync("/proc/self/ns/pid");
    return childPids(pid).find((c) => {
      try {
        return fs.readlinkSync(`/proc/${c}/ns/pid`) !== own;
      } catch {
        return false;
      }
    });
  }

  async exec(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    if (this.state !== "running") throw new Error(`host ${this.name} is not running (${this.state})`);
    const pid = await waitFor(`PID 1 of ${this.name}`, 30_000, async () => this.initPid(), 100);
    return runCommand(
      ["nsenter", "-t", String(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--", "env", "-i", `PATH=${EXEC_PATH}`, "HOME=/root", "LANG=C.UTF-8", ...argv],
      { input: opts.input, timeoutMs: opts.timeoutMs ?? 600_000 },
    );
  }

  async stop(): Promise<void> {
    if (this.state !== "running") return;
    // A halt requested while cloud-init is still running (user data, or its stages waiting on
    // each other) was seen to hang until the fallback kill below: cloud-init's units have no stop
    // timeout. Let it finish first (bounded), so that stop() is a clean shutdown, not a kill.
    await this.exec(["cloud-init", "status", "--wait"], { timeoutMs: 120_000 }).catch(() => undefined);
    // SIGTERM to systemd-nspawn makes it ask the container's systemd to halt (6–8 s here).
    this.nspawn?.kill("SIGTERM");
    const exited = this.waitExited();
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!done) {
      process.stderr.write(`lab: ${this.name} did not halt within ${STOP_TIMEOUT_MS / 1000} s; killing it\n`);
      await this.kill();
      return;
    }
    this.afterExit();
  }

  async kill(): Promise<void> {
    if (this.state !== "running") return;
    const init = this.initPid();
    // Killing PID 1 of the container's PID namespace kills every process in it at once.
    for (const pid of [init, this.nspawn?.pid]) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await this.waitExited();
    this.afterExit();
  }

  /** Resolves when systemd-nspawn has exited; holds the event loop open meanwhile (else Node could exit mid-close). */
  private async waitExited(): Promise<void> {
    const child = this.nspawn;
    child?.ref();
    try {
      await this.exited;
    } finally {
      child?.unref();
    }
  }

  private afterExit(): void {
    this.state = "stopped";
    this.nspawn = undefined;
    // systemd-nspawn refuses to delete this directory when /run is not a tmpfs (as here).
    fs.rmSync(`/run/systemd/nspawn/propagate/${this.machine}`, { recursive: true, force: true });
    removeMachineCgroups(this.machine);
  }

  async destroy(): Promise<void> {
    if (this.state === "destroyed") return;
    await this.stop();
    await this.teardown();
  }

  /** Everything of this host but the process (already gone): mount, loop device, files, namespace. */
  async teardown(): Promise<void> {
    this.state = "destroyed";
    let r = await runCommand(["umount", this.merged]);
    if (r.code !== 0 && fs.existsSync(this.merged)) r = await runCommand(["umount", "-l", this.merged]);
    if (this.loopDevice) await runCommand(["losetup", "-d", this.loopDevice]);
    this.loopDevice = undefined;
    fs.rmSync(this.ctx.hostDir, { recursive: true, force: true });
    await deleteNetns(this.ctx.netns, this.ctx.veth);
    await this.ctx.onDestroyed(this);
  }

  async setHostsEntries(entries: Record<string, string>): Promise<void> {
    if (this.state === "destroyed") throw new Error(`host ${this.name} was destroyed`);
    const lines = Object.entries(entries).map(([name, ip]) => {
      if (!/^[A-Za-z0-9.-]+$/.test(name)) throw new Error(`invalid host name ${JSON.stringify(name)}`);
      parseIpStrict(ip);
      return `${ip}\t${name}`;
    });
    this.hostsLines = lines;
    // A host still being created gets them when its tree is written (prepare).
    if (this.prepared) this.writeHostsBlock();
  }

  private writeHostsBlock(): void {
    const lines = this.hostsLines;
    const file = path.join(this.merged, "etc/hosts");
    const current = fs.readFileSync(file, "utf8");
    const begin = current.indexOf(HOSTS_BEGIN);
    const end = current.indexOf(HOSTS_END);
    const head = begin >= 0 ? current.slice(0, begin) : current.endsWith("\n") ? current : `${current}\n`;
    const tail = end >= 0 ? current.slice(end + HOSTS_END.length + 1) : "";
    const next = `${head}${HOSTS_BEGIN}\n${lines.map((l) => `${l}\n`).join("")}${HOSTS_END}\n${tail}`;
    // Replace atomically: a resolver inside never reads half a file.
    const tmp = path.join(this.merged, "etc/.hosts.raftkv-lab");
    fs.writeFileSync(tmp, next, { mode: 0o644 });
    fs.renameSync(tmp, file);
  }
}

function parseIpStrict(ip: string): void {
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(ip) || ip.split(".").some((o) => Number(o) > 255)) {
    throw new Error(`invalid IPv4 address ${JSON.stringify(ip)}`);
  }
}
