import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { HostPlacement } from "./addressing";
import { hostInstanceArgs, hostKey } from "./hostInstance";

export interface BastionArgs {
  /** Its fixed address in the public subnet (see addressing.ts BASTION_HOST_OFFSET). */
  placement: HostPlacement;
  publicSubnetId: pulumi.Input<string>;
  /** Allows SSH only from the admin networks (network.ts). */
  securityGroupId: pulumi.Input<string>;
  amiId: pulumi.Input<string>;
  instanceType: pulumi.Input<string>;
  keyName: pulumi.Input<string>;
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * The jump host of a stack in a new VPC, where every raftkv host is private: a small instance
 * with a public address in the public subnet. Pulumi's SSH connections (and operators) go
 * through it; it runs nothing else and holds no keys (the connection forwards through it).
 */
export class Bastion extends pulumi.ComponentResource {
  /** Where Pulumi connects to: the instance's public address. */
  readonly publicIp: pulumi.Output<string>;
  readonly instance: aws.ec2.Instance;
  /** Its pinned SSH host key (hostInstance.ts): the proxy hop of every connection checks it. */
  readonly hostKey: pulumi.Output<string>;

  constructor(name: string, args: BastionArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:compute:Bastion", name, {}, opts);
    const key = hostKey(args.placement.name, this);
    this.hostKey = key.publicKey;
    this.instance = new aws.ec2.Instance(
      args.placement.name,
      hostInstanceArgs(args.placement, args.publicSubnetId, { ...args }, key, { associatePublicIpAddress: true }),
      // Fixed address in the public subnet: a replacement must delete the old instance first.
      // It keeps the image it was created with: a raftkv:amiId change replaces the masters one at
      // a time through it, and deleting it meanwhile would cut the commands tunnelled through it
      // (a backup before a replacement was). Replace it on its own (`pulumi up --replace`).
      { parent: this, deleteBeforeReplace: true, ignoreChanges: ["ami"] },
    );
    this.publicIp = this.instance.publicIp;
    this.registerOutputs({ publicIp: this.publicIp });
  }
}
