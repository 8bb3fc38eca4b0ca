/**
 * The topology plan: the one place where the deployment (Pulumi components) and the runtime
 * (local launcher, member process) agree on member names, ports, quorum math, flag rendering
 * and certificate profiles.
 *
 * Pure by design: no Pulumi import, no I/O, no clock. Everything here can be unit-tested as
 * plain values, and both sides import it, so a cloud member and a local member are started
 * with the same flags.
 */
import { isIP } from "node:net";

export const DEFAULT_CLIENT_PORT = 2379;
export const DEFAULT_PEER_PORT = 2380;
/** Plain-HTTP port for `/health` and `/metrics` (load balancer health checks, Prometheus). */
export const DEFAULT_METRICS_PORT = 2381;
export const SUPPORTED_MASTER_COUNTS: readonly number[] = [3, 5, 7];

/** A problem with user input to the plan. The message is meant to be shown as-is. */
export class TopologyError extends Error {
  override readonly name = "TopologyError";
}

function assertPositiveInteger(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new TopologyError(`${what} must be a positive integer, got ${String(n)}`);
  }
}

/** Votes needed to elect a leader or commit a write in a cluster of n voting members. */
export function quorum(n: number): number {
  assertPositiveInteger(n, "cluster size");
  return Math.floor(n / 2) + 1;
}

/** How many members may fail while the rest still form a quorum. */
export function faultTolerance(n: number): number {
  return n - quorum(n);
}

/**
 * Why a master count is not supported, or undefined when it is. The reasons are the ones a
 * user planning capacity needs to hear, not just "must be 3, 5 or 7".
 */
export function masterCountProblem(n: number): string | undefined {
  if (!Number.isInteger(n) || n < 1) {
    return `masters must be 3, 5 or 7; got ${String(n)}, which is not a positive whole number`;
  }
  if (SUPPORTED_MASTER_COUNTS.includes(n)) return undefined;
  if (n < 3) {
    return (
      `masters must be 3, 5 or 7; got ${n}: a cluster of ${n} needs ${quorum(n)} member(s) for quorum ` +
      `and so tolerates no failure — one lost member stops all writes`
    );
  }
  if (n % 2 === 0) {
    return (
      `masters must be 3, 5 or 7; got ${n}: an even size adds cost without adding tolerance ` +
      `(${n} members tolerate ${faultTolerance(n)} failure(s), the same as ${n - 1}) and a partition ` +
      `can split it ${n / 2}|${n / 2}, leaving no side with the quorum of ${quorum(n)} to accept writes`
    );
  }
  return (
    `masters must be 3, 5 or 7; got ${n}: beyond 7 members every write must reach ` +
    `${quorum(n)} members, which slows every write while failures of more than 3 masters at once are ` +
    `better handled by backups than by more replicas`
  );
}

/** Throws a TopologyError explaining why, unless n is 3, 5 or 7. */
export function assertMasterCount(n: number): void {
  const problem = masterCountProblem(n);
  if (problem !== undefined) throw new TopologyError(problem);
}

export interface PartitionOutcome {
  /** Index into the groups of the side that keeps quorum, or undefined if no side does. */
  writableGroup: number | undefined;
  quorum: number;
}

/**
 * Given a cluster of n voters split into groups that cannot reach each other, which group (if
 * any) can still elect a leader and commit writes. At most one group can, because two groups
 * of quorum size would have to share a member.
 */
export function partitionOutcome(n: number, groups: readonly number[]): PartitionOutcome {
  const q = quorum(n);
  let total = 0;
  for (const g of groups) {
    if (!Number.isInteger(g) || g < 0) {
      throw new TopologyError(`partition group sizes must be non-negative integers, got ${String(g)}`);
    }
    total += g;
  }
  if (total !== n) {
    throw new TopologyError(`partition groups ${groups.join("|")} add up to ${total}, not to the cluster size ${n}`);
  }
  const idx = groups.findIndex((g) => g >= q);
  return { writableGroup: idx === -1 ? undefined : idx, quorum: q };
}

// ---------------------------------------------------------------------------------------------
// Members and addresses

export interface MemberEndpoint {
  name: string;
  /** IPv4 or IPv6 address (no brackets) or DNS name other members and clients reach this member at. */
  host: string;
  clientPort: number;
  peerPort: number;
  metricsPort: number;
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** The name of member i (0-based) of a cluster: raftkv-1, raftkv-2, ... */
export function memberName(i: number, prefix = "raftkv"): string {
  if (!Number.isInteger(i) || i < 0) throw new TopologyError(`member index must be a non-negative integer, got ${String(i)}`);
  const name = `${prefix}-${i + 1}`;
  validateMemberName(name);
  return name;
}

export function validateMemberName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new TopologyError(
      `invalid member name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits and '-', ` +
        `starting and ending with a letter or digit`,
    );
  }
}

