import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { RaftkvCluster } from "./components/cluster";
import { resolveSettings, type RawSettings } from "./components/settings";
import { resolveBackupSettings } from "./components/backupSettings";
import { resolveAuthSettings } from "./components/auth";

const config = new pulumi.Config("raftkv");
const region = new pulumi.Config("aws").require("region");

const raw: RawSettings = {
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
};

// A new VPC without raftkv:availabilityZones spreads over the region's own zones (pickZones):
// its regular availability zones, not local or wavelength zones (opt-in zones are left out by
// default). Not filtered on the zones' current state: a zone reported impaired during an incident
// would drop out of the list and move every host after it to another subnet at the next `up`.
const regionZones: Promise<string[] | undefined> =
  raw.availabilityZones === undefined && raw.existingVpcId === undefined
    ? aws.getAvailabilityZones({ filters: [{ name: "zone-type", values: ["availability-zone"] }] }).then((z) => z.names)
    : Promise.resolve(undefined);

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
const rawBackup = {
  backup: config.getBoolean("backup"),
  backupInterval: config.get("backupInterval"),
  backupRetentionDays: config.getNumber("backupRetentionDays"),
  backupNoncurrentDays: config.getNumber("backupNoncurrentDays"),
  backupRetainBucket: config.getBoolean("backupRetainBucket"),
  backupS3Endpoint: config.get("backupS3Endpoint"),
  backupS3AccessKeyId: config.get("backupS3AccessKeyId"),
  restoreFrom: config.get("restoreFrom"),
  retainDataVolumes: config.getBoolean("retainDataVolumes"),
};

// etcd auth: users and roles for the stack's certificate identities, then auth enable (docs/deployment.md).
const auth = resolveAuthSettings({ auth: config.getBoolean("auth"), authPrefixes: config.getObject<unknown>("authPrefixes") });

const cluster = regionZones.then((zones) => {
  const settings = resolveSettings(raw, { region, stack: pulumi.getStack(), ...(zones !== undefined ? { regionZones: zones } : {}) });
  const backup = resolveBackupSettings(rawBackup, { clusterToken: settings.clusterToken, hasSecretAccessKey: s3SecretAccessKey !== undefined });
  return new RaftkvCluster(settings.namePrefix, {
    settings,
    region,
    sshPrivateKey: config.requireSecret("sshPrivateKey"),
    memberBundlePath: bundles[0]!,
    ctlBundlePath: bundles[1]!,
    runtimeRevision: digest.digest("hex").slice(0, 16),
    backup: { settings: backup, ...(s3SecretAccessKey !== undefined ? { s3SecretAccessKey } : {}) },
    ...(auth !== undefined ? { auth } : {}),
  });
});
/** A stack output of the cluster, which exists once the zones are known. */
const out = <T>(f: (c: RaftkvCluster) => pulumi.Input<T>): pulumi.Output<T> => pulumi.output(cluster.then(f)) as pulumi.Output<T>;

export const clientEndpoint = out((c) => c.clientEndpoint);
export const members = out((c) => c.members);
export const caCertPem = out((c) => c.caCertPem);
export const adminCertPem = out((c) => c.adminCertPem);
export const adminKeyPem = out((c) => c.adminKeyPem);
export const credentialsCommand = out((c) => c.credentialsCommand);
export const etcdctlCommand = out((c) => c.etcdctlCommand);
/** The jump host for SSH to the private hosts (`ssh -J admin@<it> admin@<host>`); undefined when Pulumi connects directly. */
export const bastionAddress = out((c) => c.bastionAddress);
/** Where the scheduled backups go (s3://<it>/<clusterToken>/); undefined when raftkv:backup is false. */
export const backupBucket = out((c) => c.backupBucket);
