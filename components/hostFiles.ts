/**
 * Files placed on hosts, rendered as text: the member's systemd unit, the env files that point
 * etcdctl-style tools at the cluster, and the framing that carries certificates and keys to a
 * host through a command's stdin (so keys never appear in a command line, a log or a file
 * left behind by the transfer). Pure: no Pulumi, no I/O.
 */
import { certPaths, renderMemberFlags, TopologyError, type MemberEndpoint } from "./topology";
import type { JoinPlan } from "./membership";

/** Where everything lives on a host. The same on masters and workers. */
export const HOST = {
  user: "raftkv",
  optDir: "/opt/raftkv",
  memberBundle: "/opt/raftkv/raftkv.cjs",
  ctlBundle: "/opt/raftkv/raftkvctl.cjs",
  ctlWrapper: "/usr/local/bin/raftkvctl",
  configDir: "/etc/raftkv",
  certDir: "/etc/raftkv/pki",
  envFile: "/etc/raftkv/raftkv.env",
  unitName: "raftkv.service",
  unitPath: "/etc/systemd/system/raftkv.service",
  stateDir: "/var/lib/raftkv",
  dataDir: "/var/lib/raftkv/data",
  nodePath: "/usr/bin/node",
  /** Written by the data volume step on the volume itself: the member starts only where it exists. */
  volumeMarker: "/var/lib/raftkv/.raftkv-volume",
} as const;

/**
 * File names (inside HOST.certDir) of the host's client credentials, signed by the client CA: a
 * worker's certificate, or on a master the one its tools use to reach the local member.
 */
export const CLIENT_CERT_FILE = "client.crt";
export const CLIENT_KEY_FILE = "client.key";

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** The names, inside the cert dir, of the files a member needs, as the runtime expects them. */
export function memberCertFileNames(): { ca: string; peerCa: string; serverCert: string; serverKey: string; peerCert: string; peerKey: string } {
  const p = certPaths(HOST.certDir);
  return {
    ca: baseName(p.ca),
    peerCa: baseName(p.peerCa),
    serverCert: baseName(p.serverCert),
    serverKey: baseName(p.serverKey),
    peerCert: baseName(p.peerCert),
    peerKey: baseName(p.peerKey),
  };
}

export const FILE_HEADER_PREFIX = "--- raftkv-file ";
const FILE_NAME_RE = /^[a-z0-9][a-z0-9.-]*$/;

/**
 * Several files in one stdin stream: each file is a header line `--- raftkv-file <name>`
 * followed by its content. PEM text never starts a line with `---` followed by a space, so the
 * header cannot be confused with content; we check anyway.
 */
export function renderFileBundle(files: ReadonlyArray<{ name: string; content: string }>): string {
  return files
    .map(({ name, content }) => {
      if (!FILE_NAME_RE.test(name)) throw new TopologyError(`invalid bundled file name ${JSON.stringify(name)}`);
      if (content.split("\n").some((line) => line.startsWith(FILE_HEADER_PREFIX.trimEnd()))) {
        throw new TopologyError(`content of ${name} contains a line that looks like a file header`);
      }
      const body = content.endsWith("\n") ? content : `${content}\n`;
      return `${FILE_HEADER_PREFIX}${name}\n${body}`;
    })
    .join("");
}

/** Systemd treats `%` as a specifier and `$` as a variable, and splits on spaces: refuse them. */
function unitArg(arg: string): string {
  if (!/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) || arg.includes("%")) {
    throw new TopologyError(`cannot place ${JSON.stringify(arg)} on a systemd ExecStart line`);
  }
  return arg;
}

export interface MemberRuntimeOptions {
  clusterToken: string;
  /** Where the unit finds node; Debian's `nodejs` package puts it at /usr/bin/node. */
  nodePath?: string;
  /** Raft timing (cross-zone latency): --heartbeat-interval / --election-timeout, in ms. */
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
  /** --quota-backend-bytes, sized to the instance's memory (settings.ts memoryBudget). */
  quotaBackendBytes?: number;
  /** node --max-old-space-size, in MiB: the member's heap limit on this instance type. */
  heapMiB?: number;
  /** --backup-state-dir: the backup agent's state, served on the member's /metrics (when backups are on). */
  backupStateDir?: string;
}

