/**
 * The backup, restore and retention settings of the stack (raftkv:backup*, raftkv:restoreFrom,
 * raftkv:retainDataVolumes), checked and completed with defaults before any resource is declared.
 * Pure: index.ts reads the raw values from Pulumi config and passes them here.
 *
 * Defaults, as an etcd operator expects them: scheduled backups on (every 30 min, like
 * etcd-cloud-operator), 7 days kept (never the newest), a snapshot before every change (like
 * kubespray); the bucket outlives `pulumi destroy`, the data volumes do not (the backups are what
 * is kept; raftkv:retainDataVolumes keeps the volumes too).
 */
import { parseInterval } from "./backupHost";
import { TopologyError } from "./topology";

export type RestoreSource = { kind: "s3"; url: string; bucket: string; key: string } | { kind: "file"; path: string };

export interface BackupSettings {
  /** Scheduled backups, the pre-change backup, and the bucket and role they write with. */
  enabled: boolean;
  /** systemd time span between scheduled runs ("30min"). */
  interval: string;
  /** Backups older than this are removed by the agent after each upload; the newest is always kept. */
  retentionDays: number;
  /** Days S3 keeps overwritten or deleted versions (versioned bucket) before it expires them. */
  noncurrentDays: number;
  /** Key prefix of this cluster in the bucket ("<clusterToken>/"): the only one its hosts may write. */
  prefix: string;
  /** Keep the bucket (and the backups in it) when the stack is destroyed. */
  retainBucket: boolean;
  /** An S3-compatible endpoint the hosts use instead of AWS: a compatibility and test setting. */
  s3Endpoint: string | undefined;
  /** Static credentials for that endpoint (the secret half is raftkv:backupS3SecretAccessKey). */
  s3AccessKeyId: string | undefined;
  /** Seed a new cluster from this snapshot (bootstrap members, empty data directories only). */
  restoreFrom: RestoreSource | undefined;
  /** Data volumes outlive the instances (and `pulumi destroy`) when true. */
  retainDataVolumes: boolean;
}

export interface RawBackupSettings {
  backup?: boolean;
  backupInterval?: string;
  backupRetentionDays?: number;
  backupNoncurrentDays?: number;
  backupRetainBucket?: boolean;
  backupS3Endpoint?: string;
  backupS3AccessKeyId?: string;
  restoreFrom?: string;
  retainDataVolumes?: boolean;
}

export const BACKUP_DEFAULTS = {
  backup: true,
  interval: "30min",
  retentionDays: 7,
  noncurrentDays: 7,
  retainBucket: true,
  retainDataVolumes: false,
} as const;

function wholeDays(v: number | undefined, fallback: number, key: string): number {
  const d = v ?? fallback;
  if (!Number.isInteger(d) || d < 1) throw new TopologyError(`raftkv:${key} must be a whole number of days >= 1, got ${String(d)}`);
  return d;
}

export function resolveBackupSettings(raw: RawBackupSettings, ctx: { clusterToken: string; hasSecretAccessKey: boolean }): BackupSettings {
  const enabled = raw.backup ?? BACKUP_DEFAULTS.backup;
  const interval = parseInterval(raw.backupInterval ?? BACKUP_DEFAULTS.interval);
  if (raw.backupS3Endpoint !== undefined && !/^https?:\/\/[A-Za-z0-9.-]+(:\d+)?\/?$/.test(raw.backupS3Endpoint)) {
    throw new TopologyError(`raftkv:backupS3Endpoint ${JSON.stringify(raw.backupS3Endpoint)}: expected http(s)://host[:port]`);
  }
  if ((raw.backupS3AccessKeyId !== undefined) !== ctx.hasSecretAccessKey) {
    throw new TopologyError("raftkv:backupS3AccessKeyId and the secret raftkv:backupS3SecretAccessKey are set together (static credentials for an S3-compatible endpoint)");
  }
  if (raw.backupS3AccessKeyId !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(raw.backupS3AccessKeyId)) {
    throw new TopologyError("raftkv:backupS3AccessKeyId: letters, digits, '.', '_' or '-'");
  }
  let restoreFrom: RestoreSource | undefined;
  if (raw.restoreFrom !== undefined) {
    if (raw.restoreFrom.startsWith("s3://")) {
      // The bucket-name rule S3 enforces; the agent's parser (node-runtime/backup/naming.ts) agrees.
      const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(raw.restoreFrom);
      if (m === null) throw new TopologyError(`raftkv:restoreFrom ${JSON.stringify(raw.restoreFrom)} is not an S3 URL (s3://bucket/key or s3://bucket/prefix/)`);
      restoreFrom = { kind: "s3", url: raw.restoreFrom, bucket: m[1]!, key: m[2] ?? "" };
    } else if (raw.restoreFrom.startsWith("/")) {
      restoreFrom = { kind: "file", path: raw.restoreFrom };
    } else {
      throw new TopologyError(`raftkv:restoreFrom ${JSON.stringify(raw.restoreFrom)}: use s3://bucket/key, s3://bucket/prefix/ (its newest backup) or an absolute path on the machine running Pulumi`);
    }
    if (!/^[A-Za-z0-9._:/+=@-]+$/.test(raw.restoreFrom)) throw new TopologyError(`raftkv:restoreFrom ${JSON.stringify(raw.restoreFrom)}: no spaces or quotes`);
  }
  return {
    enabled,
    interval,
    retentionDays: wholeDays(raw.backupRetentionDays, BACKUP_DEFAULTS.retentionDays, "backupRetentionDays"),
    noncurrentDays: wholeDays(raw.backupNoncurrentDays, BACKUP_DEFAULTS.noncurrentDays, "backupNoncurrentDays"),
    prefix: `${ctx.clusterToken}/`,
    retainBucket: raw.backupRetainBucket ?? BACKUP_DEFAULTS.retainBucket,
    s3Endpoint: raw.backupS3Endpoint?.replace(/\/$/, ""),
    s3AccessKeyId: raw.backupS3AccessKeyId,
    restoreFrom,
    retainDataVolumes: raw.retainDataVolumes ?? BACKUP_DEFAULTS.retainDataVolumes,
  };
}
