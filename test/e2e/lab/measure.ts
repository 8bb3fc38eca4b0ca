/**
 * Measures the lab on this machine (the figures in README.md): base image, boot of the largest
 * deployment the suite makes (7 masters with data disks, 1 worker, 1 bastion, all at once),
 * idle memory per host, clean stop, start, close. Not a test: run it by hand, as root:
 *   node --import tsx test/e2e/lab/measure.ts
 */
import * as fs from "node:fs";
import { ensureBaseImage } from "./image";
import { openLab, type Host } from "./index";
import { sleep } from "./run";

/** Proportional set size (kB) of every process in the PID namespace of the host's PID 1. */
function hostMemKiB(host: Host & { initPidForMeasure?: () => number | undefined }, field: "Pss" | "Rss"): number {
  const init = host.initPidForMeasure?.();
  if (init === undefined) return NaN;
  const ns = fs.readlinkSync(`/proc/${init}/ns/pid`);
  let total = 0;
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/ns/pid`) !== ns) continue;
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync(`/proc/${e}/smaps_rollup`, "utf8"));
      total += Number(m?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return total;
}

function memAvailableMiB(): number {
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/meminfo", "utf8"))?.[1] ?? NaN) / 1024;
}

async function main(): Promise<void> {
  console.log(`started: ${(process.uptime()).toFixed(1)} s after process start`);
  const t = (s: number) => `${((Date.now() - s) / 1000).toFixed(1)} s`;
  let s = Date.now();
  await ensureBaseImage();
  console.log(`base image (cached or built): ${t(s)}`);
  s = Date.now();
  const lab = await openLab({ name: "measure", vpcCidr: "10.214.0.0/16", publicCidr: "10.214.255.0/24" });
  console.log(`open lab: ${t(s)}`);
  try {
    const specs = [
      ...Array.from({ length: 7 }, (_, i) => ({
        name: `raftkv-${i + 1}`,
        instanceId: `i-m${i + 1}`,
        privateIp: `10.214.${i % 3}.${10 + Math.floor(i / 3)}`,
        sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderPlaceholderPlaceholderPlaceh measure"],
        dataDisk: { sizeMiB: 20 * 1024 },
        userData: "#!/bin/bash\ntrue\n",
      })),
      { name: "worker-1", instanceId: "i-w1", privateIp: "10.214.0.100", sshAuthorizedKeys: [] },
      { name: "bastion", instanceId: "i-b1", privateIp: "10.214.255.10", sshAuthorizedKeys: [] },
    ];
    const availBefore = memAvailableMiB();
    s = Date.now();
    const hosts = await Promise.all(specs.map((spec) => lab.addHost(spec)));
    console.log(`boot ${hosts.length} hosts at once until every sshd answers: ${t(s)}`);
    s = Date.now();
    await Promise.all(hosts.map((h) => h.exec(["cloud-init", "status", "--wait"])));
    console.log(`... until cloud-init finished everywhere: ${t(s)}`);
    await sleep(20_000);
    console.log(`MemAvailable of the machine dropped by ${Math.round(availBefore - memAvailableMiB())} MB for ${hosts.length} idle hosts (other engineers' work moves this too)`);
    for (const field of ["Pss", "Rss"] as const) {
      const kib = hosts.map((h) => hostMemKiB(h as Host & { initPidForMeasure?: () => number | undefined }, field));
      console.log(`idle memory per host (${field} of its processes, 20 s after boot): ${kib.map((k) => `${Math.round(k / 1024)}`).join(" ")} MB`);
    }
    s = Date.now();
    await hosts[0]!.stop();
    console.log(`clean stop of one host: ${t(s)}`);
    s = Date.now();
    await hosts[0]!.start();
    console.log(`start of one host until sshd answers: ${t(s)}`);
    s = Date.now();
    await hosts[1]!.destroy();
    console.log(`destroy of one host: ${t(s)}`);
  } finally {
    s = Date.now();
    await lab.close();
    console.log(`close (every host killed, everything removed): ${t(s)}`);
  }
}

main().then(() => console.log(`main done at ${process.uptime().toFixed(1)} s`), (err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
