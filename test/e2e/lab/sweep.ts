/**
 * Removes everything a lab put on the machine, found from its name and directory alone, so it
 * works after a crash as well as from close(): containers (systemd-nspawn and the PID namespace
 * under it), mounts, loop devices, namespaces, veths, the bridge, the VPC route, files.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { runCommand, sleep } from "./run";
import { destroyVpc } from "./net";
import { childPids } from "./host";
import { removeLabCgroups } from "./cgroup";

export const LABS_ROOT = process.env.RAFTKV_E2E_LABS ?? "/var/tmp/raftkv-e2e/labs";

export const labDir = (lab: string): string => path.join(LABS_ROOT, lab);

export interface LabState {
  name: string;
  vpcCidr: string;
  publicCidr: string;
  ownerPid: number;
}

export function readLabState(lab: string): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(labDir(lab), "state.json"), "utf8")) as LabState;
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\S+ [ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 4));
  } catch {
    return false;
  }
}

function cmdline(pid: string): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/** systemd-nspawn processes booting a tree under `dir`. */
export function nspawnPidsUnder(dir: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const argv = cmdline(e);
    if (!(argv[0] ?? "").endsWith("systemd-nspawn")) continue;
    const d = argv[argv.indexOf("-D") + 1] ?? "";
    if (argv.includes("-D") && d.startsWith(`${dir}/`) && pidAlive(Number(e))) out.push(Number(e));
  }
  return out;
}

/** Mount points under `dir`, deepest first (octal escapes of mountinfo decoded). */
export function mountsUnder(dir: string): string[] {
  const info = fs.readFileSync("/proc/self/mountinfo", "utf8");
  const points = info
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Loop devices whose backing file is under `dir`. */
export async function loopsUnder(dir: string): Promise<string[]> {
  const r = await runCommand(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"]);
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter(([, file]) => (file ?? "").startsWith(`${dir}/`))
    .map(([name]) => name ?? "");
}

async function killTree(nspawnPid: number): Promise<void> {
  for (const pid of [...childPids(nspawnPid), nspawnPid]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/** Everything of lab `lab` gone from the machine. Safe to call on a lab that left nothing. */
export async function sweepLab(lab: string): Promise<void> {
  const dir = labDir(lab);
  const state = readLabState(lab);
  const pids = nspawnPidsUnder(dir);
  for (const pid of pids) await killTree(pid);
  const deadline = Date.now() + 30_000;
  while (pids.some(pidAlive) && Date.now() < deadline) await sleep(100);
  for (const m of mountsUnder(dir)) {
    const r = await runCommand(["umount", m]);
    if (r.code !== 0) await runCommand(["umount", "-l", m]);
  }
  for (const loop of await loopsUnder(dir)) await runCommand(["losetup", "-d", loop]);
  await destroyVpc(lab, state?.vpcCidr);
  const propagate = "/run/systemd/nspawn/propagate";
  if (fs.existsSync(propagate)) {
    for (const e of fs.readdirSync(propagate)) {
      if (e.startsWith(`rk-${lab}-`)) fs.rmSync(path.join(propagate, e), { recursive: true, force: true });
    }
  }
  removeLabCgroups(lab);
  if (mountsUnder(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
}

/** Sweeps labs left by processes that died without closing them (any name). */
export async function sweepAbandonedLabs(): Promise<string[]> {
  if (!fs.existsSync(LABS_ROOT)) return [];
  const swept: string[] = [];
  for (const lab of fs.readdirSync(LABS_ROOT)) {
    const state = readLabState(lab);
    if (state && pidAlive(state.ownerPid)) continue;
    // A lab being opened right now has its directory a moment before its state file.
    if (!state && Date.now() - fs.statSync(labDir(lab)).mtimeMs < 60_000) continue;
    await sweepLab(lab);
    swept.push(lab);
  }
  return swept;
}
