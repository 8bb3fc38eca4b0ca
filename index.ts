import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { RaftkvCluster } from "./components/cluster";
import { resolveSettings } from "./components/settings";

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
    masterInstanceType: config.get("masterInstanceType"),
    workerInstanceType: config.get("workerInstanceType"),
    dataVolumeGiB: config.getNumber("dataVolumeGiB"),
    amiId: config.get("amiId"),
    clusterToken: config.get("clusterToken"),
    namePrefix: config.get("namePrefix"),
  },
  { region, stack: pulumi.getStack() },
);

// The bundles are built by `npm run build`; their digest rolls the members when they change.
const runtimeDir = path.resolve(config.get("runtimeDir") ?? "dist");
const bundles = ["raftkv.cjs", "raftkvctl.cjs"].map((f) => path.join(runtimeDir, f));
for (const b of bundles) {
  if (!existsSync(b)) throw new Error(`${b} does not exist: run \`npm run build\` before \`pulumi up\` (or set raftkv:runtimeDir)`);
}
const digest = createHash("sha256");
for (const b of bundles) digest.update(readFileSync(b));

const cluster = new RaftkvCluster(settings.namePrefix, {
  settings,
  region,
  sshPrivateKey: config.requireSecret("sshPrivateKey"),
  memberBundlePath: bundles[0]!,
  ctlBundlePath: bundles[1]!,
  runtimeRevision: digest.digest("hex").slice(0, 16),
});

export const clientEndpoint = cluster.clientEndpoint;
export const members = cluster.members;
export const caCertPem = cluster.caCertPem;
export const adminCertPem = cluster.adminCertPem;
export const adminKeyPem = cluster.adminKeyPem;
export const credentialsCommand = cluster.credentialsCommand;
export const etcdctlCommand = cluster.etcdctlCommand;
