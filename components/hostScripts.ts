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
import { clientUrl, memberIdentityUri, peerUrl, type MemberEndpoint } from "./topology";
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

# A failed user-data run is an error, not a warning: the host would otherwise be installed
# without what its user data prepares. Exit 2 is cloud-init's "degraded" (warnings only).
wait_for_cloud_init() {
  if command -v cloud-init >/dev/null 2>&1; then
    log "waiting for cloud-init to finish"
    local rc=0
    cloud-init status --wait >/dev/null || rc=$?
    case "$rc" in
      0) ;;
      2) log "cloud-init finished with warnings (cloud-init status --long)" ;;
      *) fail "cloud-init failed (exit $rc): see cloud-init status --long and /var/log/cloud-init-output.log" ;;
    esac
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

# wait_until SECONDS CMD...: runs CMD every 2 s until it succeeds (0) or time runs out (1).
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 2
  done
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

# member_field PEER_URL FIELD < member-list-json: a field of that member (lists joined by ","), or nothing.
# isLearner prints true or false (etcd leaves a false one out of its JSON).
member_field() {
  node -e '
    const m = (JSON.parse(require("fs").readFileSync(0, "utf8")).members || []).find((x) => (x.peerURLs || []).includes(process.argv[1]));
    if (m) {
      const v = process.argv[2] === "isLearner" ? m.isLearner === true : m[process.argv[2]];
      process.stdout.write(Array.isArray(v) ? v.join(",") : String(v ?? ""));
    }
  ' "$1" "$2"
}

cluster_healthy() { ctl "$LOCAL_ENDPOINT" endpoint health --cluster >/dev/null 2>&1; }

wait_cluster_health() {
  log "waiting for every member of the cluster to be healthy"
  wait_until "$HEALTH_TIMEOUT" cluster_healthy || fail "cluster not healthy after $HEALTH_TIMEOUT s"
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
  /** Shell run before a bootstrap member's first start (a restore from a snapshot, components/backupHost.ts). */
  beforeFirstStart?: string;
}

const CERT_FILES = (): string => {
  const n = memberCertFileNames();
  return `${n.serverCert} ${n.serverKey} ${n.peerCert} ${n.peerKey} ${CLIENT_CERT_FILE} ${CLIENT_KEY_FILE}`;
};
/** Certificates written by an install update and activated by the roll (one member at a time). */
const STAGED_DIR = `${HOST.certDir}/staged`;
/** The certificates a roll replaced, kept until the member is healthy with the new ones. */
const PREVIOUS_DIR = `${HOST.certDir}/previous`;

/**
 * Writes certificates and bundles. Created: certificates go straight into place (nothing runs
 * yet). Updated: new certificates are only staged; the roll activates them one member at a
 * time, because the runtime takes certificate files as soon as they change, and a bad leaf
 * written on every member at once would break every member at once.
 */
function installFiles(phase: Phase, opts: MemberScriptOptions): string {
  const unit = renderMemberUnit(opts.join, opts);
  const certs = CERT_FILES();
  const certStep =
    phase === "create"
      ? `for f in ${certs}; do
  if put_file "$STAGE/$f" "$ROOT${HOST.certDir}/$f" 0600 "$SERVICE_USER"; then certs_changed=1; fi
done`
      : `install -d -m 0700 "$ROOT${STAGED_DIR}"
chown "$SERVICE_USER:$SERVICE_USER" "$ROOT${STAGED_DIR}"
for f in ${certs}; do
  if [ -f "$ROOT${HOST.certDir}/$f" ] && cmp -s "$STAGE/$f" "$ROOT${HOST.certDir}/$f"; then
    rm -f "$ROOT${STAGED_DIR}/$f"
  elif put_file "$STAGE/$f" "$ROOT${STAGED_DIR}/$f" 0600 "$SERVICE_USER"; then
    certs_changed=1
  fi
done
[ -n "$(ls -A "$ROOT${STAGED_DIR}")" ] && certs_changed=1`;
  return `unpack_stdin ${certs}
certs_changed=0
restart_needed=0
${certStep}
for f in raftkv.cjs raftkvctl.cjs; do
  [ -s "$ROOT$UPLOAD_DIR/$f" ] || fail "runtime bundle $UPLOAD_DIR/$f was not uploaded"
  if put_file "$ROOT$UPLOAD_DIR/$f" "$ROOT${HOST.optDir}/$f" 0644 root; then restart_needed=1; fi
done
cat > "$STAGE/unit" ${heredoc("RAFTKV_UNIT", unit)}
if put_file "$STAGE/unit" "$ROOT${HOST.unitPath}" 0644 root; then restart_needed=1; systemctl daemon-reload; fi
cat > "$STAGE/env" ${heredoc("RAFTKV_ENV", renderMemberEnv(opts.join.member))}
put_file "$STAGE/env" "$ROOT${HOST.envFile}" 0644 root || true
cat > "$STAGE/ctl" ${heredoc("RAFTKV_CTL", renderCtlWrapper(opts.nodePath))}
put_file "$STAGE/ctl" "$ROOT${HOST.ctlWrapper}" 0755 root || true${phase === "create" ? `
log "files in place (certificates changed: $certs_changed, unit or bundle changed: $restart_needed)"` : ""}`;
}

