/**
 * The bash scripts Pulumi runs on hosts over SSH, generated as text so tests can read them,
 * run `bash -n` and `shellcheck` on them, and execute them against a temporary root.
 *
 * Every script honours RAFTKV_ROOT (default empty): all files it writes go under it, which is
 * how tests run them for real without touching the machine. Paths that a running service or
 * tool reads (unit file, env file) are rendered without it, as they are on a host.
 *
 * Pure: no Pulumi, no I/O.
 */
import { clientUrl, peerUrl, type MemberEndpoint } from "./topology";
import type { JoinPlan } from "./membership";
import {
  CLIENT_CERT_FILE,
  CLIENT_KEY_FILE,
  HOST,
  memberCertFileNames,
  renderClientEnv,
  renderCtlWrapper,
  renderMemberEnv,
  renderMemberUnit,
  type MemberRuntimeOptions,
} from "./hostFiles";
import { renderBeforeChangeFunction } from "./backupHost";

/** Whether a command runs the first time (resource created) or again (its inputs changed). */
export type Phase = "create" | "update";

/** Single-quotes a string for bash. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line the SSH connection runs: the script as one root bash invocation whose stdin
 * is the command's stdin (certificates and keys), so secrets never appear in argv.
 */
export function sshInvocation(script: string, label: string): string {
  return `sudo bash -c ${shellQuote(script)} ${shellQuote(label)}`;
}

function heredoc(marker: string, content: string): string {
  if (content.split("\n").includes(marker)) throw new Error(`heredoc marker ${marker} occurs in its content`);
  return `<<'${marker}'\n${content.endsWith("\n") ? content : content + "\n"}${marker}`;
}

const PRELUDE = `set -euo pipefail
umask 077
ROOT="\${RAFTKV_ROOT:-}"
log() { printf '[raftkv %s] %s\\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }`;

const PREPARE_FUNCTIONS = `SERVICE_USER=${HOST.user}

wait_for_cloud_init() {
  if command -v cloud-init >/dev/null 2>&1; then
    log "waiting for cloud-init to finish"
    cloud-init status --wait >/dev/null || log "cloud-init reported a problem; continuing"
  fi
}

install_node() {
  if ! command -v node >/dev/null 2>&1; then
    log "installing Node.js from the distribution"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -q
    apt-get -o DPkg::Lock::Timeout=300 install -y -q nodejs
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || fail "Node.js $major is installed; raftkv needs 20 or newer (use an image whose distribution ships it, e.g. Debian 13)"
}

ensure_user() {
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir ${HOST.stateDir} --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
}

ensure_dirs() {
  install -d -m 0755 "$ROOT${HOST.optDir}" "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system"
  install -d -m 0755 "$ROOT${HOST.configDir}"
  install -d -m 0700 "$ROOT${HOST.certDir}" "$ROOT${HOST.stateDir}" "$ROOT${HOST.dataDir}"
  chown "$SERVICE_USER:$SERVICE_USER" "$ROOT${HOST.certDir}" "$ROOT${HOST.stateDir}" "$ROOT${HOST.dataDir}"
}`;

const FILE_FUNCTIONS = `# put_file SRC DEST MODE OWNER: installs SRC atomically; succeeds only if DEST changed.
put_file() {
  local src="$1" dest="$2" mode="$3" owner="$4"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    return 1
  fi
  install -m "$mode" "$src" "$dest.new"
  chown "$owner:$owner" "$dest.new"
  mv -f "$dest.new" "$dest"
  log "wrote $dest"
}

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

# unpack_stdin NAME...: splits stdin (--- raftkv-file NAME headers) into $STAGE, then checks
# that exactly the expected files arrived, each non-empty and PEM.
unpack_stdin() {
  awk -v dir="$STAGE" '
    /^--- raftkv-file [a-z0-9][a-z0-9.-]*$/ { if (out != "") close(out); out = dir "/" $3; printf "" > out; next }
    out == "" { print "stdin does not start with a file header" > "/dev/stderr"; exit 3 }
    { print > out }
  '
  local name
  for name in "$@"; do
    [ -s "$STAGE/$name" ] || fail "stdin did not carry $name"
    grep -q -- '-----BEGIN ' "$STAGE/$name" || fail "$name is not PEM"
  done
}`;

