/**
 * The base image every lab host boots: a Debian 13 (trixie) root filesystem built once per
 * machine with mmdebstrap from Debian's archive, configured like the Debian AMI (cloud-init
 * with the NoCloud datasource, default user `admin` with passwordless sudo), and cached outside
 * the repository under a hash of this recipe. Hosts never write to it: each gets an overlay.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { sleep } from "./run";

export const CACHE_ROOT = process.env.RAFTKV_E2E_CACHE ?? "/var/cache/raftkv-e2e";
const MIRROR = "http://deb.debian.org/debian";
const SUITE = "trixie";

/**
 * What the product and its host scripts use on a host (components/hostScripts.ts): bash, awk
 * (mawk, as on the AMI), install/mktemp (coreutils), cmp (diffutils), useradd (passwd),
 * blkid/mountpoint (util-linux), mount, mkfs.ext4 (e2fsprogs), systemctl, node >= 20, sudo;
 * sshd with sftp for the providers' file copies; cloud-init for user data; etcd-client (trixie's
 * etcdctl 3.5), because users run etcdctl from a worker and the e2e suite does exactly that.
 */
export const PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "openssh-server",
  "openssh-sftp-server",
  "openssh-client",
  "sudo",
  "nodejs",
  "iproute2",
  "ca-certificates",
  "procps",
  "cloud-init",
  "e2fsprogs",
  "util-linux",
  "mount",
  "diffutils",
  "passwd",
  "mawk",
  "bash",
  "coreutils",
  "grep",
  "sed",
  "etcd-client",
] as const;

/** cloud-init as on the Debian AMI, minus what cannot work in a container without a network path. */
const CLOUD_CFG = `# raftkv e2e lab: cloud-init as on Debian's AMI, but from a NoCloud seed (no IMDS here).
datasource_list: [NoCloud]
# The lab configures each host's interface from outside before boot; there is no DHCP.
network: {config: disabled}
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
`;

/** Units that only cost CPU in a lab host (they reach for the internet or trim disks that are not there). */
const MASKED_UNITS = [
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "apt-daily.service",
  "apt-daily-upgrade.service",
  "e2scrub_all.timer",
  "e2scrub_reap.service",
  "fstrim.timer",
  "dpkg-db-backup.timer",
  "systemd-networkd-wait-online.service",
];

/**
 * systemd ignores fstab entries for block devices when it runs in a container
 * (systemd-fstab-generator: "Running in a container, ignoring fstab device entry"), so the data
 * volume the user data added to /etc/fstab would not come back after a restart, unlike on EC2.
 * This unit stands in for the generated mount units: it mounts fstab's ext4 entries before
 * local-fs.target, as the real boot does.
 */
const FSTAB_UNIT = `[Unit]
Description=raftkv e2e lab: mount fstab block devices (systemd skips them in containers)
DefaultDependencies=no
After=local-fs-pre.target
Before=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount -a -t ext4

[Install]
WantedBy=local-fs.target
`;

/** Bump when the customisation code below changes in a way the recipe text does not show. */
const RECIPE_VERSION = 1;

function recipeHash(): string {
  return createHash("sha256")
    .update(JSON.stringify({ RECIPE_VERSION, SUITE, MIRROR, PACKAGES, CLOUD_CFG, MASKED_UNITS, FSTAB_UNIT }))
    .digest("hex")
    .slice(0, 16);
}

function writeFile(root: string, rel: string, content: string, mode = 0o644): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content, { mode });
  fs.chmodSync(p, mode);
}