/** The member's state lives on the data volume; never start it on the root disk. */
const REQUIRE_VOLUME = `[ -f "$ROOT${HOST.volumeMarker}" ] || fail "${HOST.stateDir} is not the mounted data volume (no ${HOST.volumeMarker}: the volume step did not run or failed); refusing to put the member on the root disk"`;

/**
 * A bootstrap member (one of the first three) with an empty data directory: either the cluster
 * is being created (start together with the others, no waiting: they need each other for
 * quorum; the roll checks health), or the member ran before and lost its data. A member that
 * ran before is listed with its client URLs; starting it empty under the same ID would count
 * its lost log as acknowledged, so that is refused.
 */
function bootstrapGuard(join: JoinPlan): string {
  const others = join.initialCluster.filter((m) => m.name !== join.member.name).map(clientUrl);
  return `if [ -z "$(ls -A "$ROOT${HOST.dataDir}")" ]; then
  for ep in ${others.join(" ")}; do
    if listed="$(ctl "$ep" --dial-timeout=2s --command-timeout=4s member list -w json 2>/dev/null)"; then
      if [ "$(printf '%s' "$listed" | member_field ${peerUrl(join.member)} clientURLs)" != "" ]; then
        fail "${join.member.name} has run before (the cluster lists its client URLs) but its data directory is empty: starting it would count a lost log as acknowledged. Restore its data volume, or remove it with 'raftkvctl member remove' and rebuild it"
      fi
      break
    fi
  done
fi`;
}

/**
 * A joining member with an empty data directory joins learner-first: it is added as a learner
 * through the running members (unless an earlier attempt did), started, promoted once it has
 * caught up, and only then counted as a voter. If it does not become healthy or cannot be
 * promoted, it is removed again: a failed join never leaves an extra voter behind.
 */
function learnerJoin(join: JoinPlan, backupBeforeChange: boolean): string {
  const via = join.joinVia.map(clientUrl).join(",");
  const url = peerUrl(join.member);
  return `rollback() {
  log "ERROR: $1; removing the learner ${join.member.name} ($id) again"
  systemctl disable --now ${HOST.unitName} || true
  ctl ${via} member remove "$id" >/dev/null || log "could not remove $id: remove it with raftkvctl member remove $id"
  find "$ROOT${HOST.dataDir}" -mindepth 1 -delete
  fail "joining ${join.member.name} failed and was rolled back: $1"
}
joining=0
if [ -z "$(ls -A "$ROOT${HOST.dataDir}")" ]; then
  joining=1
  existing="$(ctl ${via} member list -w json)" || fail "cannot list members through ${via}"
  id="$(printf '%s' "$existing" | member_hex_id ${url})"
  if [ -n "$id" ]; then
    log "${join.member.name} is already listed ($id): an earlier attempt added it"
  else
${backupBeforeChange ? `    backup_before_change ${via}\n` : ""}    log "adding ${join.member.name} as a learner through ${via}"
    ctl ${via} member add ${join.member.name} --learner --peer-urls=${url} >/dev/null || fail "member add failed"
    id="$(ctl ${via} member list -w json | member_hex_id ${url})"
    [ -n "$id" ] || fail "${join.member.name} is not listed after member add"
  fi
fi
systemctl enable ${HOST.unitName}
systemctl restart ${HOST.unitName}
if [ "$joining" = 1 ]; then
  wait_until "$HEALTH_TIMEOUT" is_healthy "$HEALTH_URL" || rollback "not healthy after $HEALTH_TIMEOUT s (journalctl -u ${HOST.unitName})"
  log "promoting ${join.member.name} once it has caught up"
  promoted() { [ "$(ctl ${via} member list -w json | member_field ${url} isLearner)" = "false" ]; }
  try_promote() { promoted || { ctl ${via} member promote "$id" >/dev/null 2>&1 || true; promoted; }; }
  wait_until "$HEALTH_TIMEOUT" try_promote || rollback "not promoted after $HEALTH_TIMEOUT s"
  log "${join.member.name} is a voter"
fi
wait_local_health`;
}

