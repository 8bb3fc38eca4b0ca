/**
 * etcd auth for a deployed cluster (issue 16): every client is identified by its certificate's
 * CN (--client-cert-auth is on), so each identity becomes a password-less user once the cluster
 * is up, and auth is enabled last:
 *  - `root` plus the operators' `admin` certificate and each member's ops certificate (used by
 *    the install/roll/leave scripts and the backup agent, which takes snapshots) get the root
 *    role: membership, snapshots, alarms and defragmentation stay possible with auth on;
 *  - each worker (or tenant, from config) gets a user and a role limited to its key prefix.
 * The script is idempotent (existing users and roles are kept, grants are re-applied), so it
 * can run again whenever the plan changes. Removing a tenant or changing its prefix does not
 * revoke what was granted before: that is left to an operator (`raftkvctl role revoke-permission`).
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { createHash } from "node:crypto";
import { HOST } from "./hostFiles";
import { shellQuote, sshInvocation } from "./hostScripts";
import { sshConnection, type SshSettings } from "./clusterInstall";
import { memberName, memberOpsClientName, SUPPORTED_MASTER_COUNTS } from "./topology";

export interface AuthTenant {
  /** The user: the CN of the tenant's client certificate (a worker's name). */
  user: string;
  /** Key prefix the tenant may read and write. */
  prefix: string;
}

export interface AuthPlan {
  /** Users with the root role (root itself first). */
  rootUsers: string[];
  tenants: AuthTenant[];
}

export class AuthPlanError extends Error {
  override readonly name = "AuthPlanError";
}

/** Auth in a deployment (config `raftkv:auth` true): the tenants' prefixes, worker → prefix. */
export interface AuthSettings {
  prefixes: Record<string, string>;
}

/** The config as read (`raftkv:auth`, `raftkv:authPrefixes`), before checks. */
export interface RawAuthSettings {
  auth?: boolean | undefined;
  authPrefixes?: unknown;
}

/** Checked settings, or undefined when auth is off (the default). */
export function resolveAuthSettings(raw: RawAuthSettings): AuthSettings | undefined {
  const prefixes = raw.authPrefixes ?? {};
  if (typeof prefixes !== "object" || prefixes === null || Array.isArray(prefixes) || !Object.values(prefixes).every((v) => typeof v === "string")) {
    throw new AuthPlanError(`raftkv:authPrefixes must map worker names to key prefixes, e.g. {"raftkv-worker-1": "/app/"}; got ${JSON.stringify(raw.authPrefixes)}`);
  }
  if (raw.auth !== true) {
    if (Object.keys(prefixes).length > 0) throw new AuthPlanError("raftkv:authPrefixes is set but raftkv:auth is not true: set raftkv:auth true to create the tenants");
    return undefined;
  }
  return { prefixes: prefixes as Record<string, string> };
}

/**
 * Every member name a cluster with this name prefix can ever have (up to the largest supported
 * size): the plan gives each of their ops identities a root user from the start. A member added
 * by a scale-up runs `member add` and its health checks with its own ops certificate, against a
 * cluster whose auth is already on; its user must exist before its join, and the join must not
 * wait for a re-run of the bootstrap (which itself waits for the whole cluster). Replaced hosts
 * keep their member's name, so no other identity ever needs a user. A user without a matching
 * certificate grants nothing: certificates with these CNs are issued only to the members.
 */
export function possibleMemberNames(namePrefix: string): string[] {
  return Array.from({ length: Math.max(...SUPPORTED_MASTER_COUNTS) }, (_, i) => memberName(i, namePrefix));
}

/** The role holding a tenant's prefix grant. */
export function tenantRole(user: string): string {
  return `tenant-${user}`;
}

/**
 * Who gets what: root, `admin` and every member's ops identity are root; each worker is a tenant
 * of `/<worker>/` unless `prefixes` (config `raftkv:authPrefixes`, worker → prefix) says otherwise.
 */