/** Applied to a freshly bootstrapped tree, before it is published to the cache. */
function customise(root: string): void {
  writeFile(root, "etc/cloud/cloud.cfg.d/90-raftkv-lab.cfg", CLOUD_CFG);
  for (const unit of MASKED_UNITS) {
    const link = path.join(root, "etc/systemd/system", unit);
    fs.rmSync(link, { force: true });
    fs.symlinkSync("/dev/null", link);
  }
  writeFile(root, "etc/systemd/system/raftkv-lab-fstab.service", FSTAB_UNIT);
  fs.mkdirSync(path.join(root, "etc/systemd/system/local-fs.target.wants"), { recursive: true });
  fs.symlinkSync("/etc/systemd/system/raftkv-lab-fstab.service", path.join(root, "etc/systemd/system/local-fs.target.wants/raftkv-lab-fstab.service"));
  // Host identity is per host: SSH host keys are made by cloud-init on first boot (as on EC2),
  // the machine ID and hostname are written by the lab.
  for (const f of fs.readdirSync(path.join(root, "etc/ssh"))) {
    if (f.startsWith("ssh_host_")) fs.rmSync(path.join(root, "etc/ssh", f));
  }
  writeFile(root, "etc/machine-id", "");
  writeFile(root, "etc/hostname", "localhost\n");
  // No DNS server is reachable in the VPC model: names come from /etc/hosts (setHostsEntries).
  fs.rmSync(path.join(root, "etc/resolv.conf"), { force: true });
  writeFile(root, "etc/resolv.conf", "# raftkv e2e lab: no DNS server; VPC names are in /etc/hosts\n");
}

function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** A lock file holding the builder's PID; a dead holder's lock is taken over. */
async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, "wx");
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(fs.readFileSync(lockPath, "utf8").trim() || "0");
      if (!holder || !pidAlive(holder)) {
        fs.rmSync(lockPath, { force: true });
        continue;
      }
      if (!announced) {
        process.stderr.write(`lab: waiting for process ${holder} to finish building the base image (${lockPath})\n`);
        announced = true;
      }
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

function runMmdebstrap(target: string, logPath: string): Promise<void> {
  const args = [
    "--variant=minbase",
    "--mode=root",
    "--format=directory",
    `--include=${PACKAGES.join(",")}`,
    SUITE,
    target,
    MIRROR,
  ];
  return new Promise((resolve, reject) => {
    const log = fs.openSync(logPath, "w");
    const child = spawn("mmdebstrap", args, { stdio: ["ignore", log, log] });
    const started = Date.now();
    // One progress line while it builds: a TTY gets it updated in place, a log gets one line every 15 s.
    const tick = setInterval(() => {
      const s = Math.round((Date.now() - started) / 1000);
      const last = fs.readFileSync(logPath, "utf8").trim().split("\n").pop() ?? "";
      const line = `lab: building the base image: ${s} s, ${last.replace(/^I: /, "")}`;
      if (process.stderr.isTTY) process.stderr.write(`\r${line.slice(0, 100).padEnd(100)}`);
      else if (s % 15 === 0) process.stderr.write(`${line}\n`);
    }, 1000);
    child.on("error", (err) => {
      clearInterval(tick);
      fs.closeSync(log);
      reject(new Error(`cannot run mmdebstrap: ${err.message}`));
    });
    child.on("close", (code) => {
      clearInterval(tick);
      fs.closeSync(log);
      if (process.stderr.isTTY) process.stderr.write("\n");
      if (code === 0) resolve();
      else reject(new Error(`mmdebstrap exited ${String(code)}; see ${logPath}`));
    });
  });
}

/**
 * The base tree's directory, building it first if this machine has none for this recipe.
 * Concurrent callers (several test processes) wait for one builder.
 */
export async function ensureBaseImage(): Promise<string> {
  const dir = path.join(CACHE_ROOT, recipeHash());
  const root = path.join(dir, "root");
  const ready = path.join(dir, "ready");
  if (fs.existsSync(ready)) return root;
  fs.mkdirSync(dir, { recursive: true });
  return withLock(path.join(dir, "lock"), async () => {
    if (fs.existsSync(ready)) return root;
    const tmp = path.join(dir, `root.building-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
    const started = Date.now();
    process.stderr.write(`lab: building the Debian ${SUITE} base image once for this machine (~1 min) into ${dir}\n`);
    try {
      await runMmdebstrap(tmp, path.join(dir, "build.log"));
      customise(tmp);
      fs.renameSync(tmp, root);
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    fs.writeFileSync(path.join(dir, "recipe.json"), JSON.stringify({ SUITE, MIRROR, PACKAGES, CLOUD_CFG, MASKED_UNITS, FSTAB_UNIT }, null, 2));
    fs.writeFileSync(ready, `${new Date().toISOString()}\n`);
    process.stderr.write(`lab: base image ready in ${Math.round((Date.now() - started) / 1000)} s\n`);
    return root;
  });
}