const HEALTH_FUNCTIONS = `HEALTH_TIMEOUT="\${RAFTKV_HEALTH_TIMEOUT:-600}"

# is_healthy URL: the member's plain-HTTP /health answers 200 with {"health":"true"}.
is_healthy() {
  node -e '
    const req = require("http").get(process.argv[1], (res) => {
      let body = "";
      res.on("data", (d) => { body += d; });
      res.on("end", () => process.exit(res.statusCode === 200 && /"health"\\s*:\\s*"true"/.test(body) ? 0 : 1));
    });
    req.setTimeout(3000, () => req.destroy());
    req.on("error", () => process.exit(1));
  ' "$1"
}

wait_local_health() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT))
  log "waiting for $HEALTH_URL"
  until is_healthy "$HEALTH_URL"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$HEALTH_URL not healthy after $HEALTH_TIMEOUT s (journalctl -u ${HOST.unitName})"
    sleep 2
  done
  log "member is healthy"
}`;

function ctlFunctions(): string {
  const names = memberCertFileNames();
  return `# ctl ENDPOINTS ARGS...: the bundled raftkvctl (etcdctl syntax) authenticated with this host's client certificate.
ctl() {
  local endpoints="$1"
  shift
  node "$ROOT${HOST.ctlBundle}" --endpoints="$endpoints" \\
    --cacert="$ROOT${HOST.certDir}/${names.ca}" --cert="$ROOT${HOST.certDir}/${CLIENT_CERT_FILE}" --key="$ROOT${HOST.certDir}/${CLIENT_KEY_FILE}" "$@"
}

# member_hex_id PEER_URL < member-list-json: the member's ID in hex, or nothing.
# IDs exceed 2^53, so they are turned into strings before JSON.parse can round them.
member_hex_id() {
  node -e '
    const raw = require("fs").readFileSync(0, "utf8").replace(/"ID"\\s*:\\s*(\\d+)/g, (_, d) => "\\"ID\\":\\"" + d + "\\"");
    const m = (JSON.parse(raw).members || []).find((x) => (x.peerURLs || []).includes(process.argv[1]));
    if (m) process.stdout.write(BigInt(m.ID).toString(16));
  ' "$1"
}

# member_is_learner PEER_URL < member-list-json: exit 0 if that member is listed as a learner.
member_is_learner() {
  node -e '
    const raw = require("fs").readFileSync(0, "utf8").replace(/"ID"\\s*:\\s*(\\d+)/g, (_, d) => "\\"ID\\":\\"" + d + "\\"");
    const m = (JSON.parse(raw).members || []).find((x) => (x.peerURLs || []).includes(process.argv[1]));
    process.exit(m !== undefined && m.isLearner === true ? 0 : 1);
  ' "$1"
}

wait_cluster_health() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT))
  log "waiting for every member of the cluster to be healthy"
  until ctl "$LOCAL_ENDPOINT" endpoint health --cluster >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "cluster not healthy after $HEALTH_TIMEOUT s"
    sleep 3
  done
  log "cluster is healthy"
}`;
}

function header(title: string, revision: string | undefined): string {
  const lines = ["#!/usr/bin/env bash", `# ${title}`, "# Generated by raftkv components/hostScripts.ts; re-rendered by every pulumi up."];
  if (revision !== undefined) {
    if (!/^[A-Za-z0-9._-]+$/.test(revision)) throw new Error(`invalid revision ${JSON.stringify(revision)}`);
    lines.push(`# revision ${revision}: what this host should be running; a new value makes Pulumi run the script again.`);
  }
  return lines.join("\n");
}

function memberVars(m: MemberEndpoint): string {
  return [
    `LOCAL_ENDPOINT=https://127.0.0.1:${m.clientPort}`,
    `HEALTH_URL=http://127.0.0.1:${m.metricsPort}/health`,
  ].join("\n");
}

/** What a host trusts: every host the client CA bundle (ca.crt), masters also the peer CA's. */
export type HostRole = "master" | "worker";

/** The CA bundle files the trust script of a host of this role receives on stdin. */
export function trustFileNames(role: HostRole): string[] {
  const n = memberCertFileNames();
  return role === "master" ? [n.ca, n.peerCa] : [n.ca];
}

/**
 * First on every host, and again whenever a trusted CA bundle changes. Creating: wait for
 * cloud-init, install Node.js, create the service user and directories. Then write ca.crt (the
 * client CA bundle; possibly several CAs concatenated), on masters also peer-ca.crt (the peer CA
 * bundle), and, if a member runs here, SIGHUP it. All hosts take new bundles at once: widening
 * trust (CA rotation step 1) or dropping a CA no leaf uses any more (step 2) cannot break a
 * connection, so this needs no rolling.
 */