/**
 * A member's install. Created: write certificates, bundles, unit and env file on the data
 * volume's host, then start (a bootstrap member without waiting, see bootstrapGuard; a joining
 * member learner-first, see learnerJoin). The command is replaced (triggers) whenever its
 * instance is, so a new host is installed again and its member restarts from the data volume.
 * Updated: write what changed, stage new certificates, and leave a marker saying whether a
 * restart (unit or bundle changed) or a reload (certificates only) is due; the roll acts on it,
 * one member at a time.
 */
export function renderMemberInstallScript(phase: Phase, opts: MemberScriptOptions): string {
  const { join } = opts;
  const tail =
    phase === "create"
      ? join.clusterState === "existing"
        ? learnerJoin(join, opts.backupBeforeChange === true)
        : `${bootstrapGuard(join)}${opts.beforeFirstStart !== undefined ? `\n${opts.beforeFirstStart}` : ""}
systemctl enable ${HOST.unitName}
systemctl restart ${HOST.unitName}
log "started; the roll waits for the cluster to be healthy"`
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
${opts.backupBeforeChange === true ? `${renderBeforeChangeFunction()}\n` : ""}${REQUIRE_VOLUME}
ensure_dirs
${phase === "create" ? `# A new host may have given the service user another UID than the one that wrote the volume.
chown -R "$SERVICE_USER:$SERVICE_USER" "$ROOT${HOST.dataDir}"
` : ""}${installFiles(phase, opts)}
${tail}
`;
}

/**
 * The rolling step of one member, chained after the previous member's: wait until the whole
 * cluster is healthy, activate staged certificates, apply what the install left pending
 * (restart or SIGHUP), wait for this member and then the cluster to be healthy again. If new
 * certificates leave the member or the cluster unhealthy, the previous ones are put back and the
 * roll stops here, with the cluster healthy. Created: only the health checks.
 */
export function renderMemberRollScript(phase: Phase, opts: { join: JoinPlan; revision: string; backupBeforeChange?: boolean }): string {
  const { join } = opts;
  const backup = opts.backupBeforeChange === true && phase === "update";
  const certs = CERT_FILES();
  const apply =
    phase === "update"
      ? `wait_cluster_health
${backup ? `if [ -e "$ROOT${HOST.stateDir}/restart-pending" ] || [ -e "$ROOT${HOST.stateDir}/reload-pending" ] || { [ -d "$ROOT${STAGED_DIR}" ] && [ -n "$(ls -A "$ROOT${STAGED_DIR}")" ]; }; then backup_before_change "$LOCAL_ENDPOINT"; fi\n` : ""}activated=0
if [ -d "$ROOT${STAGED_DIR}" ] && [ -n "$(ls -A "$ROOT${STAGED_DIR}")" ]; then
  if ! problems="$(check_leaves 2>&1)"; then
    printf '%s\n' "$problems" >&2
    fail "${join.member.name}: the staged certificates were refused (above); nothing was activated, the member keeps its current ones and the roll stops here"
  fi
  install -d -m 0700 "$ROOT${PREVIOUS_DIR}"
  for f in ${certs}; do
    [ -f "$ROOT${STAGED_DIR}/$f" ] || continue
    cp -p "$ROOT${HOST.certDir}/$f" "$ROOT${PREVIOUS_DIR}/$f"
    mv -f "$ROOT${STAGED_DIR}/$f" "$ROOT${HOST.certDir}/$f"
    log "activated $f"
  done
  activated=1
fi
if [ -e "$ROOT${HOST.stateDir}/restart-pending" ]; then
  log "restarting ${join.member.name}"
  systemctl restart ${HOST.unitName}
elif [ -e "$ROOT${HOST.stateDir}/reload-pending" ] || [ "$activated" = 1 ]; then
  log "reloading certificates of ${join.member.name} (SIGHUP)"
  systemctl reload ${HOST.unitName}
else
  log "nothing pending on ${join.member.name}"
fi
rm -f "$ROOT${HOST.stateDir}/restart-pending" "$ROOT${HOST.stateDir}/reload-pending"
healthy_everywhere() { is_healthy "$HEALTH_URL" && cluster_healthy; }
if ! wait_until "$HEALTH_TIMEOUT" healthy_everywhere; then
  if [ "$activated" = 1 ]; then
    for f in ${certs}; do
      [ -f "$ROOT${PREVIOUS_DIR}/$f" ] && mv -f "$ROOT${PREVIOUS_DIR}/$f" "$ROOT${HOST.certDir}/$f"
    done
    systemctl reload ${HOST.unitName} || systemctl restart ${HOST.unitName}
    wait_local_health
    wait_cluster_health
    fail "${join.member.name} was not healthy with its new certificates; the previous ones are back and the roll stops here"
  fi
  fail "${join.member.name} or the cluster not healthy after $HEALTH_TIMEOUT s (journalctl -u ${HOST.unitName})"
fi
rm -rf "$ROOT${PREVIOUS_DIR}"
log "${join.member.name} and the cluster are healthy"`
      : "wait_local_health\nwait_cluster_health";
  return `${header(`raftkv member ${join.member.name} roll (${phase})`, opts.revision)}
${PRELUDE}
${memberVars(join.member)}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${phase === "update" ? `${leafCheckFunction(join.member)}\n` : ""}${backup ? `${renderBeforeChangeFunction()}\n` : ""}${apply}
`;
}

/**
 * check_leaves: the certificates a roll is about to activate (staged ones over the active ones),
 * checked before anything changes on the member: each certificate parses, matches its key, is
 * valid now, and is signed (the signature verified, not only the issuer name) by a CA of the
 * bundle that will verify it (server and client certificates: ca.crt; the peer certificate:
 * peer-ca.crt); the server and peer certificates cover the member's address and the peer
 * certificate names this member. A reload alone cannot show a bad leaf: connections already
 * open keep their handshake, so a member can look healthy with a certificate no one accepts,
 * until its next reconnect or restart. Prints the problems, one per line; exit 1 if any.
 */
function leafCheckFunction(m: MemberEndpoint): string {
  const n = memberCertFileNames();
  const checks = [
    [n.serverCert, n.serverKey, n.ca, "address"],
    [n.peerCert, n.peerKey, n.peerCa, "address+member"],
    [CLIENT_CERT_FILE, CLIENT_KEY_FILE, n.ca, ""],
  ]
    .map((c) => c.join(":"))
    .join(" ");
  return `check_leaves() {
  node -e '
    const fs = require("fs");
    const { X509Certificate, createPrivateKey } = require("crypto");
    const [dir, staged, memberUri, host, checks] = process.argv.slice(1);
    const read = (f) => fs.readFileSync(fs.existsSync(staged + "/" + f) ? staged + "/" + f : dir + "/" + f, "utf8");
    const problems = [];
    for (const spec of checks.split(" ")) {
      const [certFile, keyFile, caFile, wants] = spec.split(":");
      let cert;
      try { cert = new X509Certificate(read(certFile)); } catch (e) { problems.push(certFile + ": not a certificate (" + e.message + ")"); continue; }
      const who = certFile + " (" + cert.subject.replace(/\\n/g, ", ") + ")";
      try {
        if (!cert.checkPrivateKey(createPrivateKey(read(keyFile)))) problems.push(keyFile + " is not the key of " + who);
      } catch (e) { problems.push(keyFile + ": not a private key (" + e.message + ")"); }
      const cas = (fs.readFileSync(dir + "/" + caFile, "utf8").match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) || []).map((p) => new X509Certificate(p));
      if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) problems.push(who + " is not signed by any CA in " + caFile + " (issuer " + cert.issuer.replace(/\\n/g, ", ") + ")");
      const now = Date.now();
      if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) <= now) problems.push(who + " is not valid now (" + cert.validFrom + " to " + cert.validTo + ")");
      if (wants.includes("address") && !(require("net").isIP(host) ? cert.checkIP(host) : cert.checkHost(host))) problems.push(who + " does not cover " + host);
      if (wants.includes("member") && !(cert.subjectAltName || "").split(", ").includes("URI:" + memberUri)) problems.push(who + " does not name this member (" + memberUri + ")");
    }
    if (problems.length > 0) { process.stderr.write(problems.join("\\n") + "\\n"); process.exit(1); }
  ' "$ROOT${HOST.certDir}" "$ROOT${STAGED_DIR}" ${shellQuote(memberIdentityUri(m.name))} ${shellQuote(m.host)} ${shellQuote(checks)}
}`;
}

/**
 * The gate after a member's host: the next master's instance, volume and host changes wait for
 * it. Created (a new host): nothing to wait for (the roll checks health; waiting here would
 * deadlock the bootstrap members, which need each other). Updated (this host was replaced,
 * stopped and started, or its volume grown): wait until the member is healthy, a voter, and the
 * whole cluster healthy, so the next master is touched only then.
 */
export function renderMemberGateScript(phase: Phase, opts: { join: JoinPlan; host: string }): string {
  const { join } = opts;
  if (!/^[A-Za-z0-9._:/ -]+$/.test(opts.host)) throw new Error(`invalid host fingerprint ${JSON.stringify(opts.host)}`);
  const url = peerUrl(join.member);
  const body =
    phase === "create"
      ? `log "${join.member.name}: new host; the roll checks its health"`
      : `wait_local_health
