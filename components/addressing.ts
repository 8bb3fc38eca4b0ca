/**
 * Deterministic private addresses. Every host address is a fixed offset inside its subnet, so
 * `--initial-cluster`, certificate SANs and the install scripts can all be rendered before any
 * instance exists: the plan never waits for AWS to pick an address, which is what keeps the
 * Pulumi graph free of cycles (certificates -> instances -> certificates).
 *
 * Pure: no Pulumi, no I/O.
 */
import { TopologyError, planHostMembers, type MemberEndpoint } from "./topology";

/** AWS reserves the first four addresses and the last one of every subnet. */
const AWS_RESERVED_LOW = 4;
/** The internal load balancer's address in each subnet (the first one AWS lets us use). */
export const LOAD_BALANCER_HOST_OFFSET = 4;
/** Masters take offsets 10, 11, ... in their subnet; the n-th master of a subnet gets 10+n. */
export const MASTER_HOST_OFFSET = 10;
/** Workers take offsets 100, 101, ... so they never collide with masters (at most 7 per subnet). */
export const WORKER_HOST_OFFSET = 100;

export interface SubnetPlan {
  availabilityZone: string;
  cidr: string;
}

export interface HostPlacement {
  name: string;
  /** Index into the subnet list: hosts are dealt round-robin, host i goes to subnet i % n. */
  subnetIndex: number;
  availabilityZone: string;
  privateIp: string;
}

export function parseCidr(cidr: string): { base: number; prefix: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new TopologyError(`invalid CIDR ${JSON.stringify(cidr)}: expected a.b.c.d/prefix`);
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) throw new TopologyError(`invalid CIDR ${JSON.stringify(cidr)}`);
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  if (base % size !== 0) {
    throw new TopologyError(`invalid CIDR ${cidr}: host bits are set (did you mean ${formatIp(base - (base % size))}/${prefix}?)`);
  }
  return { base, prefix };
}

function formatIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/** The address `offset` hosts into a subnet, refusing AWS-reserved and out-of-range offsets. */
export function hostAddress(cidr: string, offset: number): string {
  const { base, prefix } = parseCidr(cidr);
  const size = 2 ** (32 - prefix);
  if (!Number.isInteger(offset) || offset < AWS_RESERVED_LOW || offset > size - 2) {
    throw new TopologyError(
      `subnet ${cidr} has no usable host at offset ${String(offset)} (usable offsets are ${AWS_RESERVED_LOW}..${size - 2}); use a larger subnet`,
    );
  }
  return formatIp(base + offset);
}

/**
 * One /24 per availability zone, carved from the start of the VPC range: 10.42.0.0/16 with
 * three zones gives 10.42.0.0/24, 10.42.1.0/24, 10.42.2.0/24. The last /24 of the VPC is kept
 * for the public (NAT) subnet, see `publicSubnetCidr`.
 */
export function carveSubnets(vpcCidr: string, availabilityZones: readonly string[]): SubnetPlan[] {
  const { base, prefix } = parseCidr(vpcCidr);
  if (availabilityZones.length === 0) throw new TopologyError("at least one availability zone is needed");
  if (new Set(availabilityZones).size !== availabilityZones.length) {
    throw new TopologyError(`availability zones are listed twice: ${availabilityZones.join(", ")}`);
  }
  const available = prefix > 24 ? 0 : 2 ** (24 - prefix);
  if (availabilityZones.length + 1 > available) {
    throw new TopologyError(
      `VPC range ${vpcCidr} holds ${available} /24 subnet(s) but ${availabilityZones.length} private + 1 public are needed; use a /22 or larger`,
    );
  }
  return availabilityZones.map((availabilityZone, k) => ({ availabilityZone, cidr: `${formatIp(base + k * 256)}/24` }));
}

/** The last /24 of the VPC: the one public subnet that holds the NAT gateway. */
export function publicSubnetCidr(vpcCidr: string): string {
  const { base, prefix } = parseCidr(vpcCidr);
  if (prefix > 24) throw new TopologyError(`VPC range ${vpcCidr} is smaller than a /24`);
  return `${formatIp(base + 2 ** (32 - prefix) - 256)}/24`;
}

function place(names: readonly string[], subnets: readonly SubnetPlan[], firstOffset: number): HostPlacement[] {
  if (subnets.length === 0) throw new TopologyError("at least one subnet is needed");
  return names.map((name, i) => {
    const subnetIndex = i % subnets.length;
    const subnet = subnets[subnetIndex]!;
    return {
      name,
      subnetIndex,
      availabilityZone: subnet.availabilityZone,
      privateIp: hostAddress(subnet.cidr, firstOffset + Math.floor(i / subnets.length)),
    };
  });
}

/**
 * Masters dealt round-robin over the subnets (one per zone). With three zones, 3 masters are
 * 1|1|1, 5 are 2|2|1 and 7 are 3|2|2: losing any one zone leaves a quorum in every case.
 */
export function placeMasters(names: readonly string[], subnets: readonly SubnetPlan[]): HostPlacement[] {
  return place(names, subnets, MASTER_HOST_OFFSET);
}

export function placeWorkers(names: readonly string[], subnets: readonly SubnetPlan[]): HostPlacement[] {
  if (names.length > (WORKER_HOST_OFFSET - MASTER_HOST_OFFSET) * subnets.length) {
    throw new TopologyError(`too many workers (${names.length}) for ${subnets.length} subnet(s)`);
  }
  return place(names, subnets, WORKER_HOST_OFFSET);
}

/** Member endpoints (default ports) at the masters' planned addresses, in member order. */
export function masterEndpoints(placements: readonly HostPlacement[], prefix = "raftkv"): MemberEndpoint[] {
  return planHostMembers(
    placements.map((p) => p.privateIp),
    prefix,
  );
}

/** The private DNS name EC2 gives an address (us-east-1 uses the older ec2.internal domain). */
export function privateDnsName(ip: string, region: string): string {
  parseCidr(`${ip}/32`);
  const domain = region === "us-east-1" ? "ec2.internal" : `${region}.compute.internal`;
  return `ip-${ip.replace(/\./g, "-")}.${domain}`;
}
