/**
 * The lab's network: one Linux bridge per lab is the VPC; every host (and every bare namespace,
 * e.g. the load balancer's forwarder) is a network namespace with one veth on the bridge and its
 * addresses with the VPC's prefix length, so every subnet reaches every other, as VPC routing
 * does. Hosts get no default route: nothing they send can leave the machine.
 *
 * The runner (this process, in the root namespace) gets one address on the bridge inside the
 * public subnet only and an `unreachable` route for the rest of the VPC: it reaches hosts in the
 * public subnet and nothing else, like a machine outside a brand-new VPC.
 *
 * Names (all derived from the lab name, which is [a-z0-9]{1,8}, so a crashed run can be found):
 * bridge `rk-NAME`, veths `rk-NAME-N`, namespaces `rk-NAME-...`.
 */
import { mustRun, runCommand } from "./run";

export interface Cidr {
  base: number;
  prefix: number;
}

export function parseCidr(cidr: string): Cidr {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new Error(`invalid CIDR ${JSON.stringify(cidr)}`);
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) throw new Error(`invalid CIDR ${JSON.stringify(cidr)}`);
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  if (base % 2 ** (32 - prefix) !== 0) throw new Error(`invalid CIDR ${cidr}: host bits are set`);
  return { base, prefix };
}

export function parseIp(ip: string): number {
  return parseCidr(`${ip}/32`).base;
}

export function formatIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

export function cidrContains(c: Cidr, ip: number): boolean {
  const size = 2 ** (32 - c.prefix);
  return ip >= c.base && ip < c.base + size;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  const aEnd = a.base + 2 ** (32 - a.prefix);
  const bEnd = b.base + 2 ** (32 - b.prefix);
  return a.base < bEnd && b.base < aEnd;
}

export const bridgeName = (lab: string): string => `rk-${lab}`;
export const vethName = (lab: string, n: number): string => `rk-${lab}-${n}`;
export const netnsPrefix = (lab: string): string => `rk-${lab}-`;

async function sysctl(netns: string | undefined, key: string, value: string): Promise<void> {
  const argv = ["sysctl", "-q", "-w", `${key}=${value}`];
  await mustRun(netns ? ["ip", "netns", "exec", netns, ...argv] : argv);
}

/**
 * Refuses a VPC range that something on this machine already routes (another open lab, a
 * real network): two labs with the same range would mix their runner routes.
 */
export async function assertRangeFree(vpcCidr: string): Promise<void> {
  const vpc = parseCidr(vpcCidr);
  const out = await mustRun(["ip", "-4", "-o", "route", "show", "table", "all"]);
  for (const line of out.split("\n")) {
    const words = line.trim().split(/\s+/);
    let dst = words[0] === "unreachable" || words[0] === "local" || words[0] === "broadcast" ? words[1] : words[0];
    if (!dst || dst === "default") continue;
    if (!dst.includes("/")) dst = `${dst}/32`;
    let c: Cidr;
    try {
      c = parseCidr(dst);
    } catch {
      continue;
    }
    if (c.prefix === 32 && words.includes("lo")) continue; // the machine's own local addresses
    if (overlaps(vpc, c)) {
      throw new Error(
        `VPC range ${vpcCidr} overlaps a route already on this machine (${line.trim()}): is another lab open? use another vpcCidr`,
      );
    }
  }
}

