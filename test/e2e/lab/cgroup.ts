/**
 * A cgroup of its own for every lab container. systemd-nspawn with --keep-unit --register=no
 * takes the cgroup it runs in as the container's and puts the payload in "<that>/payload": every
 * container started from one runner shared one cgroup tree, so the systemd of each container
 * created and removed the same unit cgroups (/payload/system.slice/cloud-init-local.service, ...)
 * as the others. When one host's unit finished and its systemd removed the (then empty) cgroup
 * while another host's systemd was starting the same unit into it, that start failed with
 * "Failed to spawn executor: No such file or directory"; for cloud-init-local.service that left
 * cloud-init-network.service (no timeout) waiting forever and sshd never started (seen in the
 * lab test's power cut + start, with the boot evidence of evidence.ts).
 *
 * Here each container's systemd-nspawn is moved, before it starts, into
 * "<runner's cgroup>/raftkv-lab/<machine>" in every hierarchy that tracks processes for systemd
 * (the unified one, and the named "systemd" v1 one on a hybrid or legacy machine).
 */
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = "/sys/fs/cgroup";

/** The mount point and this process's path in each hierarchy systemd uses. */
function hierarchies(): Array<{ mount: string; own: string }> {
  const out: Array<{ mount: string; own: string }> = [];
  const lines = fs.readFileSync("/proc/self/cgroup", "utf8").split("\n");
  const unified = lines.find((l) => l.startsWith("0::"))?.slice(3);
  if (unified !== undefined) {
    if (fs.existsSync(path.join(ROOT, "cgroup.controllers"))) out.push({ mount: ROOT, own: unified });
    else if (fs.existsSync(path.join(ROOT, "unified", "cgroup.controllers"))) out.push({ mount: path.join(ROOT, "unified"), own: unified });
  }
  const named = lines.find((l) => /^\d+:name=systemd:/.test(l))?.replace(/^\d+:name=systemd:/, "");
  if (named !== undefined && fs.existsSync(path.join(ROOT, "systemd", "cgroup.procs"))) out.push({ mount: path.join(ROOT, "systemd"), own: named });
  return out;
}

/** The per-machine cgroup directories (created). Their cgroup.procs files take the nspawn PID. */
export function createMachineCgroups(machine: string): string[] {
  return hierarchies().map(({ mount, own }) => {
    const dir = path.join(mount, own, "raftkv-lab", machine);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  });
}

/** Removes a machine's cgroups once nothing runs in them (deepest first; busy ones are left). */
export function removeMachineCgroups(machine: string): void {
  for (const { mount, own } of hierarchies()) removeTree(path.join(mount, own, "raftkv-lab", machine));
}

/** Every machine cgroup of a lab (machine names start with rk-<lab>-), for the sweep. */
export function removeLabCgroups(lab: string): void {
  for (const { mount, own } of hierarchies()) {
    const base = path.join(mount, own, "raftkv-lab");
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(base);
    } catch {
      continue;
    }
    for (const e of entries) if (e.startsWith(`rk-${lab}-`)) removeTree(path.join(base, e));
  }
}

function removeTree(dir: string): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // still in use (a process left), or gone
  }
}