export function renderTrustScript(phase: Phase, role: HostRole = "master"): string {
  const files = trustFileNames(role);
  return `${header(`raftkv trust (${phase}): trusted CA bundles`, undefined)}
${PRELUDE}
${PREPARE_FUNCTIONS}
${FILE_FUNCTIONS}
${phase === "create" ? "wait_for_cloud_init\ninstall_node\nensure_user" : ""}
ensure_dirs
unpack_stdin ${files.join(" ")}
trust_changed=0
for f in ${files.join(" ")}; do
  if put_file "$STAGE/$f" "$ROOT${HOST.certDir}/$f" 0600 "$SERVICE_USER"; then trust_changed=1; fi
done
if [ "$trust_changed" = 1 ]; then
  if systemctl is-active --quiet ${HOST.unitName}; then
    log "reloading certificates (SIGHUP)"
    systemctl reload ${HOST.unitName}
  fi
fi
`;
}

export interface MemberScriptOptions extends MemberRuntimeOptions {
  join: JoinPlan;
  /** Directory the runtime bundles were copied to by the SSH user. */
  uploadDir: string;
  /** Changes whenever certificates, flags or bundles change; makes Pulumi run the update. */
  revision: string;
  /** Take a backup before adding this member to a running cluster (components/backup.ts). */
  backupBeforeChange?: boolean;
  /** Shell run before the member's first start (a restore from a snapshot, components/backupHost.ts). */
  beforeFirstStart?: string;
}

function installFiles(opts: MemberScriptOptions): string {
  const n = memberCertFileNames();
  const unit = renderMemberUnit(opts.join, opts);
  const certs = `${n.serverCert} ${n.serverKey} ${n.peerCert} ${n.peerKey} ${CLIENT_CERT_FILE} ${CLIENT_KEY_FILE}`;
  return `unpack_stdin ${certs}
certs_changed=0
restart_needed=0
for f in ${certs}; do
  if put_file "$STAGE/$f" "$ROOT${HOST.certDir}/$f" 0600 "$SERVICE_USER"; then certs_changed=1; fi
done
for f in raftkv.cjs raftkvctl.cjs; do
  [ -s "$ROOT$UPLOAD_DIR/$f" ] || fail "runtime bundle $UPLOAD_DIR/$f was not uploaded"
  if put_file "$ROOT$UPLOAD_DIR/$f" "$ROOT${HOST.optDir}/$f" 0644 root; then restart_needed=1; fi
done
cat > "$STAGE/unit" ${heredoc("RAFTKV_UNIT", unit)}
if put_file "$STAGE/unit" "$ROOT${HOST.unitPath}" 0644 root; then restart_needed=1; systemctl daemon-reload; fi
cat > "$STAGE/env" ${heredoc("RAFTKV_ENV", renderMemberEnv(opts.join.member))}
put_file "$STAGE/env" "$ROOT${HOST.envFile}" 0644 root || true
cat > "$STAGE/ctl" ${heredoc("RAFTKV_CTL", renderCtlWrapper(opts.nodePath))}
put_file "$STAGE/ctl" "$ROOT${HOST.ctlWrapper}" 0755 root || true`;
}

/**
 * A member's install. Creating: write certificates, bundles, unit and env file; a joining
 * member is first added through the members already running (unless a previous attempt did);
 * then start and wait for /health. Bootstrap members run this in parallel, each waiting for
 * the others to reach quorum. Updating: write what changed and leave a marker saying whether
 * a restart (unit or bundle changed) or a reload (certificates only) is due; the roll script
 * acts on it, one member at a time.
 */
