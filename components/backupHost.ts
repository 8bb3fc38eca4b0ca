/**
 * What scheduled backups and restores put on, and run on, a master, rendered as text so tests can
 * read them, `bash -n`/shellcheck them and run them: the backup env file, the systemd service and
 * timer of the backup agent (`raftkvctl backup run --if-leader` on every master, so exactly the
 * leader uploads), the script that installs them, the shell step every change (roll, member add
 * or remove, replacement) runs first, and the restore step a bootstrap member runs before its
 * first start when the stack is seeded from a snapshot. Pure: no Pulumi, no I/O.
 */
import { HOST } from "./hostFiles";
import type { JoinPlan } from "./membership";
import { peerUrl, renderInitialCluster, TopologyError } from "./topology";

export const BACKUP = {
  envFile: "/etc/raftkv/backup.env",
  serviceName: "raftkv-backup.service",
  timerName: "raftkv-backup.timer",
  servicePath: "/etc/systemd/system/raftkv-backup.service",
  timerPath: "/etc/systemd/system/raftkv-backup.timer",
  /** Metrics (raftkv_backup.prom, node_exporter textfile format) and counters of the scheduled runs. */
  stateDir: "/var/lib/raftkv/backup",
  workDir: "/var/lib/raftkv/backup/work",
  /** Staging of pre-change backups, which run as root from the Pulumi scripts. */
  preChangeWorkDir: "/var/lib/raftkv/backup-pre-change",
  restoreFile: "/var/lib/raftkv/restore.db",
  /** A pre-change backup is skipped when one younger than this exists: one per `pulumi up`. */
  preChangeWindowSec: 900,
} as const;

