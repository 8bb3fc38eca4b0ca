/**
 * The member's configuration: etcd-named flags, each also settable as RAFTKV_<FLAG> env, parsed
 * and validated into one typed value. Every problem becomes a ConfigError whose message is the
 * single line the process prints before exiting.
 */
import { Command, Option, CommanderError } from "commander";
import { isIPv6, parseInitialCluster, parsePeerUrl, TopologyError, type InitialClusterMember } from "../../components/topology";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export interface ListenUrl {
  scheme: "http" | "https";
  host: string;
  port: number;
  url: string;
}

export interface ServerConfig {
  name: string;
  dataDir: string;
  listenPeer: ListenUrl;
  listenClient: ListenUrl[];
  listenMetrics: ListenUrl[];
  advertisePeerUrls: string[];
  advertiseClientUrls: string[];
  initialCluster: InitialClusterMember[];
  initialClusterState: "new" | "existing";
  initialClusterToken: string;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  snapshotCount: number;
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  clientCertAuth: boolean;
  peerCertFile: string;
  peerKeyFile: string;
  peerTrustedCaFile: string;
  /** --peer-cert-allowed-cn: peer certificates must carry one of these CNs (empty: any member). */
  peerCertAllowedCn: string[];
  /** --peer-cert-allowed-hostname: peer certificates must be valid for one of these. */
  peerCertAllowedHostname: string[];
  maxRequestBytes: number;
  quotaBackendBytes: number;
  maxTxnOps: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** etcd's --experimental-initial-corrupt-check: compare the data with the peers' before serving. */
  initialCorruptCheck: boolean;
  /** etcd's --experimental-corrupt-check-time: how often the leader compares hashes (0 = never). */
  corruptCheckTimeMs: number;
  /** The leader promotes a learner once its log has caught up (etcd needs a manual `member promote`). */
  autoPromoteLearners: boolean;
  /** etcd's --auth-token-ttl: seconds a simple token lives unused (default 300). */
  authTokenTtlSec?: number;
  /** etcd's --bcrypt-cost for new password hashes (default 10). */
  bcryptCost?: number;
  /** --client-handshake-timeout: a client connection must finish TLS and show its protocol within this (ms). */
  clientHandshakeTimeoutMs?: number;
  /** --gateway-header-timeout: the HTTP gateway's first request headers must arrive within this of the connection (ms). */
  gatewayHeaderTimeoutMs?: number;
  /** --gateway-body-timeout: a unary gateway request's body may pause at most this long between chunks (ms). */
  gatewayBodyTimeoutMs?: number;
  /** --backup-state-dir: the backup agent's state directory, served on /metrics as raftkv_backup_*. */
  backupStateDir?: string;
}

interface FlagSpec {
  flag: string;
  description: string;
  default?: string;
  /** A boolean, which etcd (Go's flag package) also takes bare: `--client-cert-auth` means true. */
  boolean?: true;
}

