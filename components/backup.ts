/**
 * Backups of the deployed cluster (issue 13):
 *  - BackupStorage: the S3 bucket the stack creates (versioned, encrypted by default, public access
 *    blocked, object ownership enforced, lifecycle expiring old versions) and the masters' instance
 *    role, whose policy lets them write only the cluster's prefix (and read the restore source);
 *  - clusterBackup(): what the install does per master: the backup agent's env file, service and
 *    timer (before the member's install, so a restore and a joining member's pre-change backup
 *    find them), a copy of a local restore file, and the shell the member scripts run before a
 *    change and before a restored member's first start.
 * The bucket and its settings outlive `pulumi destroy` unless raftkv:backupRetainBucket is false.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import { renderBackupEnv, renderBackupInstallScript, renderBackupRemoveScript, renderRestoreStep } from "./backupHost";
import type { BackupSettings } from "./backupSettings";
import { sshInvocation } from "./hostScripts";
import type { JoinPlan } from "./membership";
import type { InstallHost } from "./clusterInstall";

export interface BackupStorageArgs {
  settings: BackupSettings;
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** The IAM policy of the masters' role: the cluster's prefix only, plus read access to the restore source. */
export function backupPolicyDocument(bucket: string | undefined, prefix: string, restore: { bucket: string; key: string } | undefined): string {
  const statements: object[] = [];
  if (bucket !== undefined) {
    statements.push(
      { Sid: "WriteOwnPrefix", Effect: "Allow", Action: ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], Resource: `arn:aws:s3:::${bucket}/${prefix}*` },
      { Sid: "ListOwnPrefix", Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${bucket}`, Condition: { StringLike: { "s3:prefix": `${prefix}*` } } },
    );
  }
  if (restore !== undefined) {
    const under = restore.key === "" || restore.key.endsWith("/");
    statements.push({ Sid: "ReadRestoreSource", Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${restore.bucket}/${restore.key}${under ? "*" : ""}` });
    if (under) {
      statements.push({ Sid: "ListRestoreSource", Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${restore.bucket}`, Condition: { StringLike: { "s3:prefix": `${restore.key}*` } } });
    }
  }
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

export class BackupStorage extends pulumi.ComponentResource {
  /** The bucket's name; undefined when scheduled backups are off. */
  readonly bucketName: pulumi.Output<string> | undefined;
  /** The masters' instance profile; undefined when they need no S3 access. */
  readonly instanceProfileName: pulumi.Output<string> | undefined;
  /** The role's policy: whatever talks to S3 from the hosts runs after it. */
  readonly policy: aws.iam.RolePolicy | undefined;

  constructor(name: string, args: BackupStorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:backup:BackupStorage", name, {}, opts);
    const s = args.settings;
    const tags = args.tags ?? {};
    // Deleting a bucket's versioning, encryption or public-access resource suspends or removes that
    // setting: a bucket kept after destroy keeps them too.
    const kept = { parent: this, retainOnDelete: s.retainBucket };
    if (s.enabled) {
      const bucket = new aws.s3.Bucket(`${name}-bucket`, { forceDestroy: !s.retainBucket, tags }, kept);
      new aws.s3.BucketPublicAccessBlock(
        `${name}-public-access`,
        { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
        kept,
      );
      new aws.s3.BucketOwnershipControls(`${name}-ownership`, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, kept);
      new aws.s3.BucketVersioning(`${name}-versioning`, { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } }, kept);
      new aws.s3.BucketServerSideEncryptionConfiguration(
        `${name}-encryption`,
        { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }] },
        kept,
      );
      // The agent removes backups past the retention (never the newest); S3 keeps what it removed
      // (or anything overwritten) as noncurrent versions for noncurrentDays, then expires them.
      new aws.s3.BucketLifecycleConfiguration(
        `${name}-lifecycle`,
        {
          bucket: bucket.id,
          rules: [
            {
              id: "raftkv-backup-versions",
              status: "Enabled",
              filter: { prefix: s.prefix },
              noncurrentVersionExpiration: { noncurrentDays: s.noncurrentDays },
              abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
              expiration: { expiredObjectDeleteMarker: true },
            },
          ],
        },
        kept,
      );
      this.bucketName = bucket.bucket;
    }
    const restore = s.restoreFrom?.kind === "s3" ? s.restoreFrom : undefined;
    if (s.enabled || restore !== undefined) {
      const role = new aws.iam.Role(
        `${name}-role`,
        {
          assumeRolePolicy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }] }),
          tags,
        },
        { parent: this },
      );
      this.policy = new aws.iam.RolePolicy(
        `${name}-s3`,
        {
          role: role.id,
          policy: pulumi.output(this.bucketName).apply((b) => backupPolicyDocument(b, s.prefix, restore)),
        },
        { parent: this },
      );
      this.instanceProfileName = new aws.iam.InstanceProfile(`${name}-profile`, { role: role.name, tags }, { parent: this }).name;
    }
    this.registerOutputs({ bucketName: this.bucketName, instanceProfileName: this.instanceProfileName });
  }
}

/** What ClusterInstall asks of the backup side for each member (see clusterBackup). */
export interface InstallBackup {
  /**
   * Declares the member's backup resources (children of `parent`), returned for its install to
   * run after. `connection` is the install's SSH connection to a host.
   */
  declare(
    ctx: { parent: pulumi.Resource; connection(host: InstallHost): command.types.input.remote.ConnectionArgs; uploadDir: string },
    join: JoinPlan,
    host: InstallHost,
  ): pulumi.Resource[];
  /** Member scripts take a backup before they change the cluster. */
  beforeChange: boolean;
  /** Shell a bootstrap member's install runs before its first start (a restore), if any. */
  restoreStep(join: JoinPlan, uploadDir: string): string | undefined;
}

export interface ClusterBackupArgs {
  settings: BackupSettings;
  region: string;
  clusterToken: string;
  storage: BackupStorage;
  /** Secret half of raftkv:backupS3AccessKeyId. */
  s3SecretAccessKey?: pulumi.Input<string>;
}

export function clusterBackup(args: ClusterBackupArgs): InstallBackup {
  const s = args.settings;
  const restoreFileName = "raftkv-restore.db";
  const needsEnv = s.enabled || s.restoreFrom?.kind === "s3";
  return {
    beforeChange: s.enabled,
    declare(ctx, join, host) {
      const deps: pulumi.Resource[] = [];
      const after = [host.instance, ...(args.storage.policy ? [args.storage.policy] : [])];
      if (needsEnv) {
        const env = pulumi.secret(
          pulumi.all([pulumi.output(args.storage.bucketName ?? ""), pulumi.output(args.s3SecretAccessKey ?? "")]).apply(([bucket, secret]) =>
            renderBackupEnv({
              // Without scheduled backups (restore only) the agent is never run with it.
              bucket: bucket === "" ? "none" : bucket,
              prefix: s.prefix,
              region: args.region,
              retentionDays: s.retentionDays,
              ...(s.s3Endpoint !== undefined ? { s3Endpoint: s.s3Endpoint } : {}),
              ...(s.s3AccessKeyId !== undefined ? { accessKeyId: s.s3AccessKeyId, secretAccessKey: secret } : {}),
            }),
          ),
        );
        const label = `${join.member.name}-backup`;
        const script = renderBackupInstallScript({ interval: s.enabled ? s.interval : undefined, revision: `${s.enabled ? s.interval : "off"}-${s.retentionDays}` });
        deps.push(
          new command.remote.Command(
            label,
            {
              connection: ctx.connection(host),
              create: sshInvocation(script, label),
              update: sshInvocation(script, label),
              delete: sshInvocation(renderBackupRemoveScript(), label),
              stdin: env,
              // A replaced host gets its agent again.
              triggers: [host.instance.id],
              addPreviousOutputInEnv: false,
            },
            // The removal runs only while the host stays (raftkv:backup turned off): when the
            // host goes (a shrink, a replacement, destroy) its agent goes with it, and the host
            // may already be dead, the usual reason to remove it: never dial it for that.
            { parent: ctx.parent, dependsOn: after, deletedWith: host.instance },
          ),
        );
      }
      if (s.restoreFrom?.kind === "file" && join.clusterState === "new") {
        deps.push(
          new command.remote.CopyToRemote(
            `${join.member.name}-restore-upload`,
            { connection: ctx.connection(host), source: new pulumi.asset.FileAsset(s.restoreFrom.path), remotePath: `${ctx.uploadDir}/${restoreFileName}`, triggers: [host.instance.id] },
            { parent: ctx.parent, dependsOn: [host.instance] },
          ),
        );
      }
      return deps;
    },
    restoreStep(join, uploadDir) {
      if (s.restoreFrom === undefined || join.clusterState !== "new") return undefined;
      const source = s.restoreFrom.kind === "s3" ? s.restoreFrom.url : `${uploadDir}/${restoreFileName}`;
      return renderRestoreStep(join, source, args.clusterToken);
    },
  };
}