/** The flags a member starts with: exactly what the shared plan renders for its join plan. */
export function memberFlags(join: JoinPlan, opts: MemberRuntimeOptions): string[] {
  const backup = opts.backupStateDir !== undefined ? [`--backup-state-dir=${opts.backupStateDir}`] : [];
  return [...renderMemberFlags(join.member, join.initialCluster, {
    dataDir: HOST.dataDir,
    certDir: HOST.certDir,
    clusterToken: opts.clusterToken,
    clusterState: join.clusterState,
    listenHost: "0.0.0.0",
    ...(opts.heartbeatIntervalMs !== undefined ? { heartbeatIntervalMs: opts.heartbeatIntervalMs } : {}),
    ...(opts.electionTimeoutMs !== undefined ? { electionTimeoutMs: opts.electionTimeoutMs } : {}),
    ...(opts.quotaBackendBytes !== undefined ? { quotaBackendBytes: opts.quotaBackendBytes } : {}),
  }), ...backup];
}

/**
 * The member's unit. Flags live on the ExecStart line (they are the contract with the runtime);
 * ExecReload sends SIGHUP, on which the member re-reads its certificates without a restart.
 * The state directory must be the data volume's mount: systemd orders the unit after that mount
 * (RequiresMountsFor), and the member refuses to start unless the volume's marker file is there
 * (written on the volume by the volume step), so it can never run (and bootstrap an empty
 * cluster) on the root disk after a failed mount.
 */
export function renderMemberUnit(join: JoinPlan, opts: MemberRuntimeOptions): string {
  const nodePath = opts.nodePath ?? HOST.nodePath;
  const heap = opts.heapMiB !== undefined ? [`--max-old-space-size=${opts.heapMiB}`] : [];
  const args = [nodePath, ...heap, HOST.memberBundle, ...memberFlags(join, opts)].map(unitArg);
  return [
    "[Unit]",
    `Description=raftkv member ${join.member.name}`,
    "After=network-online.target",
    "Wants=network-online.target",
    `RequiresMountsFor=${HOST.stateDir}`,
    "",
    "[Service]",
    "Type=simple",
    `User=${HOST.user}`,
    `Group=${HOST.user}`,
    // Not `mountpoint`: ReadWritePaths makes the directory a bind mount inside the unit anyway.
    `ExecStartPre=/usr/bin/test -f ${HOST.volumeMarker}`,
    `ExecStart=${args.join(" \\\n    ")}`,
    "ExecReload=/bin/kill -HUP $MAINPID",
    "Restart=on-failure",
    "RestartSec=5",
    "TimeoutStopSec=30",
    "LimitNOFILE=65536",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    `ReadWritePaths=${HOST.stateDir}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** ETCDCTL_* settings, in the form both etcdctl and raftkvctl read, for tools on a host. */
export function renderClientEnv(endpoints: readonly string[], certFile: string, keyFile: string): string {
  if (endpoints.length === 0) throw new TopologyError("a client env file needs at least one endpoint");
  for (const e of endpoints) {
    if (!/^https:\/\/[A-Za-z0-9.-]+:\d+$/.test(e)) throw new TopologyError(`invalid client endpoint ${JSON.stringify(e)}`);
  }
  return [
    `ETCDCTL_API=3`,
    `ETCDCTL_ENDPOINTS=${endpoints.join(",")}`,
    `ETCDCTL_CACERT=${HOST.certDir}/${memberCertFileNames().ca}`,
    `ETCDCTL_CERT=${HOST.certDir}/${certFile}`,
    `ETCDCTL_KEY=${HOST.certDir}/${keyFile}`,
    "",
  ].join("\n");
}

/**
 * A member's own env file: tools on a master talk to the local member as a client, with the
 * host's client certificate (never the member's peer certificate, which the client CA does not
 * sign and the client port does not accept).
 */
export function renderMemberEnv(member: MemberEndpoint): string {
  return renderClientEnv([`https://127.0.0.1:${member.clientPort}`], CLIENT_CERT_FILE, CLIENT_KEY_FILE);
}

/** `raftkvctl` on a host: the bundled CLI with the host's env file loaded. */
export function renderCtlWrapper(nodePath: string = HOST.nodePath): string {
  return ["#!/bin/sh", "set -a", `. ${HOST.envFile}`, "set +a", `exec ${nodePath} ${HOST.ctlBundle} "$@"`, ""].join("\n");
}