export function isIPv4(host: string): boolean {
  return IPV4_RE.test(host);
}

/** An IPv6 address literal without brackets, e.g. ::1 (no zone: a zone names a local interface). */
export function isIPv6(host: string): boolean {
  return !host.includes("%") && isIP(host) === 6;
}

/** A host as URLs write it: IPv6 literals in brackets (https://[::1]:2380), as etcd writes them. */
export function urlHost(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

export function validateHost(host: string): void {
  if (isIPv4(host) || isIPv6(host)) return;
  const labels = host.split(".");
  const looksNumeric = /^[\d.]+$/.test(host);
  if (looksNumeric || host.length === 0 || host.length > 253 || !labels.every((l) => DNS_LABEL_RE.test(l))) {
    throw new TopologyError(`invalid host ${JSON.stringify(host)}: expected an IPv4 or IPv6 address or a DNS name`);
  }
}

export function validatePort(port: number, what = "port"): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TopologyError(`invalid ${what} ${String(port)}: expected an integer between 1 and 65535`);
  }
}

/** Checks a whole member list: valid names/hosts/ports, unique names and unique host:port pairs. */
export function validateMembers(members: readonly MemberEndpoint[]): void {
  if (members.length === 0) throw new TopologyError("a cluster needs at least one member");
  const names = new Set<string>();
  const endpoints = new Set<string>();
  for (const m of members) {
    validateMemberName(m.name);
    validateHost(m.host);
    validatePort(m.clientPort, `client port of ${m.name}`);
    validatePort(m.peerPort, `peer port of ${m.name}`);
    validatePort(m.metricsPort, `metrics port of ${m.name}`);
    if (names.has(m.name)) throw new TopologyError(`member name ${m.name} is used twice`);
    names.add(m.name);
    for (const port of [m.clientPort, m.peerPort, m.metricsPort]) {
      const ep = `${urlHost(m.host)}:${port}`;
      if (endpoints.has(ep)) throw new TopologyError(`address ${ep} is used twice (member ${m.name})`);
      endpoints.add(ep);
    }
  }
}

/** Members on distinct hosts with the default ports, as in a cloud deployment. */
export function planHostMembers(hosts: readonly string[], prefix = "raftkv"): MemberEndpoint[] {
  const members = hosts.map((host, i) => ({
    name: memberName(i, prefix),
    host,
    clientPort: DEFAULT_CLIENT_PORT,
    peerPort: DEFAULT_PEER_PORT,
    metricsPort: DEFAULT_METRICS_PORT,
  }));
  validateMembers(members);
  return members;
}

/**
 * Members sharing one host (the local cluster): member i gets ports base + 10*i, so member 1
 * keeps the familiar 2379/2380/2381.
 */
export function planLocalMembers(size: number, host = "127.0.0.1", basePort = DEFAULT_CLIENT_PORT): MemberEndpoint[] {
  assertMasterCount(size);
  const members = Array.from({ length: size }, (_, i) => ({
    name: memberName(i),
    host,
    clientPort: basePort + 10 * i,
    peerPort: basePort + 1 + 10 * i,
    metricsPort: basePort + 2 + 10 * i,
  }));
  validateMembers(members);
  return members;
}

export function clientUrl(m: MemberEndpoint): string {
  return `https://${urlHost(m.host)}:${m.clientPort}`;
}
export function peerUrl(m: MemberEndpoint): string {
  return `https://${urlHost(m.host)}:${m.peerPort}`;
}
export function metricsUrl(m: MemberEndpoint): string {
  return `http://${urlHost(m.host)}:${m.metricsPort}`;
}

// ---------------------------------------------------------------------------------------------
// --initial-cluster

export interface InitialClusterMember {
  name: string;
  peerUrl: string;
}

/** `name=https://host:port,...` in member order, exactly as etcd's --initial-cluster. */
export function renderInitialCluster(members: readonly MemberEndpoint[]): string {
  validateMembers(members);
  return members.map((m) => `${m.name}=${peerUrl(m)}`).join(",");
}

