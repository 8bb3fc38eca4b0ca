import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { HostPlacement } from "./addressing";

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
  extra: Partial<aws.ec2.InstanceArgs> = {},
): aws.ec2.InstanceArgs {
  return {
    ami: s.amiId,
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