is_voter() { [ "$(ctl "$LOCAL_ENDPOINT" member list -w json | member_field ${url} isLearner)" = "false" ]; }
wait_until "$HEALTH_TIMEOUT" is_voter || fail "${join.member.name} is not a voter after $HEALTH_TIMEOUT s"
wait_cluster_health`;
  return `${header(`raftkv member ${join.member.name} gate (${phase})`, undefined)}
# host: ${opts.host}
${PRELUDE}
${memberVars(join.member)}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${body}
`;
}

/**
 * Removes a joined member from the cluster before its instance is deleted. It runs on a member
 * that stays (never on the host being removed, which may already be dead: the usual reason to
 * shrink), through the members that stay; one removal at a time, highest member first (the
 * Pulumi chain). Bootstrap members are never removed (they go only with the whole cluster).
 */
export function renderMemberLeaveScript(opts: { join: JoinPlan; backupBeforeChange?: boolean }): string {
  const { join } = opts;
  const backup = opts.backupBeforeChange === true;
  if (join.clusterState !== "existing") throw new Error(`${join.member.name} is a bootstrap member: it never leaves on its own`);
  return `${header(`raftkv member ${join.member.name} leave (runs on a member that stays)`, undefined)}
${PRELUDE}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${backup ? `${renderBeforeChangeFunction()}\n` : ""}STAYING=${join.joinVia.map(clientUrl).join(",")}
${backup ? 'backup_before_change "$STAYING"\n' : ""}members="$(ctl "$STAYING" member list -w json)" || fail "cannot list members through $STAYING"
id="$(printf '%s' "$members" | member_hex_id ${peerUrl(join.member)})"
if [ -n "$id" ]; then
  log "removing ${join.member.name} ($id) from the cluster"
  ctl "$STAYING" member remove "$id" >/dev/null
