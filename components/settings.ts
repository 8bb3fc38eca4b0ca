/**
 * Stack configuration, checked and completed with defaults before any resource is declared, so
 * a bad value fails `pulumi preview` with a reason instead of half-way through `pulumi up`.
 * Pure: index.ts reads the raw values from Pulumi config and passes them here.
 */
import { TopologyError, assertMasterCount, validateMemberName } from "./topology";
import { carveSubnets, parseCidr, type SubnetPlan } from "./addressing";
import { archOf, memberBudget, type Arch, type MemberBudget } from "./instanceTypes";

export interface ExistingSubnet extends SubnetPlan {
  id: string;
}

export type NetworkSettings =
  | { kind: "new"; vpcCidr: string; subnets: SubnetPlan[] }
  | { kind: "existing"; vpcId: string; subnets: ExistingSubnet[] };

/**
 * How Pulumi's SSH reaches the hosts:
 *  - "create": a new VPC and no bastionHost — the stack creates a bastion in the public subnet
 *    (SSH from adminCidrs only) and every connection goes through it;
 *  - "configured": through raftkv:bastionHost;
 *  - "direct": an existing VPC and no bastionHost — Pulumi runs inside the VPC (or a VPN).
 */
export type SshPath = { kind: "create"; instanceType: string } | { kind: "configured"; host: string; user: string } | { kind: "direct" };

export interface ClusterSettings {
  masters: number;
  workers: number;
  certGeneration: number;
  /** The client CA (ca.crt: client certificates and the members' server certificates). */
  caGeneration: number;
  /** Older CA generations still trusted next to the signing one (CA rotation, step 1). */
  retiredCaGenerations: number[];
  /** The peer CA (peer-ca.crt: member peer certificates only), rotated on its own. */
  peerCaGeneration: number;
  retiredPeerCaGenerations: number[];
  certValidityHours: number;
  certEarlyRenewalHours: number;
  caValidityHours: number;
  network: NetworkSettings;
  adminCidrs: string[];
  bastionSecurityGroupId: string | undefined;
  sshUser: string;
  sshPublicKey: string;
  bastionHost: string | undefined;
  bastionUser: string | undefined;
  sshPath: SshPath;
  masterInstanceType: string;
  workerInstanceType: string;
  dataVolumeGiB: number;
  amiId: string | undefined;
  /** CPU architecture of each role's instance type (each gets an image of its own architecture). */
  arch: { master: Arch; worker: Arch; bastion: Arch };
  /** A member's heap and storage quota on the master instance type. */
  memberBudget: MemberBudget;
  heartbeatIntervalMs: number | undefined;
  electionTimeoutMs: number | undefined;
  clusterToken: string;
  namePrefix: string;
}

/** Config as read from the stack, every value optional and unchecked. */
export interface RawSettings {
  masters?: number;
  workers?: number;
  certGeneration?: number;
  caGeneration?: number;
  retiredCaGenerations?: unknown;
  peerCaGeneration?: number;
  retiredPeerCaGenerations?: unknown;
  certValidityHours?: number;
  certEarlyRenewalHours?: number;
  caValidityHours?: number;
  vpcCidr?: string;
  availabilityZones?: unknown;
  existingVpcId?: string;
  existingSubnets?: unknown;
  adminCidrs?: unknown;
  bastionSecurityGroupId?: string;
  sshUser?: string;
  sshPublicKey?: string;
  bastionHost?: string;
  bastionUser?: string;
  bastionInstanceType?: string;
  masterInstanceType?: string;
  workerInstanceType?: string;
  dataVolumeGiB?: number;
  amiId?: string;
  masterMemoryMiB?: number;
  quotaBackendBytes?: number;
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
  clusterToken?: string;
  namePrefix?: string;
}

export const DEFAULTS = {
  masters: 3,
  workers: 0,
  certGeneration: 1,
  caGeneration: 1,
  peerCaGeneration: 1,
  certValidityHours: 8760,
  certEarlyRenewalHours: 720,
  caValidityHours: 87600,
  vpcCidr: "10.42.0.0/16",
  sshUser: "admin",
  masterInstanceType: "t3.small",
  workerInstanceType: "t3.micro",
  bastionInstanceType: "t3.micro",
  dataVolumeGiB: 20,
  namePrefix: "raftkv",
} as const;