export function renderMemberInstallScript(phase: Phase, opts: MemberScriptOptions): string {
  const { join } = opts;
  const joinEndpoints = join.joinVia.map(clientUrl).join(",");
  const joinStep =
    join.clusterState === "existing"
      ? `
if [ -z "$(ls -A "$ROOT${HOST.dataDir}")" ]; then
  existing="$(ctl ${joinEndpoints} member list -w json)" || fail "cannot list members through ${joinEndpoints}"
  if [ -n "$(printf '%s' "$existing" | member_hex_id ${peerUrl(join.member)})" ]; then
    log "${join.member.name} is already a member (an earlier attempt added it)"
  else
    ${opts.backupBeforeChange === true ? `backup_before_change ${joinEndpoints}
    ` : ""}log "adding ${join.member.name} through ${joinEndpoints}"
    ctl ${joinEndpoints} member add ${join.member.name} --peer-urls=${peerUrl(join.member)} --learner >/dev/null
  fi
fi

# A member joins as a learner: it cannot count toward a quorum before its log has caught up. The
# leader promotes it once it has (see the README); the next member joins only after that, since a
# cluster takes one learner at a time.
wait_promoted() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) list
  log "waiting for the leader to promote ${join.member.name} to voter"
  for (( ; ; )); do
    list="$(ctl ${joinEndpoints} member list -w json 2>/dev/null)" && ! printf '%s' "$list" | member_is_learner ${peerUrl(join.member)} && break
    [ "$SECONDS" -lt "$deadline" ] || fail "${join.member.name} still a learner after $HEALTH_TIMEOUT s"
    sleep 2
  done
  log "${join.member.name} is a voter"
}`
      : "";
  const tail =
    phase === "create"
      ? `${joinStep}${opts.beforeFirstStart !== undefined ? `\n${opts.beforeFirstStart}` : ""}
systemctl enable ${HOST.unitName}
systemctl restart ${HOST.unitName}
log "started (certificates changed: $certs_changed, unit or bundle changed: $restart_needed)"
wait_local_health${join.clusterState === "existing" ? "\nwait_promoted" : ""}`
      : `
if [ "$restart_needed" = 1 ]; then
  touch "$ROOT${HOST.stateDir}/restart-pending"
elif [ "$certs_changed" = 1 ]; then
  touch "$ROOT${HOST.stateDir}/reload-pending"
fi`;
  return `${header(`raftkv member ${join.member.name} install (${phase})`, opts.revision)}
${PRELUDE}
UPLOAD_DIR=${opts.uploadDir}
${memberVars(join.member)}
${PREPARE_FUNCTIONS}
${FILE_FUNCTIONS}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${opts.backupBeforeChange === true ? `${renderBeforeChangeFunction()}\n` : ""}ensure_dirs
${installFiles(opts)}
${tail}
`;
}

/**
 * The rolling step of one member, chained after the previous member's: wait until the whole
 * cluster is healthy, apply what the install left pending (restart or SIGHUP), wait for this
 * member and then the cluster to be healthy again. Created: only the health checks.
 */
export function renderMemberRollScript(phase: Phase, opts: { join: JoinPlan; revision: string; backupBeforeChange?: boolean }): string {
  const { join } = opts;
  const backup = opts.backupBeforeChange === true;
  const apply =
    phase === "update"
      ? `${backup ? `if [ -e "$ROOT${HOST.stateDir}/restart-pending" ] || [ -e "$ROOT${HOST.stateDir}/reload-pending" ]; then backup_before_change "$LOCAL_ENDPOINT"; fi\n` : ""}if [ -e "$ROOT${HOST.stateDir}/restart-pending" ]; then
  log "restarting ${join.member.name}"
  systemctl restart ${HOST.unitName}
  rm -f "$ROOT${HOST.stateDir}/restart-pending" "$ROOT${HOST.stateDir}/reload-pending"
elif [ -e "$ROOT${HOST.stateDir}/reload-pending" ]; then
  log "reloading certificates of ${join.member.name} (SIGHUP)"
  systemctl reload ${HOST.unitName}
  rm -f "$ROOT${HOST.stateDir}/reload-pending"
else
  log "nothing pending on ${join.member.name}"
fi
wait_local_health
wait_cluster_health`
      : "wait_local_health\nwait_cluster_health";
  return `${header(`raftkv member ${join.member.name} roll (${phase})`, opts.revision)}
${PRELUDE}
${memberVars(join.member)}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${backup && phase === "update" ? `${renderBeforeChangeFunction()}\n` : ""}${phase === "update" ? "wait_cluster_health\n" : ""}${apply}
`;
}

/**
 * Runs on a member's host before its instance is deleted. A member that joined is removed from
 * the cluster through the members that stay (one removal at a time: the Pulumi chain deletes
 * the highest member first); a bootstrap member is only ever deleted with the whole cluster,
 * so it is just stopped.
 */
