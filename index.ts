import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { RaftkvCluster } from "./components/cluster";
import { resolveSettings } from "./components/settings";
import { resolveBackupSettings } from "./components/backupSettings";
import { resolveAuthSettings } from "./components/auth";

const config = new pulumi.Config("raftkv");
const region = new pulumi.Config("aws").require("region");

const settings = resolveSettings(
  {
    masters: config.getNumber("masters"),
    workers: config.getNumber("workers"),
    certGeneration: config.getNumber("certGeneration"),
    caGeneration: config.getNumber("caGeneration"),
    retiredCaGenerations: config.getObject<unknown>("retiredCaGenerations"),
    peerCaGeneration: config.getNumber("peerCaGeneration"),
    retiredPeerCaGenerations: config.getObject<unknown>("retiredPeerCaGenerations"),
    certValidityHours: config.getNumber("certValidityHours"),
    certEarlyRenewalHours: config.getNumber("certEarlyRenewalHours"),
    caValidityHours: config.getNumber("caValidityHours"),
    vpcCidr: config.get("vpcCidr"),
    availabilityZones: config.getObject<unknown>("availabilityZones"),
    existingVpcId: config.get("existingVpcId"),
    existingSubnets: config.getObject<unknown>("existingSubnets"),
    adminCidrs: config.getObject<unknown>("adminCidrs"),
    bastionSecurityGroupId: config.get("bastionSecurityGroupId"),
    sshUser: config.get("sshUser"),
    sshPublicKey: config.get("sshPublicKey"),
    bastionHost: config.get("bastionHost"),
    bastionUser: config.get("bastionUser"),
    bastionInstanceType: config.get("bastionInstanceType"),
    masterInstanceType: config.get("masterInstanceType"),
    workerInstanceType: config.get("workerInstanceType"),
    dataVolumeGiB: config.getNumber("dataVolumeGiB"),
    amiId: config.get("amiId"),
    masterMemoryMiB: config.getNumber("masterMemoryMiB"),
    quotaBackendBytes: config.getNumber("quotaBackendBytes"),
    heartbeatIntervalMs: config.getNumber("heartbeatIntervalMs"),
    electionTimeoutMs: config.getNumber("electionTimeoutMs"),
    clusterToken: config.get("clusterToken"),
    namePrefix: config.get("namePrefix"),
  },
  { region, stack: pulumi.getStack() },
);

// The runtime the hosts run. By default the program builds it from this checkout on every
// run (scripts/build.mjs: esbuild, deterministic, so unchanged sources give the same bytes and
// the same revision), which makes `pulumi up` work right after `npm ci`. raftkv:runtimeDir
// instead names prebuilt bundles, which are only checked. The digest of exactly the files
// shipped (the .proto definitions are inside them) rolls the members when it changes.
const configuredDir = config.get("runtimeDir");
const runtimeDir = configuredDir === undefined ? path.join(__dirname, "dist") : path.resolve(configuredDir);
if (configuredDir === undefined) {
  const build = spawnSync(process.execPath, [path.join(__dirname, "scripts", "build.mjs"), "--outdir", runtimeDir, "raftkv", "raftkvctl"], {
    cwd: __dirname,
    encoding: "utf8",
  });
  if (build.status !== 0) {
    throw new Error(`building the runtime bundles (node scripts/build.mjs) failed: ${(build.stderr || build.error?.message || `exit ${String(build.status)}`).trim()}`);
  }
}
const bundles = ["raftkv.cjs", "raftkvctl.cjs"].map((f) => path.join(runtimeDir, f));
for (const b of bundles) {
  if (!existsSync(b)) throw new Error(`${b} does not exist: raftkv:runtimeDir must hold raftkv.cjs and raftkvctl.cjs from \`npm run build\` (or unset it to build them)`);
}
const digest = createHash("sha256");
for (const b of bundles) digest.update(readFileSync(b));

// Backups, restore and what `pulumi destroy` keeps (docs/disaster-recovery.md).
const s3SecretAccessKey = config.getSecret("backupS3SecretAccessKey");
const backup = resolveBackupSettings(
  {
    backup: config.getBoolean("backup"),
    backupInterval: config.get("backupInterval"),
    backupRetentionDays: config.getNumber("backupRetentionDays"),
    backupNoncurrentDays: config.getNumber("backupNoncurrentDays"),
    backupRetainBucket: config.getBoolean("backupRetainBucket"),
    backupS3Endpoint: config.get("backupS3Endpoint"),
    backupS3AccessKeyId: config.get("backupS3AccessKeyId"),
    restoreFrom: config.get("restoreFrom"),
    retainDataVolumes: config.getBoolean("retainDataVolumes"),
  },
  { clusterToken: settings.clusterToken, hasSecretAccessKey: s3SecretAccessKey !== undefined },
);

// etcd auth: users and roles for the stack's certificate identities, then auth enable (docs/deployment.md).
const auth = resolveAuthSettings({ auth: config.getBoolean("auth"), authPrefixes: config.getObject<unknown>("authPrefixes") });

const cluster = new RaftkvCluster(settings.namePrefix, {
  settings,
  region,
  sshPrivateKey: config.requireSecret("sshPrivateKey"),
  memberBundlePath: bundles[0]!,
  ctlBundlePath: bundles[1]!,
  runtimeRevision: digest.digest("hex").slice(0, 16),
  backup: { settings: backup, ...(s3SecretAccessKey !== undefined ? { s3SecretAccessKey } : {}) },
  ...(auth !== undefined ? { auth } : {}),
});

export const clientEndpoint = cluster.clientEndpoint;
export const members = cluster.members;
export const caCertPem = cluster.caCertPem;
export const adminCertPem = cluster.adminCertPem;
export const adminKeyPem = cluster.adminKeyPem;
export const credentialsCommand = cluster.credentialsCommand;
export const etcdctlCommand = cluster.etcdctlCommand;
/** The jump host for SSH to the private hosts (`ssh -J admin@<it> admin@<host>`); undefined when Pulumi connects directly. */
export const bastionAddress = cluster.bastionAddress;
/** Where the scheduled backups go (s3://<it>/<clusterToken>/); undefined when raftkv:backup is false. */
export const backupBucket = cluster.backupBucket;