const FLAGS: FlagSpec[] = [
  { flag: "name", description: "human-readable name of this member", default: "default" },
  { flag: "data-dir", description: "path to the data directory (default: <name>.raftkv)" },
  { flag: "listen-peer-urls", description: "URL to listen on for peer traffic (https only)", default: "https://localhost:2380" },
  { flag: "listen-client-urls", description: "comma-separated URLs to listen on for client traffic", default: "https://localhost:2379" },
  { flag: "listen-metrics-urls", description: "comma-separated plain-HTTP URLs serving /health and /metrics", default: "" },
  { flag: "initial-advertise-peer-urls", description: "this member's peer URLs to advertise to the rest of the cluster", default: "https://localhost:2380" },
  { flag: "advertise-client-urls", description: "this member's client URLs to advertise to clients", default: "https://localhost:2379" },
  { flag: "initial-cluster", description: "initial cluster configuration for bootstrapping: name=url,...", default: "default=https://localhost:2380" },
  { flag: "initial-cluster-state", description: "'new' for a new cluster, 'existing' to join one", default: "new" },
  { flag: "initial-cluster-token", description: "initial cluster token, unique per cluster", default: "raftkv-cluster" },
  { flag: "heartbeat-interval", description: "time (ms) of a heartbeat interval", default: "100" },
  { flag: "election-timeout", description: "time (ms) for an election to timeout", default: "1000" },
  { flag: "snapshot-count", description: "number of committed entries that trigger a snapshot", default: "100000" },
  { flag: "cert-file", description: "path to the client server TLS cert file" },
  { flag: "key-file", description: "path to the client server TLS key file" },
  { flag: "trusted-ca-file", description: "path to the client server TLS trusted CA file (may hold several CAs)" },
  { flag: "client-cert-auth", description: "require client certificates signed by --trusted-ca-file", default: "false", boolean: true },
  { flag: "peer-cert-file", description: "path to the peer TLS cert file (server and client auth)" },
  { flag: "peer-key-file", description: "path to the peer TLS key file" },
  { flag: "peer-trusted-ca-file", description: "path to the peer TLS trusted CA file (may hold several CAs)" },
  { flag: "peer-cert-allowed-cn", description: "comma-separated CNs a peer certificate must carry one of (besides naming its member)" },
  { flag: "peer-cert-allowed-hostname", description: "comma-separated host names or IPs a peer certificate must be valid for one of" },
  { flag: "peer-client-cert-auth", description: "require peer certificates signed by --peer-trusted-ca-file (always true)", default: "true", boolean: true },
  { flag: "max-request-bytes", description: "maximum client request size in bytes the server will accept", default: String(1.5 * 1024 * 1024) },
  { flag: "quota-backend-bytes", description: "raise an alarm when the backend size exceeds this quota", default: String(2 * 1024 * 1024 * 1024) },
  { flag: "max-txn-ops", description: "maximum number of operations permitted in a transaction", default: "128" },
  { flag: "log-level", description: "debug, info, warn or error", default: "info" },
  { flag: "experimental-initial-corrupt-check", description: "check the data against the peers' before serving; refuse to start on a mismatch", default: "false", boolean: true },
  { flag: "auto-promote-learners", description: "the leader promotes a learner to voter once its log has caught up (false: only `member promote` does, as in etcd)", default: "true", boolean: true },
  { flag: "auth-token", description: "auth token type: simple (the only one supported)", default: "simple" },
  { flag: "auth-token-ttl", description: "seconds an unused simple auth token stays valid", default: "300" },
  { flag: "bcrypt-cost", description: "bcrypt cost of password hashes (4..31)", default: "10" },
  { flag: "experimental-corrupt-check-time", description: "interval of the leader's data checks against the followers (Go duration, 0s = off)", default: "0s" },
  // No etcd equivalents (Go's servers hard-code theirs); production keeps the defaults, tests shorten them.
  { flag: "client-handshake-timeout", description: "a client connection must finish its TLS handshake and show its protocol within this (Go duration)", default: "10s" },
  { flag: "gateway-header-timeout", description: "the HTTP/JSON gateway answers 408 and closes a connection whose first request headers take longer (Go duration)", default: "10s" },
  { flag: "backup-state-dir", description: "the backup agent's state directory (its RAFTKV_BACKUP_STATE_DIR); its runs and the newest backup's age are served on /metrics" },
  { flag: "gateway-body-timeout", description: "the HTTP/JSON gateway answers 408 when a unary request body pauses longer than this (Go duration)", default: "30s" },
];

export function envName(flag: string): string {
  return `RAFTKV_${flag.toUpperCase().replace(/-/g, "_")}`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The commander program for `raftkv`; exported so `--help` output can be tested. */
export function buildCommand(): Command {
  const cmd = new Command("raftkv")
    .description("raftkv member: an etcd-compatible Raft key-value store")
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: (s) => process.stdout.write(s) })
    .version(versionString(), "--version");
  for (const f of FLAGS) {
    // A bare boolean flag parses as `true` (commander's optional value), as in etcd's unit files.
    const opt = new Option(f.boolean ? `--${f.flag} [value]` : `--${f.flag} <value>`, f.description).env(envName(f.flag));
    if (f.default !== undefined && f.default !== "") opt.default(f.default);
    cmd.addOption(opt);
  }
  return cmd;
}

function versionString(): string {
  // Resolved by esbuild at bundle time and by tsx at run time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkg = require("../../package.json") as { version: string };
  return `raftkv ${pkg.version}`;
}