export interface BackupEnv {
  bucket: string;
  prefix: string;
  region: string;
  retentionDays: number;
  /** An S3-compatible endpoint (compatibility/test setting); AWS when undefined. */
  s3Endpoint?: string;
  /** Static credentials for an S3-compatible endpoint; on AWS the instance profile is used. */
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** Values go into a file both systemd (EnvironmentFile) and bash (`.`) read: no quoting needed, so none allowed. */
function envValue(name: string, v: string): string {
  if (!/^[A-Za-z0-9._:/+=@-]*$/.test(v)) throw new TopologyError(`${name} ${JSON.stringify(v)} cannot be written to ${BACKUP.envFile}`);
  return `${name}=${v}`;
}

export function renderBackupEnv(e: BackupEnv): string {
  const lines = [
    envValue("RAFTKV_BACKUP_BUCKET", e.bucket),
    envValue("RAFTKV_BACKUP_PREFIX", e.prefix),
    envValue("AWS_REGION", e.region),
    envValue("RAFTKV_BACKUP_RETENTION_DAYS", String(e.retentionDays)),
    envValue("RAFTKV_BACKUP_STATE_DIR", BACKUP.stateDir),
    envValue("RAFTKV_BACKUP_WORK_DIR", BACKUP.workDir),
  ];
  if (e.s3Endpoint !== undefined) lines.push(envValue("RAFTKV_BACKUP_S3_ENDPOINT", e.s3Endpoint));
  if ((e.accessKeyId === undefined) !== (e.secretAccessKey === undefined)) throw new TopologyError("an S3 access key needs its secret key and the other way round");
  if (e.accessKeyId !== undefined) lines.push(envValue("AWS_ACCESS_KEY_ID", e.accessKeyId), envValue("AWS_SECRET_ACCESS_KEY", e.secretAccessKey!));
  return lines.join("\n") + "\n";
}

/** The agent as a oneshot service: runs as the member's user with the host's client certificate. */
export function renderBackupService(nodePath: string = HOST.nodePath): string {
  return [
    "[Unit]",
    "Description=raftkv backup to S3 (uploads only while this member is the leader)",
    `After=${HOST.unitName}`,
    `ConditionPathExists=${HOST.ctlBundle}`,
    "",
    "[Service]",
    "Type=oneshot",
    `User=${HOST.user}`,
    `Group=${HOST.user}`,
    `EnvironmentFile=${HOST.envFile}`,
    `EnvironmentFile=${BACKUP.envFile}`,
    `ExecStartPre=/bin/mkdir -p ${BACKUP.workDir}`,
    `ExecStart=${nodePath} ${HOST.ctlBundle} backup run --if-leader --reason scheduled`,
    "SyslogIdentifier=raftkv-backup",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    `ReadWritePaths=${HOST.stateDir}`,
    "",
  ].join("\n");
}

/** systemd time span: "30min", "1h", "45s" (what the timer's OnUnitActiveSec takes). */
export function parseInterval(v: string): string {
  if (!/^[1-9]\d*(s|min|h)$/.test(v)) throw new TopologyError(`raftkv:backupInterval ${JSON.stringify(v)}: use a number followed by s, min or h (e.g. 30min)`);
  return v;
}

export function renderBackupTimer(interval: string): string {
  const i = parseInterval(interval);
  return [
    "[Unit]",
    "Description=raftkv scheduled backup",
    "",
    "[Timer]",
    `OnActiveSec=${i}`,
    `OnUnitActiveSec=${i}`,
    "AccuracySec=1s",
    `Unit=${BACKUP.serviceName}`,
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}

function heredoc(marker: string, content: string): string {
  return `<<'${marker}'\n${content}${marker}`;
}

const PRELUDE = `set -euo pipefail
umask 077
ROOT="\${RAFTKV_ROOT:-}"
log() { printf '[raftkv-backup %s] %s\\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }`;

/**
 * Installs (create/update) the backup env file (from stdin: it may hold credentials), the service
 * and, when scheduled backups are on, the timer. Runs before the member's install, so the env file
 * is there for a restore and for the pre-change step of a joining member.
 */
export function renderBackupInstallScript(opts: { interval: string | undefined; revision: string }): string {
  if (!/^[A-Za-z0-9._-]+$/.test(opts.revision)) throw new Error(`invalid revision ${JSON.stringify(opts.revision)}`);
  const timer =
    opts.interval === undefined
      ? `rm -f "$ROOT${BACKUP.timerPath}"
systemctl disable --now ${BACKUP.timerName} 2>/dev/null || true
systemctl daemon-reload`
      : `cat > "$ROOT${BACKUP.timerPath}.new" ${heredoc("RAFTKV_TIMER", renderBackupTimer(opts.interval))}
chmod 0644 "$ROOT${BACKUP.timerPath}.new"
mv -f "$ROOT${BACKUP.timerPath}.new" "$ROOT${BACKUP.timerPath}"
systemctl daemon-reload
systemctl enable ${BACKUP.timerName}
systemctl restart ${BACKUP.timerName}
log "scheduled backups every ${opts.interval} (uploaded by the leader)"`;
  return `#!/usr/bin/env bash
# raftkv backup agent install; generated by components/backupHost.ts.
# revision ${opts.revision}
${PRELUDE}
install -d -m 0755 "$ROOT${HOST.configDir}" "$ROOT/etc/systemd/system"
env_new="$(mktemp "$ROOT${HOST.configDir}/.backup.env.XXXXXX")"
cat > "$env_new"
grep -q '^RAFTKV_BACKUP_BUCKET=' "$env_new" || { rm -f "$env_new"; fail "stdin did not carry the backup settings"; }
chmod 0600 "$env_new"
mv -f "$env_new" "$ROOT${BACKUP.envFile}"
cat > "$ROOT${BACKUP.servicePath}.new" ${heredoc("RAFTKV_SERVICE", renderBackupService())}
chmod 0644 "$ROOT${BACKUP.servicePath}.new"
mv -f "$ROOT${BACKUP.servicePath}.new" "$ROOT${BACKUP.servicePath}"
${timer}
`;
}

export function renderBackupRemoveScript(): string {
  return `#!/usr/bin/env bash
# raftkv backup agent removal; generated by components/backupHost.ts.
${PRELUDE}
systemctl disable --now ${BACKUP.timerName} 2>/dev/null || true
rm -f "$ROOT${BACKUP.timerPath}" "$ROOT${BACKUP.servicePath}" "$ROOT${BACKUP.envFile}"
systemctl daemon-reload || true
`;
}

/**
 * Shell for the member scripts (they define log, fail and ctl): \`backup_before_change ENDPOINTS\`
 * takes one snapshot through ENDPOINTS and uploads it before the script changes the cluster,
 * unless one was taken in the last ${BACKUP.preChangeWindowSec} s (one per \`pulumi up\`, however
 * many members roll). A host without the backup env file (backups off) skips it; a failed backup
 * stops the change, as kubespray does.
 */
export function renderBeforeChangeFunction(): string {
  return `backup_before_change() {
  [ -s "$ROOT${BACKUP.envFile}" ] || return 0
  log "backup before the change (through $1)"
  # shellcheck source=/dev/null
  ( set -a; . "$ROOT${BACKUP.envFile}"; set +a
    unset RAFTKV_BACKUP_STATE_DIR
    export RAFTKV_BACKUP_WORK_DIR="$ROOT${BACKUP.preChangeWorkDir}"
    ctl "$1" backup run --reason pre-change --skip-if-newer ${BACKUP.preChangeWindowSec} ) >&2 \\
    || fail "the backup before the change failed (journalctl and the lines above say why); set raftkv:backup false to change the cluster without one"
}`;
}

/**
 * Run by a bootstrap member's install before its first start when the stack is seeded from a
 * snapshot (raftkv:restoreFrom): fetch it (S3 or the copy Pulumi uploaded), restore it into the
 * empty data directory with exactly the flags the unit starts with (`raftkv snapshot restore`:
 * new cluster and member IDs, membership from --initial-cluster), then hand it to the service
 * user. A member whose data directory is not empty (it already ran) is left alone.
 */
export function renderRestoreStep(join: JoinPlan, source: string, clusterToken: string, nodePath: string = HOST.nodePath): string {
  if (join.clusterState !== "new") throw new TopologyError(`only bootstrap members are restored from a snapshot, not ${join.member.name}`);
  if (!/^[A-Za-z0-9._:/+=@-]+$/.test(source)) throw new TopologyError(`raftkv:restoreFrom ${JSON.stringify(source)}: use an s3:// URL or a path without spaces or quotes`);
  const data = `$ROOT${HOST.dataDir}`;
  return `if [ -z "$(ls -A "${data}" 2>/dev/null)" ]; then
  log "restoring ${join.member.name} from ${source}"
  # shellcheck source=/dev/null
  ( if [ -s "$ROOT${BACKUP.envFile}" ]; then set -a; . "$ROOT${BACKUP.envFile}"; set +a; fi
    ${nodePath} "$ROOT${HOST.ctlBundle}" backup fetch ${source} "$ROOT${BACKUP.restoreFile}" ) >&2 || fail "cannot fetch ${source}"
  rm -rf "${data}"
  ${nodePath} "$ROOT${HOST.memberBundle}" snapshot restore "$ROOT${BACKUP.restoreFile}" \\
    --name=${join.member.name} --initial-cluster=${renderInitialCluster(join.initialCluster)} \\
    --initial-cluster-token=${clusterToken} --initial-advertise-peer-urls=${peerUrl(join.member)} \\
    --data-dir="${data}" >&2 || fail "restoring ${source} failed"
  chown -R ${HOST.user}:${HOST.user} "${data}"
  rm -f "$ROOT${BACKUP.restoreFile}"
else
  log "${join.member.name} already has data: not restoring ${source}"
fi`;
}