else
  log "${join.member.name} is not a member any more"
fi
`;
}

/**
 * The backup before a member's host goes (replaced, or the whole stack destroyed): #13's "one
 * snapshot before every replacement". It runs on another member (\`runner\`), which stays, never
 * on the host that goes (it may be dead: the usual reason to replace it). A backup that fails
 * while the cluster answers stops the change, as every pre-change backup does; a cluster that
 * no longer answers has nothing left to back up, so the change goes on. Nothing to do when the
 * host has no backup settings (raftkv:backup false).
 */
export function renderBackupBeforeReplaceScript(opts: { leaving: MemberEndpoint; runner: MemberEndpoint }): string {
  return `${header(`raftkv backup before ${opts.leaving.name}'s host goes (runs on ${opts.runner.name})`, undefined)}
${PRELUDE}
${memberVars(opts.runner)}
${HEALTH_FUNCTIONS}
${ctlFunctions()}
${renderBeforeChangeFunction()}
if ctl "$LOCAL_ENDPOINT" --dial-timeout=3s --command-timeout=5s endpoint status >/dev/null 2>&1; then
  backup_before_change "$LOCAL_ENDPOINT"
else
  log "${opts.runner.name} does not answer: no backup before ${opts.leaving.name}'s host goes"
fi
`;
}

/**
 * The data volume of a master, found by its EBS volume ID (NVMe device names do not follow
 * the attachment order, and instance-store disks must never be taken for it): wait for the
 * attachment, make a filesystem only if the volume has none (a volume carried over from a
 * replaced instance keeps its data), mount it where the member keeps its state (fstab by the
 * same ID), and grow the filesystem to the volume's size (volumes grow in place). Runs before
 * anything is written to the state directory.
 */
export function renderDataVolumeScript(phase: Phase, opts: { volumeId: string; sizeGiB: number }): string {
  if (!/^vol-[0-9a-f]+$/.test(opts.volumeId)) throw new Error(`invalid EBS volume id ${JSON.stringify(opts.volumeId)}`);
  const dev = `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${opts.volumeId.replace("-", "")}`;
  return `${header(`raftkv data volume ${opts.volumeId} (${phase})`, undefined)}
