import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { HostPlacement } from "./addressing";
import { hostInstanceArgs, hostKey, type HostInstanceSettings } from "./hostInstance";

export interface WorkersArgs extends HostInstanceSettings {
  placements: HostPlacement[];
  subnetIds: pulumi.Input<string>[];
  /** What every instance needs before it boots (the NAT gateway and the private routes). */
  networkReady: pulumi.Resource[];
}

/** The cluster's client machines, spread over the zones like the masters. */
export class Workers extends pulumi.ComponentResource {
  readonly instances: Record<string, aws.ec2.Instance>;
  /** Each worker's pinned SSH host key (hostInstance.ts). */
  readonly hostKeys: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: WorkersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:compute:Workers", name, {}, opts);
    this.instances = {};
    for (const p of args.placements) {
      // Fixed private IP: a replacement must delete the old instance first.
      const key = hostKey(p.name, this);
      this.hostKeys[p.name] = key.publicKey;
      this.instances[p.name] = new aws.ec2.Instance(p.name, hostInstanceArgs(p, args.subnetIds[p.subnetIndex]!, args, key), {
        parent: this,
        deleteBeforeReplace: true,
        dependsOn: args.networkReady,
      });
    }
    this.registerOutputs({ instanceIds: Object.values(this.instances).map((i) => i.id) });
  }
}