/** Creates the lab's bridge, the runner's public-subnet address and the unreachable VPC route. */
export async function createVpc(lab: string, vpcCidr: string, publicCidr: string): Promise<string> {
  const vpc = parseCidr(vpcCidr);
  const pub = parseCidr(publicCidr);
  if (!cidrContains(vpc, pub.base) || pub.prefix < vpc.prefix) throw new Error(`public subnet ${publicCidr} is not inside the VPC ${vpcCidr}`);
  const br = bridgeName(lab);
  await mustRun(["ip", "link", "add", br, "type", "bridge"]);
  // No IPv6 on the bridge: a link-local path would let the runner reach private hosts, and
  // no IPv4 forwarding from it, whatever the machine's global setting.
  await sysctl(undefined, `net.ipv6.conf.${br}.disable_ipv6`, "1");
  await sysctl(undefined, `net.ipv4.conf.${br}.forwarding`, "0");
  await mustRun(["ip", "link", "set", br, "up"]);
  // The runner's address: .1 of the public subnet, which AWS reserves for the VPC router, so
  // no instance can ever be given it.
  const runnerIp = formatIp(pub.base + 1);
  await mustRun(["ip", "addr", "add", `${runnerIp}/${pub.prefix}`, "dev", br]);
  await mustRun(["ip", "route", "add", "unreachable", vpcCidr]);
  return runnerIp;
}

/** A namespace with one veth on the bridge carrying `ips` (VPC prefix length), lo up, no default route. */
export async function createAttachedNetns(lab: string, netns: string, vethIndex: number, ips: readonly string[], vpcCidr: string): Promise<void> {
  const vpc = parseCidr(vpcCidr);
  for (const ip of ips) {
    if (!cidrContains(vpc, parseIp(ip))) throw new Error(`address ${ip} is not inside the VPC ${vpcCidr}`);
  }
  const veth = vethName(lab, vethIndex);
  await mustRun(["ip", "netns", "add", netns]);
  await mustRun(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
  await sysctl(undefined, `net.ipv6.conf.${veth}.disable_ipv6`, "1");
  await mustRun(["ip", "link", "set", veth, "master", bridgeName(lab), "up"]);
  await sysctl(netns, "net.ipv6.conf.eth0.disable_ipv6", "1");
  for (const ip of ips) await mustRun(["ip", "-n", netns, "addr", "add", `${ip}/${vpc.prefix}`, "dev", "eth0"]);
  await mustRun(["ip", "-n", netns, "link", "set", "lo", "up"]);
  await mustRun(["ip", "-n", netns, "link", "set", "eth0", "up"]);
}

/** Kills whatever still runs in the namespace, then deletes it and its veth. */
export async function deleteNetns(netns: string, veth: string | undefined): Promise<void> {
  const pids = await runCommand(["ip", "netns", "pids", netns]);
  for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(p), "SIGKILL");
    } catch {
      // gone
    }
  }
  await runCommand(["ip", "netns", "del", netns]);
  if (veth) await runCommand(["ip", "link", "del", veth]);
}

/** Every namespace and link of a lab (for leftovers of a crashed run, and for close()). */
export async function listLabNet(lab: string): Promise<{ netns: string[]; links: string[] }> {
  const ns = await runCommand(["ip", "netns", "list"]);
  const netns = ns.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.startsWith(netnsPrefix(lab)));
  const ln = await runCommand(["ip", "-o", "link", "show"]);
  const links = ln.stdout
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? "")
    .filter((n) => n === bridgeName(lab) || n.startsWith(`${bridgeName(lab)}-`));
  return { netns, links };
}

/** Removes every namespace, veth and the bridge of a lab, and its VPC route. */
export async function destroyVpc(lab: string, vpcCidr: string | undefined): Promise<void> {
  const { netns, links } = await listLabNet(lab);
  for (const n of netns) await deleteNetns(n, undefined);
  for (const l of links.filter((l) => l !== bridgeName(lab))) await runCommand(["ip", "link", "del", l]);
  if (links.includes(bridgeName(lab))) await runCommand(["ip", "link", "del", bridgeName(lab)]);
  if (vpcCidr) {
    // Only our own route: an unreachable route for exactly this range.
    const r = await runCommand(["ip", "-4", "-o", "route", "show", "type", "unreachable", vpcCidr]);
    if (r.stdout.trim()) await runCommand(["ip", "route", "del", "unreachable", vpcCidr]);
  }
}
