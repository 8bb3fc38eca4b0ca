/**
 * Reproduces host boots the way the day-2 image change does them, in a loop: a master-like host
 * with an EBS-like volume mounted through fstab (as the product's volume step does), stopped
 * cleanly, volume detached, host terminated, a new host at the same name and address booted,
 * the volume attached again. Not a test: run it by hand, as root, under the e2e lock:
 *   flock /tmp/raftkv-e2e.lock node --import tsx test/e2e/lab/bootloop.ts [rounds] [hosts]
 * Every boot that times out keeps its evidence (host.ts bootEvidence) and stops the loop.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { openLab, ebsByIdPath } from "./index";
import { labDir } from "./sweep";

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 10);
  const parallel = Number(process.argv[3] ?? 3);
  const lab = await openLab({ name: `cb${process.pid % 100000}`, vpcCidr: "10.84.0.0/16", publicCidr: "10.84.255.0/24" });
  const t0 = Date.now();
  const log = (l: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${l}`);
  try {
    const names = Array.from({ length: parallel }, (_, i) => `raftkv-${i + 1}`);
    const ip = (i: number) => `10.84.${i}.10`;
    const key = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderPlaceholderPlaceholderPlaceh bootloop"];
    for (const i of names.keys()) await lab.createVolume(`vol-0${i}bootloop`, 64);
    const boot = async (i: number, round: number) => {
      const name = names[i]!;
      const vol = `vol-0${i}bootloop`;
      const s = Date.now();
      const h = await lab.addHost({ name, instanceId: `i-${round}x${i}`, privateIp: ip(i), sshAuthorizedKeys: key });
      log(`${name} round ${round}: booted in ${((Date.now() - s) / 1000).toFixed(1)} s`);
      if (process.env["BOOTLOOP_CONSOLE"] && round === 0 && i === 0) console.log(readFileSync(path.join(labDir(lab.name), "hosts", name, "console.log"), "utf8"));
      await lab.attachVolume(vol, name);
      const dev = ebsByIdPath(vol);
      const r = await h.exec([
        "bash",
        "-c",
        `set -e; cloud-init status --wait >/dev/null || true; blkid ${dev} >/dev/null || mkfs.ext4 -q ${dev}; mkdir -p /var/lib/raftkv; ` +
          `echo "${dev} /var/lib/raftkv ext4 defaults,nofail,noatime 0 2" >> /etc/fstab; mount /var/lib/raftkv; date >> /var/lib/raftkv/boots`,
      ]);
      if (r.code !== 0) throw new Error(`${name}: volume step failed: ${r.stderr}`);
      // A stop/start with the volume attached (instance type change), as day-2 also does.
      await h.stop();
      const s2 = Date.now();
      await h.start();
      log(`${name} round ${round}: restarted with its fstab volume in ${((Date.now() - s2) / 1000).toFixed(1)} s`);
      await h.stop();
      await lab.detachVolume(vol, name);
      await h.destroy();
    };
    for (let round = 0; round < rounds; round++) {
      await Promise.all(names.map((_, i) => boot(i, round)));
    }
    log("no boot hang");
  } finally {
    await lab.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
