/**
 * The chaos suite's network: one Linux bridge `chz<tag>`, one network namespace per member slot
 * (`chz<tag>-<i>`, a veth `chz<tag>v<i>` on the bridge), addresses in one /24 inside 10.83.0.0/16.
 * The runner (this process) gets .1 on the bridge and reaches every slot; members reach each
 * other through the bridge. Faults between members are iptables DROP rules inside the member
 * namespaces, so the runner's clients keep reaching every member (as in Jepsen: the network
 * between servers fails, clients still talk to whichever side they are on).
 *
 * Every name carries the run's tag (derived from the PID), so leftovers of a crashed run can be
 * found by `ip netns list | grep chz`, and `close()` removes exactly what `open()` made.
 */
import { mustRun, runCommand } from "../e2e/lab/run";

export interface Slot {
  index: number;
  netns: string;
  veth: string;
  ip: string;
}

export class ChaosNet {
  private constructor(
    readonly tag: string,
    readonly bridge: string,
    readonly runnerIp: string,
    readonly slots: Slot[],
  ) {}

  /** Creates the bridge and `count` namespaces. Cleans up after itself if any step fails. */
  static async open(count: number, tag = process.pid.toString(36).slice(-5)): Promise<ChaosNet> {
    if (count > 40) throw new Error("at most 40 slots");
    const bridge = `chz${tag}`;
    const subnet = await pickSubnet(tag);
    const runnerIp = `10.83.${subnet}.1`;
    const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
      index: i,
      netns: `chz${tag}-${i}`,
      veth: `chz${tag}v${i}`,
      ip: `10.83.${subnet}.${10 + i}`,
    }));
    const net = new ChaosNet(tag, bridge, runnerIp, slots);
    try {
      await mustRun(["ip", "link", "add", bridge, "type", "bridge"]);
      await mustRun(["sysctl", "-q", "-w", `net.ipv6.conf.${bridge}.disable_ipv6=1`]);
      await mustRun(["ip", "addr", "add", `${runnerIp}/24`, "dev", bridge]);
      await mustRun(["ip", "link", "set", bridge, "up"]);
      for (const s of slots) {
        await mustRun(["ip", "netns", "add", s.netns]);
        await mustRun(["ip", "link", "add", s.veth, "type", "veth", "peer", "name", "eth0", "netns", s.netns]);
        await mustRun(["sysctl", "-q", "-w", `net.ipv6.conf.${s.veth}.disable_ipv6=1`]);
        await mustRun(["ip", "link", "set", s.veth, "master", bridge, "up"]);
        await mustRun(["ip", "netns", "exec", s.netns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"]);
        await mustRun(["ip", "-n", s.netns, "addr", "add", `${s.ip}/24`, "dev", "eth0"]);
        await mustRun(["ip", "-n", s.netns, "link", "set", "lo", "up"]);
        await mustRun(["ip", "-n", s.netns, "link", "set", "eth0", "up"]);
      }
    } catch (e) {
      await net.close();
      throw e;
    }
    return net;
  }

  /** Drops all traffic between slot a and slot b (both directions, rules on both sides). */
  async cut(a: Slot, b: Slot): Promise<void> {
    for (const [self, other] of [
      [a, b],
      [b, a],
    ] as const) {
      await mustRun(["ip", "netns", "exec", self.netns, "iptables", "-w", "-A", "INPUT", "-s", other.ip, "-j", "DROP"]);
      await mustRun(["ip", "netns", "exec", self.netns, "iptables", "-w", "-A", "OUTPUT", "-d", other.ip, "-j", "DROP"]);
    }
  }

  /** Cuts every link between the groups (each group stays connected inside). */
  async partition(groups: readonly (readonly Slot[])[]): Promise<void> {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i]!) for (const b of groups[j]!) await this.cut(a, b);
      }
    }
  }

  /** Removes every fault rule. */
  async heal(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        await runCommand(["ip", "netns", "exec", s.netns, "iptables", "-w", "-F", "INPUT"]);
        await runCommand(["ip", "netns", "exec", s.netns, "iptables", "-w", "-F", "OUTPUT"]);
      }),
    );
  }

  /** Deletes namespaces (killing what still runs inside them), veths and the bridge. Idempotent. */
  async close(): Promise<void> {
    for (const s of this.slots) {
      const pids = await runCommand(["ip", "netns", "pids", s.netns]);
      for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(p), "SIGKILL");
        } catch {
          // already gone
        }
      }
      await runCommand(["ip", "netns", "del", s.netns]);
      await runCommand(["ip", "link", "del", s.veth]);
    }
    await runCommand(["ip", "link", "del", this.bridge]);
  }
}

/** A /24 inside 10.83.0.0/16 that nothing on this machine routes yet (a concurrent run picks another). */
async function pickSubnet(tag: string): Promise<number> {
  const routes = (await mustRun(["ip", "-4", "-o", "route", "show", "table", "all"])).split("\n");
  const start = parseInt(tag, 36) % 250;
  for (let k = 0; k < 250; k++) {
    const sub = ((start + k) % 250) + 1;
    if (!routes.some((r) => r.includes(`10.83.${sub}.`) || /\b10\.83\.0\.0\/16\b/.test(r))) return sub;
  }
  throw new Error("no free /24 in 10.83.0.0/16");
}
