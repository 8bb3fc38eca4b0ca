import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import type { HostPlacement } from "./addressing";

/**
 * A host's SSH host key, made by the program (issue 11: Pulumi's SSH connections carry private
 * keys, so they must know whom they talk to): an ED25519 key in the state, its private half placed
 * on the host through user data (cloud-init's `ssh_keys`, which replaces the keys cloud-init would
 * generate) and its public half pinned in every connection to the host (`hostKey`). The key
 * outlives its instance: a replacement gets the same key, so connections need no change.
 */
export interface HostKey {
  /** `ssh-ed25519 AAAA...`, what connection.hostKey takes. */
  publicKey: pulumi.Output<string>;
  /** The #cloud-config user data placing the key; secret (it holds the private half). */
  userData: pulumi.Output<string>;
}

/** The user data of a host: only its SSH host key (everything else is installed over SSH). */
export function renderHostKeyUserData(privateKeyOpenssh: string, publicKeyOpenssh: string): string {
  const indented = privateKeyOpenssh.trimEnd().split("\n").map((l) => `    ${l}`).join("\n");
  return [
    "#cloud-config",
    "# raftkv: the SSH host key Pulumi pins (components/hostInstance.ts); no other key type is made.",
    "ssh_deletekeys: true",
    "ssh_genkeytypes: []",
    "ssh_keys:",
    "  ed25519_private: |",
    indented,
    `  ed25519_public: ${publicKeyOpenssh.trim()}`,
    "",
  ].join("\n");
}

export function hostKey(name: string, parent: pulumi.Resource): HostKey {
  const key = new tls.PrivateKey(`${name}-host-key`, { algorithm: "ED25519" }, { parent });
  return {
    publicKey: key.publicKeyOpenssh.apply((k) => k.trim()),
    userData: pulumi.secret(pulumi.all([key.privateKeyOpenssh, key.publicKeyOpenssh]).apply(([priv, pub]) => renderHostKeyUserData(priv, pub))),
  };
}

export interface HostInstanceSettings {
  amiId: pulumi.Input<string>;
  instanceType: pulumi.Input<string>;
  keyName: pulumi.Input<string>;
  securityGroupId: pulumi.Input<string>;
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * The arguments every raftkv host shares: its planned private address, IMDSv2 only (no
 * token-less metadata requests, which SSRF bugs exploit), no public address (only the bastion
 * asks for one, through `extra`), encrypted disks.
 */
export function hostInstanceArgs(
  p: HostPlacement,
  subnetId: pulumi.Input<string>,
  s: HostInstanceSettings,
  key: HostKey,
  extra: Partial<aws.ec2.InstanceArgs> = {},
): aws.ec2.InstanceArgs {
  return {
    ami: s.amiId,
    userData: key.userData,
    instanceType: s.instanceType,
    keyName: s.keyName,
    subnetId,
    privateIp: p.privateIp,
    availabilityZone: p.availabilityZone,
    associatePublicIpAddress: false,
    vpcSecurityGroupIds: [s.securityGroupId],
    metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
    rootBlockDevice: { encrypted: true, volumeType: "gp3", volumeSize: 10 },
    tags: pulumi.output(s.tags ?? {}).apply((t) => ({ ...t, Name: p.name })),
    ...extra,
  };
}