function positiveInt(value: number | undefined, fallback: number, key: string, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw new TopologyError(`raftkv:${key} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

function stringList(value: unknown, key: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((x) => typeof x === "string")) {
    throw new TopologyError(`raftkv:${key} must be a list of strings`);
  }
  return value as string[];
}

function isOpenToTheWorld(cidr: string): boolean {
  return parseCidr(cidr).prefix === 0;
}

/** Zones a new VPC spreads over: three are enough for 3, 5 and 7 masters to survive the loss of any one. */
export const MAX_ZONES = 3;

/**
 * The zones a new VPC uses, from the region's list (index.ts looks it up: regular availability
 * zones, no local or wavelength zones): sorted by name, the first MAX_ZONES. Sorted, so the answer
 * does not depend on the order AWS lists them in; the first ones, so a zone AWS adds later (named
 * after the existing ones) moves no host. A region with fewer zones is spread over what it has.
 */
export function pickZones(regionZones: readonly string[], region: string): string[] {
  const zones = [...new Set(regionZones)].sort().slice(0, MAX_ZONES);
  if (zones.length === 0) throw new TopologyError(`region ${region} lists no availability zone for this account; set raftkv:availabilityZones`);
  return zones;
}

/**
 * `ctx.regionZones`: the region's availability zones as looked up (see pickZones); only used for a
 * new VPC without raftkv:availabilityZones, and then required.
 */
export function resolveSettings(raw: RawSettings, ctx: { region: string; stack: string; regionZones?: readonly string[] }): ClusterSettings {
  const masters = raw.masters ?? DEFAULTS.masters;
  assertMasterCount(masters);
  const workers = positiveInt(raw.workers, DEFAULTS.workers, "workers", 0);
  const certGeneration = positiveInt(raw.certGeneration, DEFAULTS.certGeneration, "certGeneration");
  const caGeneration = positiveInt(raw.caGeneration, DEFAULTS.caGeneration, "caGeneration");
  const retired = retiredGenerations(raw.retiredCaGenerations, caGeneration, "retiredCaGenerations", "caGeneration");
  const peerCaGeneration = positiveInt(raw.peerCaGeneration, DEFAULTS.peerCaGeneration, "peerCaGeneration");
  const retiredPeer = retiredGenerations(raw.retiredPeerCaGenerations, peerCaGeneration, "retiredPeerCaGenerations", "peerCaGeneration");
  const certValidityHours = positiveInt(raw.certValidityHours, DEFAULTS.certValidityHours, "certValidityHours");
  const certEarlyRenewalHours = positiveInt(raw.certEarlyRenewalHours, DEFAULTS.certEarlyRenewalHours, "certEarlyRenewalHours", 0);
  if (certEarlyRenewalHours >= certValidityHours) {
    throw new TopologyError(`raftkv:certEarlyRenewalHours (${certEarlyRenewalHours}) must be less than raftkv:certValidityHours (${certValidityHours})`);
  }
  const caValidityHours = positiveInt(raw.caValidityHours, DEFAULTS.caValidityHours, "caValidityHours");
  if (caValidityHours <= certValidityHours) {
    throw new TopologyError(`raftkv:caValidityHours (${caValidityHours}) must exceed raftkv:certValidityHours (${certValidityHours})`);
  }

  let network: NetworkSettings;
  if (raw.existingVpcId !== undefined) {
    const subnets = stringList(raw.existingSubnets, "existingSubnets") ?? [];
    if (subnets.length === 0) {
      throw new TopologyError('raftkv:existingVpcId needs raftkv:existingSubnets: one "subnet-id:cidr:availability-zone" per zone');
    }
    const parsed = subnets.map((entry, i) => {
      const [id, cidr, availabilityZone, ...rest] = entry.split(":");
      if (!id?.startsWith("subnet-") || cidr === undefined || availabilityZone === undefined || availabilityZone === "" || rest.length > 0) {
        throw new TopologyError(`raftkv:existingSubnets[${i}] is ${JSON.stringify(entry)}; expected "subnet-id:cidr:availability-zone"`);
      }
      parseCidr(cidr);
      return { id, cidr, availabilityZone };
    });
    network = { kind: "existing", vpcId: raw.existingVpcId, subnets: parsed };
  } else {
    if (raw.existingSubnets !== undefined) throw new TopologyError("raftkv:existingSubnets is only used together with raftkv:existingVpcId");
    const configured = stringList(raw.availabilityZones, "availabilityZones");
    if (configured === undefined && ctx.regionZones === undefined) throw new Error("the region's availability zones were not looked up (index.ts passes them)");
    const zones = configured ?? pickZones(ctx.regionZones!, ctx.region);
    const vpcCidr = raw.vpcCidr ?? DEFAULTS.vpcCidr;
    network = { kind: "new", vpcCidr, subnets: carveSubnets(vpcCidr, zones) };
  }

  const adminCidrs = stringList(raw.adminCidrs, "adminCidrs") ?? [];
  for (const c of adminCidrs) {
    parseCidr(c);
    if (isOpenToTheWorld(c)) throw new TopologyError(`raftkv:adminCidrs must not contain ${c}: SSH and the client port are never opened to the whole internet`);
  }
  if (adminCidrs.length === 0 && raw.bastionSecurityGroupId === undefined) {
    throw new TopologyError("set raftkv:adminCidrs (the networks Pulumi and operators connect from) or raftkv:bastionSecurityGroupId; without either no one can reach the hosts to install them");
  }
  if (raw.sshPublicKey === undefined || !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) /.test(raw.sshPublicKey)) {
    throw new TopologyError("raftkv:sshPublicKey must be an OpenSSH public key (its private half goes in the secret raftkv:sshPrivateKey)");
  }
  const sshUser = raw.sshUser ?? DEFAULTS.sshUser;
  let sshPath: SshPath;
  if (raw.bastionHost !== undefined) sshPath = { kind: "configured", host: raw.bastionHost, user: raw.bastionUser ?? sshUser };
  else if (network.kind === "new") {
    if (adminCidrs.length === 0) {
      throw new TopologyError("set raftkv:adminCidrs: the stack creates a bastion in the new VPC (every host is private) and it accepts SSH only from those networks");
    }
    sshPath = { kind: "create", instanceType: raw.bastionInstanceType ?? DEFAULTS.bastionInstanceType };
  } else sshPath = { kind: "direct" };
  if (raw.bastionInstanceType !== undefined && sshPath.kind !== "create") {
    throw new TopologyError("raftkv:bastionInstanceType is only used when the stack creates the bastion (a new VPC and no raftkv:bastionHost)");
  }
  const namePrefix = raw.namePrefix ?? DEFAULTS.namePrefix;
  validateMemberName(`${namePrefix}-1`);
  const clusterToken = raw.clusterToken ?? `${namePrefix}-${ctx.stack}`;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(clusterToken)) throw new TopologyError(`raftkv:clusterToken ${JSON.stringify(clusterToken)}: use 1-64 letters, digits, '.', '_' or '-'`);

  const masterInstanceType = raw.masterInstanceType ?? DEFAULTS.masterInstanceType;
  const workerInstanceType = raw.workerInstanceType ?? DEFAULTS.workerInstanceType;
  const arch = {
    master: archOf(masterInstanceType),
    worker: archOf(workerInstanceType),
    bastion: archOf(raw.bastionInstanceType ?? DEFAULTS.bastionInstanceType),
  };
  const archs = new Set(sshPath.kind === "create" ? Object.values(arch) : workers > 0 ? [arch.master, arch.worker] : [arch.master]);
  if (raw.amiId !== undefined && archs.size > 1) {
    throw new TopologyError(`raftkv:amiId names one image, but the instance types need ${[...archs].join(" and ")} images: use instance types of one architecture, or unset raftkv:amiId`);
  }
  const budget = memberBudget(masterInstanceType, {
    ...(raw.masterMemoryMiB !== undefined ? { memoryMiB: positiveInt(raw.masterMemoryMiB, 0, "masterMemoryMiB") } : {}),
    ...(raw.quotaBackendBytes !== undefined ? { quotaBackendBytes: positiveInt(raw.quotaBackendBytes, 0, "quotaBackendBytes") } : {}),
  });
  const heartbeat = raw.heartbeatIntervalMs === undefined ? undefined : positiveInt(raw.heartbeatIntervalMs, 0, "heartbeatIntervalMs");
  const election = raw.electionTimeoutMs === undefined ? undefined : positiveInt(raw.electionTimeoutMs, 0, "electionTimeoutMs");
  // The runtime's own rule (etcd's): an election timeout below 5 heartbeats makes followers
  // start elections while the leader is merely a little late.
  if ((election ?? 1000) < 5 * (heartbeat ?? 100)) {
    throw new TopologyError(`raftkv:electionTimeoutMs (${election ?? 1000}) must be at least 5 times raftkv:heartbeatIntervalMs (${heartbeat ?? 100})`);
  }

  return {
    masters,
    workers,
    certGeneration,
    caGeneration,
    retiredCaGenerations: retired,
    peerCaGeneration,
    retiredPeerCaGenerations: retiredPeer,
    certValidityHours,
    certEarlyRenewalHours,
    caValidityHours,
    network,
    adminCidrs,
    bastionSecurityGroupId: raw.bastionSecurityGroupId,
    sshUser,
    sshPublicKey: raw.sshPublicKey,
    bastionHost: raw.bastionHost,
    bastionUser: raw.bastionUser,
    sshPath,
    masterInstanceType,
    workerInstanceType,
    dataVolumeGiB: positiveInt(raw.dataVolumeGiB, DEFAULTS.dataVolumeGiB, "dataVolumeGiB"),
    amiId: raw.amiId,
    arch,
    memberBudget: budget,
    heartbeatIntervalMs: heartbeat,
    electionTimeoutMs: election,
    clusterToken,
    namePrefix,
  };
}

/** A CA's retired generations (rotation step 1): distinct earlier integers, sorted. */
function retiredGenerations(raw: unknown, signing: number, key: string, signingKey: string): number[] {
  const retired = raw === undefined ? [] : raw;
  if (!Array.isArray(retired) || !retired.every((g) => Number.isInteger(g) && g >= 1 && g !== signing)) {
    throw new TopologyError(`raftkv:${key} must be a list of earlier CA generations (integers other than ${signingKey} ${signing})`);
  }
  return [...new Set(retired as number[])].sort((a, b) => a - b);
}