# size: ${opts.sizeGiB} GiB
${PRELUDE}
${PREPARE_FUNCTIONS}
DEV=${dev}
MNT=${HOST.stateDir}
wait_for_cloud_init
deadline=$((SECONDS + \${RAFTKV_VOLUME_TIMEOUT:-300}))
until [ -b "$ROOT$DEV" ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "volume ${opts.volumeId} is not attached as $DEV (Nitro instance types expose EBS volumes by ID)"
  sleep 2
done
mounted="$(findmnt -n -o MAJ:MIN --mountpoint "$ROOT$MNT" | tr -d ' ' || true)"
volume="$(printf '%d:%d' "0x$(stat -L -c %t "$ROOT$DEV")" "0x$(stat -L -c %T "$ROOT$DEV")")"
if [ -n "$mounted" ]; then
  [ "$mounted" = "$volume" ] || fail "$MNT is mounted from device $mounted, not from volume ${opts.volumeId} ($volume)"
else
  rc=0
  blkid -p "$ROOT$DEV" >/dev/null 2>&1 || rc=$?
  case "$rc" in
    0) log "volume ${opts.volumeId} has a filesystem; keeping its data" ;;
    2) log "formatting volume ${opts.volumeId}"; mkfs.ext4 -q -L raftkv-data "$ROOT$DEV" ;;
    *) fail "cannot probe $DEV (blkid exit $rc)" ;;
  esac
  install -d -m 0700 "$ROOT$MNT"
  grep -v "[[:space:]]\${MNT}[[:space:]]" "$ROOT/etc/fstab" > "$ROOT/etc/fstab.raftkv" || true
  echo "$DEV $MNT ext4 defaults,nofail,noatime 0 2" >> "$ROOT/etc/fstab.raftkv"
  mv -f "$ROOT/etc/fstab.raftkv" "$ROOT/etc/fstab"
  chmod 0644 "$ROOT/etc/fstab"
  mount "$ROOT$MNT"
  mountpoint -q "$ROOT$MNT" || fail "mounting $DEV on $MNT failed"
fi
grown="$(resize2fs "$ROOT$DEV" 2>&1)" || fail "growing the filesystem of ${opts.volumeId} failed: $grown"
# The member's unit starts only where this marker is: on the volume, never on the root disk.
printf '%s\n' "${opts.volumeId}" > "$ROOT${HOST.volumeMarker}"
chmod 0644 "$ROOT${HOST.volumeMarker}"
log "volume ${opts.volumeId} mounted on $MNT ($(df -h --output=size "$ROOT$MNT" | tail -1 | tr -d ' '))"
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