/** Parses argv (without node and script) and the environment into a validated config. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const cmd = buildCommand();
  const saved = { ...process.env };
  // commander reads env from process.env; scope the given env for the duration of the parse.
  if (env !== process.env) {
    for (const k of Object.keys(process.env)) if (k.startsWith("RAFTKV_")) delete process.env[k];
    for (const [k, v] of Object.entries(env)) if (k.startsWith("RAFTKV_") && v !== undefined) process.env[k] = v;
  }
  try {
    cmd.parse([...argv], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.version" || e.code === "commander.helpDisplayed") throw e;
      throw new ConfigError(e.message.replace(/^error: /, ""));
    }
    throw e;
  } finally {
    if (env !== process.env) {
      for (const k of Object.keys(process.env)) if (k.startsWith("RAFTKV_")) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }
  const o = cmd.opts<Record<string, string | boolean | undefined>>();
  const get = (flag: string): string | undefined => {
    const v = o[camel(flag)];
    if (v === true) return "true";
    return v === undefined || v === false || v === "" ? undefined : v;
  };
  const req = (flag: string): string => {
    const v = get(flag);
    if (v === undefined) throw new ConfigError(`--${flag} is required (or set ${envName(flag)})`);
    return v;
  };
  return validate(get, req);
}

function validate(get: (f: string) => string | undefined, req: (f: string) => string): ServerConfig {
  const name = req("name");
  const initialCluster = wrapTopology("--initial-cluster", () => parseInitialCluster(req("initial-cluster")));
  const self = initialCluster.filter((m) => m.name === name);
  const state = req("initial-cluster-state");
  if (state !== "new" && state !== "existing") {
    throw new ConfigError(`--initial-cluster-state must be 'new' or 'existing', got ${JSON.stringify(state)}`);
  }
  if (self.length === 0) {
    throw new ConfigError(
      `--initial-cluster has no member named ${JSON.stringify(name)} (from --name); it lists ${initialCluster.map((m) => m.name).join(", ")}`,
    );
  }
  const advertisePeerUrls = splitUrls(req("initial-advertise-peer-urls"), "--initial-advertise-peer-urls");
  for (const u of advertisePeerUrls) wrapTopology("--initial-advertise-peer-urls", () => parsePeerUrl(u));
  if (!advertisePeerUrls.includes(self[0]!.peerUrl)) {
    throw new ConfigError(
      `--initial-cluster gives ${name} the peer URL ${self[0]!.peerUrl}, but --initial-advertise-peer-urls is ${advertisePeerUrls.join(",")}`,
    );
  }
  const listenPeer = parseListenUrl(req("listen-peer-urls"), "--listen-peer-urls");
  if (listenPeer.scheme !== "https") throw new ConfigError("--listen-peer-urls must use https: peer traffic is always TLS");
  const listenClient = splitUrls(req("listen-client-urls"), "--listen-client-urls").map((u) => parseListenUrl(u, "--listen-client-urls"));
  const metrics = get("listen-metrics-urls");
  const listenMetrics = metrics === undefined ? [] : splitUrls(metrics, "--listen-metrics-urls").map((u) => parseListenUrl(u, "--listen-metrics-urls"));
  for (const m of listenMetrics) if (m.scheme !== "http") throw new ConfigError(`--listen-metrics-urls serves plain HTTP; use http:// (got ${m.url})`);

  const heartbeatIntervalMs = positiveInt(req("heartbeat-interval"), "--heartbeat-interval");
  const electionTimeoutMs = positiveInt(req("election-timeout"), "--election-timeout");
  if (electionTimeoutMs < 5 * heartbeatIntervalMs) {
    throw new ConfigError(
      `--election-timeout (${electionTimeoutMs} ms) must be at least 5 times --heartbeat-interval (${heartbeatIntervalMs} ms)`,
    );
  }
  const needsTls = listenClient.some((u) => u.scheme === "https");
  const certFile = get("cert-file");
  const keyFile = get("key-file");
  if (needsTls && (certFile === undefined || keyFile === undefined)) {
    throw new ConfigError("--listen-client-urls uses https, so --cert-file and --key-file are required");
  }
  const clientCertAuth = bool(req("client-cert-auth"), "--client-cert-auth");
  const trustedCaFile = get("trusted-ca-file");
  if (clientCertAuth && trustedCaFile === undefined) throw new ConfigError("--client-cert-auth requires --trusted-ca-file");
  if (needsTls && trustedCaFile === undefined) {
    throw new ConfigError("--listen-client-urls uses https, so --trusted-ca-file is required (the CA bundle clients are verified against)");
  }
  if (!bool(req("peer-client-cert-auth"), "--peer-client-cert-auth")) {
    throw new ConfigError("--peer-client-cert-auth=false is not supported: members always authenticate each other by certificate");
  }
  const logLevel = req("log-level");
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`--log-level must be debug, info, warn or error, got ${JSON.stringify(logLevel)}`);
  }
  const token = req("initial-cluster-token");
  checkAuthToken(req("auth-token"));
  const bcryptCost = positiveInt(req("bcrypt-cost"), "--bcrypt-cost");
  if (bcryptCost < 4 || bcryptCost > 31) throw new ConfigError(`--bcrypt-cost must be between 4 and 31, got ${bcryptCost}`);
  return {
    name,
    dataDir: get("data-dir") ?? `${name}.raftkv`,
    listenPeer,
    listenClient,
    listenMetrics,
    advertisePeerUrls,
    advertiseClientUrls: splitUrls(req("advertise-client-urls"), "--advertise-client-urls"),
    initialCluster,
    initialClusterState: state,
    initialClusterToken: token,
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotCount: positiveInt(req("snapshot-count"), "--snapshot-count"),
    ...(certFile !== undefined ? { certFile } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
    ...(trustedCaFile !== undefined ? { trustedCaFile } : {}),
    clientCertAuth,
    peerCertFile: req("peer-cert-file"),
    peerKeyFile: req("peer-key-file"),
    peerTrustedCaFile: req("peer-trusted-ca-file"),
    peerCertAllowedCn: commaList(get("peer-cert-allowed-cn")),
    peerCertAllowedHostname: commaList(get("peer-cert-allowed-hostname")),
    maxRequestBytes: positiveInt(req("max-request-bytes"), "--max-request-bytes"),
    quotaBackendBytes: positiveInt(req("quota-backend-bytes"), "--quota-backend-bytes"),
    maxTxnOps: positiveInt(req("max-txn-ops"), "--max-txn-ops"),
    logLevel: logLevel as ServerConfig["logLevel"],
    initialCorruptCheck: bool(req("experimental-initial-corrupt-check"), "--experimental-initial-corrupt-check"),
    corruptCheckTimeMs: duration(req("experimental-corrupt-check-time"), "--experimental-corrupt-check-time"),
    autoPromoteLearners: bool(req("auto-promote-learners"), "--auto-promote-learners"),
    authTokenTtlSec: positiveInt(req("auth-token-ttl"), "--auth-token-ttl"),
    bcryptCost,
    clientHandshakeTimeoutMs: positiveDuration(req("client-handshake-timeout"), "--client-handshake-timeout"),
    gatewayHeaderTimeoutMs: positiveDuration(req("gateway-header-timeout"), "--gateway-header-timeout"),
    gatewayBodyTimeoutMs: positiveDuration(req("gateway-body-timeout"), "--gateway-body-timeout"),
    ...(get("backup-state-dir") !== undefined ? { backupStateDir: get("backup-state-dir")! } : {}),
  };
}

function wrapTopology<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TopologyError) throw new ConfigError(`${what}: ${e.message}`);
    throw e;
  }
}

function splitUrls(v: string, flag: string): string[] {
  const urls = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (urls.length === 0) throw new ConfigError(`${flag} is empty`);
  return urls;
}

export function parseListenUrl(url: string, flag: string): ListenUrl {
  const m = /^(https?):\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(url);
  if (!m) throw new ConfigError(`${flag}: invalid URL ${JSON.stringify(url)}, expected http(s)://host:port`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new ConfigError(`${flag}: port ${m[3]} out of range in ${url}`);
  const bracketed = m[2]!.startsWith("[");
  const host = bracketed ? m[2]!.slice(1, -1) : m[2]!;
  if (bracketed && !isIPv6(host)) throw new ConfigError(`${flag}: invalid URL ${JSON.stringify(url)}, only an IPv6 address may be in brackets`);
  return { scheme: m[1] as "http" | "https", host, port, url };
}

function commaList(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigError(`${flag} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return n;
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration as etcd's flags take it ("5m", "1m30s", "500ms", "0"), in milliseconds. */
function duration(v: string, flag: string): number {
  const text = v.trim();
  if (text === "0") return 0;
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let ms = 0;
  let at = 0;
  for (let m = part.exec(text); m !== null; m = part.exec(text)) {
    ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    at = part.lastIndex;
  }
  if (at === 0 || at !== text.length) throw new ConfigError(`${flag} must be a duration such as 5m or 30s, got ${JSON.stringify(v)}`);
  return Math.round(ms);
}

/** A deadline: a Go duration of at least 1 ms (0 would close every connection at once). */
function positiveDuration(v: string, flag: string): number {
  const ms = duration(v, flag);
  if (ms < 1) throw new ConfigError(`${flag} must be at least 1ms, got ${JSON.stringify(v)}`);
  return ms;
}

function bool(v: string, flag: string): boolean {
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new ConfigError(`${flag} must be true or false, got ${JSON.stringify(v)}`);
}

/**
 * etcd's --auth-token is `simple` or `jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`.
 * Only simple tokens are implemented: a JWT configuration is refused at start, in one line,
 * rather than silently served with simple tokens its clients would not expect.
 */
function checkAuthToken(v: string): void {
  const kind = v.split(",")[0]!.trim();
  if (kind === "simple" && !v.includes(",")) return;
  if (kind === "jwt") {
    throw new ConfigError("--auth-token jwt is not supported: raftkv issues etcd's simple tokens only; remove the flag or set --auth-token=simple");
  }
  throw new ConfigError(`--auth-token ${JSON.stringify(v)} is not supported: the only token type is simple`);
}