/** Parses an --initial-cluster value; every problem is reported with the offending part. */
export function parseInitialCluster(value: string): InitialClusterMember[] {
  if (value.trim() === "") throw new TopologyError("--initial-cluster is empty");
  const seen = new Set<string>();
  return value.split(",").map((part) => {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new TopologyError(`--initial-cluster entry ${JSON.stringify(part)} is not name=url`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    validateMemberName(name);
    if (seen.has(name)) throw new TopologyError(`--initial-cluster names member ${name} twice`);
    seen.add(name);
    parsePeerUrl(url);
    return { name, peerUrl: url };
  });
}

/**
 * Splits an https URL of a member into host and port, rejecting anything else. An IPv6 host is
 * written in brackets (https://[::1]:2380) and returned without them.
 */
export function parsePeerUrl(url: string): { host: string; port: number } {
  const m = /^https:\/\/(?:\[([^\]]*)\]|([^:/[\]]+)):(\d+)$/.exec(url);
  if (!m) throw new TopologyError(`invalid peer URL ${JSON.stringify(url)}: expected https://host:port`);
  if (m[1] !== undefined && !isIPv6(m[1])) throw new TopologyError(`invalid peer URL ${JSON.stringify(url)}: only an IPv6 address may be in brackets`);
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  validateHost(host);
  validatePort(port, `port in ${url}`);
  return { host, port };
}

// ---------------------------------------------------------------------------------------------
// Member flags and certificate files

/**
 * Where a member finds its certificate files; the same names on a VM and locally.
 *
 * Two CAs, as etcd recommends: `ca` is the client CA bundle (it signs client certificates and the
 * member's server certificate, so clients trust the same file they were issued from) and is the
 * member's --trusted-ca-file; `peerCa` is the peer CA bundle (it signs member peer certificates
 * only) and is its --peer-trusted-ca-file. A client certificate therefore never verifies on the
 * peer port.
 */
export interface CertPaths {
  ca: string;
  peerCa: string;
  serverCert: string;
  serverKey: string;
  peerCert: string;
  peerKey: string;
}

export function certPaths(certDir: string): CertPaths {
  const d = certDir.replace(/\/+$/, "");
  return {
    ca: `${d}/ca.crt`,
    peerCa: `${d}/peer-ca.crt`,
    serverCert: `${d}/server.crt`,
    serverKey: `${d}/server.key`,
    peerCert: `${d}/peer.crt`,
    peerKey: `${d}/peer.key`,
  };
}

export interface MemberFlagOptions {
  dataDir: string;
  certDir: string;
  clusterToken: string;
  clusterState: "new" | "existing";
  /** Address to bind; "0.0.0.0" on a VM, the member's host locally. */
  listenHost: string;
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
  snapshotCount?: number;
  quotaBackendBytes?: number;
}

/**
 * The full flag set of one member, as `--flag=value` strings. Both the systemd unit on a VM and
 * the local launcher start `raftkv` with exactly this list.
 */
export function renderMemberFlags(
  self: MemberEndpoint,
  cluster: readonly MemberEndpoint[],
  opts: MemberFlagOptions,
): string[] {
  validateMembers(cluster);
  if (!cluster.some((m) => m.name === self.name)) {
    throw new TopologyError(`member ${self.name} is not in the cluster it is rendered for`);
  }
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(opts.clusterToken)) {
    throw new TopologyError(`invalid cluster token ${JSON.stringify(opts.clusterToken)}: use 1-64 letters, digits, '.', '_' or '-'`);
  }
  const listen = urlHost(opts.listenHost);
  const certs = certPaths(opts.certDir);
  const flags: Array<[string, string]> = [
    ["name", self.name],
    ["data-dir", opts.dataDir],
    ["listen-peer-urls", `https://${listen}:${self.peerPort}`],
    ["listen-client-urls", `https://${listen}:${self.clientPort}`],
    ["listen-metrics-urls", `http://${listen}:${self.metricsPort}`],
    ["initial-advertise-peer-urls", peerUrl(self)],
    ["advertise-client-urls", clientUrl(self)],
    ["initial-cluster", renderInitialCluster(cluster)],
    ["initial-cluster-state", opts.clusterState],
    ["initial-cluster-token", opts.clusterToken],
    ["cert-file", certs.serverCert],
    ["key-file", certs.serverKey],
    ["trusted-ca-file", certs.ca],
    ["client-cert-auth", "true"],
    ["peer-cert-file", certs.peerCert],
    ["peer-key-file", certs.peerKey],
    ["peer-trusted-ca-file", certs.peerCa],
    ["peer-client-cert-auth", "true"],
  ];
  if (opts.heartbeatIntervalMs !== undefined) flags.push(["heartbeat-interval", String(opts.heartbeatIntervalMs)]);
  if (opts.electionTimeoutMs !== undefined) flags.push(["election-timeout", String(opts.electionTimeoutMs)]);
  if (opts.snapshotCount !== undefined) flags.push(["snapshot-count", String(opts.snapshotCount)]);
  if (opts.quotaBackendBytes !== undefined) flags.push(["quota-backend-bytes", String(opts.quotaBackendBytes)]);
  return flags.map(([k, v]) => `--${k}=${v}`);
}