export function renderMemberLeaveScript(opts: { join: JoinPlan; backupBeforeChange?: boolean }): string {
  const { join } = opts;
  const backup = opts.backupBeforeChange === true;
  const remove =
    join.clusterState === "existing"
      ? `STAYING=${join.joinVia.map(clientUrl).join(",")}
${backup ? 'backup_before_change "$STAYING"\n' : ""}members="$(ctl "$STAYING" member list -w json)" || fail "cannot list members through $STAYING"
id="$(printf '%s' "$members" | member_hex_id ${peerUrl(join.member)})"
if [ -n "$id" ]; then
  log "removing ${join.member.name} ($id) from the cluster"
  ctl "$STAYING" member remove "$id" >/dev/null
else
  log "${join.member.name} is not a member any more"
fi
`
      : "";
  return `${header(`raftkv member ${join.member.name} leave`, undefined)}
${PRELUDE}
${memberVars(join.member)}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${backup ? `${renderBeforeChangeFunction()}\n` : ""}${remove}${backup && join.clusterState === "new" ? `# The cluster itself goes (destroy): a last backup if it can be had, never a reason to keep the hosts.
if systemctl is-active --quiet ${HOST.unitName}; then ( backup_before_change "$LOCAL_ENDPOINT" ) || log "no last backup of ${join.member.name}; going on"; fi\n` : ""}systemctl disable --now ${HOST.unitName} || true
`;
}

export interface WorkerScriptOptions {
  /** Client endpoint URLs (the load balancer's). */
  endpoints: readonly string[];
  uploadDir: string;
  revision: string;
  nodePath?: string;
}

/**
 * A worker: the cluster's client. Its client certificate and key, raftkvctl, and an env file
 * pointing at the load balancer.
 */
export function renderWorkerInstallScript(phase: Phase, opts: WorkerScriptOptions): string {
  return `${header(`raftkv worker install (${phase})`, opts.revision)}
${PRELUDE}
UPLOAD_DIR=${opts.uploadDir}
${PREPARE_FUNCTIONS}
${FILE_FUNCTIONS}
ensure_dirs
unpack_stdin ${CLIENT_CERT_FILE} ${CLIENT_KEY_FILE}
for f in ${CLIENT_CERT_FILE} ${CLIENT_KEY_FILE}; do
  put_file "$STAGE/$f" "$ROOT${HOST.certDir}/$f" 0600 "$SERVICE_USER" || true
done
[ -s "$ROOT$UPLOAD_DIR/raftkvctl.cjs" ] || fail "runtime bundle $UPLOAD_DIR/raftkvctl.cjs was not uploaded"
put_file "$ROOT$UPLOAD_DIR/raftkvctl.cjs" "$ROOT${HOST.ctlBundle}" 0644 root || true
cat > "$STAGE/env" ${heredoc("RAFTKV_ENV", renderClientEnv(opts.endpoints, CLIENT_CERT_FILE, CLIENT_KEY_FILE))}
put_file "$STAGE/env" "$ROOT${HOST.envFile}" 0644 root || true
cat > "$STAGE/ctl" ${heredoc("RAFTKV_CTL", renderCtlWrapper(opts.nodePath))}
put_file "$STAGE/ctl" "$ROOT${HOST.ctlWrapper}" 0755 root || true
`;
}

/**
 * EC2 user data: format the data volume on first boot (only if it has no filesystem yet, so a
 * re-attached volume keeps its data) and mount it where the member keeps its state. EBS names
 * the second disk /dev/sdb in the API, /dev/xvdb on Xen and /dev/nvme1n1 on Nitro instances.
 */
export function renderDataVolumeUserData(): string {
  return `#!/bin/bash
# raftkv data volume; generated by components/hostScripts.ts.
set -euo pipefail
ROOT="\${RAFTKV_ROOT:-}"
dev=""
for candidate in /dev/nvme1n1 /dev/xvdb /dev/sdb; do
  if [ -b "$candidate" ]; then dev="$candidate"; break; fi
done
[ -n "$dev" ] || { echo "raftkv: no data volume found" >&2; exit 1; }
blkid "$dev" >/dev/null 2>&1 || mkfs.ext4 -q -L raftkv-data "$dev"
install -d -m 0700 "$ROOT${HOST.stateDir}"
grep -q 'LABEL=raftkv-data' "$ROOT/etc/fstab" || echo 'LABEL=raftkv-data ${HOST.stateDir} ext4 defaults,nofail,noatime 0 2' >> "$ROOT/etc/fstab"
mountpoint -q "$ROOT${HOST.stateDir}" || mount "$ROOT${HOST.stateDir}"
`;
}