export function planClusterAuth(args: { members: readonly string[]; workers: readonly string[]; prefixes?: Readonly<Record<string, string>> }): AuthPlan {
  const prefixes = args.prefixes ?? {};
  for (const w of Object.keys(prefixes)) {
    if (!args.workers.includes(w)) throw new AuthPlanError(`raftkv:authPrefixes names ${JSON.stringify(w)}, which is not a worker (${args.workers.join(", ") || "none"})`);
  }
  const tenants = args.workers.map((w) => ({ user: w, prefix: prefixes[w] ?? `/${w}/` }));
  for (const t of tenants) {
    if (t.prefix === "" || /[\n\0]/.test(t.prefix)) throw new AuthPlanError(`raftkv:authPrefixes: the prefix of ${t.user} must be non-empty and on one line`);
  }
  const rootUsers = ["root", "admin", ...args.members.map(memberOpsClientName)];
  const clash = tenants.find((t) => rootUsers.includes(t.user));
  if (clash) throw new AuthPlanError(`worker ${JSON.stringify(clash.user)} has the name of a root identity`);
  return { rootUsers, tenants };
}

/**
 * The bootstrap script, run as root on a master: `$RAFTKVCTL` (default the host's raftkvctl
 * wrapper, which reads the member's client certificate from its env file) talks to the local
 * member. Before auth is on every certificate may do this; after, the ops certificate is root.
 */
export function renderAuthBootstrapScript(plan: AuthPlan): string {
  const q = shellQuote;
  const lines = [
    "#!/bin/bash",
    "# raftkv auth bootstrap: users and roles for the cluster's certificate identities, then auth enable.",
    "set -euo pipefail",
    `RAFTKVCTL=\${RAFTKVCTL:-${HOST.ctlWrapper}}`,
    "",
    "# ok_if_exists ARGS...: raftkvctl ARGS, where an already existing user or role is success.",
    "ok_if_exists() {",
    "  local out",
    '  if out=$($RAFTKVCTL "$@" 2>&1); then return 0; fi',
    '  case "$out" in *"already exists"*) return 0 ;; esac',
    '  printf "raftkv-auth: raftkvctl %s: %s\\n" "$*" "$out" >&2',
    "  return 1",
    "}",
    "",
    "ok_if_exists role add root",
    ...plan.rootUsers.flatMap((u) => [`ok_if_exists user add ${q(u)} --no-password`, `$RAFTKVCTL user grant-role ${q(u)} root >/dev/null`]),
    ...plan.tenants.flatMap((t) => [
      `ok_if_exists user add ${q(t.user)} --no-password`,
      `ok_if_exists role add ${q(tenantRole(t.user))}`,
      `$RAFTKVCTL role grant-permission ${q(tenantRole(t.user))} readwrite ${q(t.prefix)} --prefix >/dev/null`,
      `$RAFTKVCTL user grant-role ${q(t.user)} ${q(tenantRole(t.user))} >/dev/null`,
    ]),
    "$RAFTKVCTL auth enable >/dev/null",
    'echo "raftkv-auth: auth enabled"',
    "",
  ];
  return lines.join("\n");
}

export interface ClusterAuthArgs {
  plan: AuthPlan;
  /** The master the script runs on (its raftkvctl wrapper carries the member's ops certificate). */
  host: pulumi.Input<string>;
  /** That master's SSH host key (hostInstance.ts), pinned in the connection. */
  hostKey: pulumi.Input<string>;
  ssh: SshSettings;
  /** Complete when every member is installed and healthy (ClusterInstall.ready). */
  ready: pulumi.Input<string>;
}

/** Runs the bootstrap script once the cluster is up, and again when the plan changes. */
export class ClusterAuth extends pulumi.ComponentResource {
  readonly done: pulumi.Output<string>;

  constructor(name: string, args: ClusterAuthArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:auth:ClusterAuth", name, {}, opts);
    const script = renderAuthBootstrapScript(args.plan);
    const digest = createHash("sha256").update(script).digest("hex").slice(0, 16);
    const run = new command.remote.Command(
      `${name}-bootstrap`,
      {
        connection: sshConnection(args.host, args.ssh, args.hostKey),
        create: sshInvocation(script, "raftkv-auth"),
        // Waits for the cluster; re-runs when the plan (the script) changes.
        triggers: [args.ready, digest],
      },
      { parent: this },
    );
    this.done = run.stdout;
    this.registerOutputs({ done: this.done });
  }
}