// ---------------------------------------------------------------------------------------------
// Certificate profiles

/** Key usages, named as @pulumi/tls `allowedUses` names them. */
export type KeyUsage = "digital_signature" | "key_encipherment" | "server_auth" | "client_auth";

export interface CertProfile {
  /** Stable identifier, used as a resource name suffix and a file name stem. */
  id: string;
  kind: "server" | "peer" | "client";
  commonName: string;
  /** Subject OU: names the profile, so a certificate says what it was issued for. */
  organizationalUnit: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** URI SANs; a peer certificate carries its member identity here (memberIdentityUri). */
  uris: string[];
  usages: KeyUsage[];
}

/** Subject OU of each profile. The peer port accepts only PEER_OU certificates. */
export const CERT_OU = { server: "raftkv server", peer: "raftkv peer", client: "raftkv client" } as const;

const MEMBER_URI_PREFIX = "urn:raftkv:member:";

/** The URI SAN naming the member a peer certificate belongs to. */
export function memberIdentityUri(name: string): string {
  validateMemberName(name);
  return `${MEMBER_URI_PREFIX}${name}`;
}

/** The member name in a URI SAN made by memberIdentityUri, or undefined for any other URI. */
export function parseMemberIdentityUri(uri: string): string | undefined {
  if (!uri.startsWith(MEMBER_URI_PREFIX)) return undefined;
  const name = uri.slice(MEMBER_URI_PREFIX.length);
  return NAME_RE.test(name) ? name : undefined;
}

export interface MemberCertOptions {
  /** Extra DNS names clients may use for this member, e.g. the load balancer's name. */
  extraDnsNames?: readonly string[];
}

function sanFor(m: MemberEndpoint): { dns: string[]; ips: string[] } {
  return isIPv4(m.host) || isIPv6(m.host) ? { dns: [], ips: [m.host] } : { dns: [m.host], ips: [] };
}

/**
 * The two certificates a member needs: a server certificate for the client port (its own
 * address, localhost, any extra names such as the load balancer's), issued by the client CA, and
 * a peer certificate, issued by the peer CA, usable as both server and client on the peer port.
 * The peer certificate names its member twice: in the CN and in a URI SAN (memberIdentityUri);
 * the peer port accepts it only from the member of that name.
 */
export function memberCertProfiles(m: MemberEndpoint, opts: MemberCertOptions = {}): CertProfile[] {
  const own = sanFor(m);
  const dnsNames = unique([...own.dns, "localhost", ...(opts.extraDnsNames ?? [])]);
  return [
    {
      id: `${m.name}-server`,
      kind: "server",
      commonName: m.name,
      organizationalUnit: CERT_OU.server,
      dnsNames,
      ipAddresses: unique([...own.ips, "127.0.0.1"]),
      uris: [],
      usages: ["digital_signature", "key_encipherment", "server_auth"],
    },
    {
      id: `${m.name}-peer`,
      kind: "peer",
      commonName: m.name,
      organizationalUnit: CERT_OU.peer,
      dnsNames: own.dns,
      ipAddresses: own.ips,
      uris: [memberIdentityUri(m.name)],
      usages: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
    },
  ];
}

/** A client certificate (admins, workers, tools on a master): client auth only, no SANs. */
export function clientCertProfile(name: string): CertProfile {
  validateMemberName(name);
  return {
    id: `${name}-client`,
    kind: "client",
    commonName: name,
    organizationalUnit: CERT_OU.client,
    dnsNames: [],
    ipAddresses: [],
    uris: [],
    usages: ["digital_signature", "key_encipherment", "client_auth"],
  };
}

/**
 * The client certificate the tools on a master (raftkvctl in the install scripts, an operator's
 * shell) use to reach the local member: a client of the cluster like any other, never the
 * member's peer certificate.
 */
export function memberOpsClientName(memberName: string): string {
  return `${memberName}-ops`;
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}
