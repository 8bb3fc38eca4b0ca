import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DEFAULT_CLIENT_PORT } from "./topology";
import type { HostPlacement } from "./addressing";
import { hostInstanceArgs, type HostInstanceSettings } from "./hostInstance";
import { renderDataVolumeUserData } from "./hostScripts";

export interface MastersArgs extends HostInstanceSettings {
  /** One per member, in member order, from `placeMasters`. */
  placements: HostPlacement[];
  /** Subnet ids indexed like the placements' subnetIndex. */
  subnetIds: pulumi.Input<string>[];
  dataVolumeGiB: number;
  /** The load balancer's target group for the client port. */
  targetGroupArn: pulumi.Input<string>;
  /** The backup role's instance profile (components/backup.ts), if any. */
  iamInstanceProfile?: pulumi.Input<string>;
  /** Keep the data volumes when the instances go (raftkv:retainDataVolumes). */
  retainDataVolumes?: boolean;
  /** What every instance needs before it boots (the NAT gateway and the private routes). */
  networkReady: pulumi.Resource[];
}

/**
 * One EC2 instance per member at its planned address and zone, with an encrypted data volume
 * (kept separate from the root disk so instance replacement policy and disk sizing stay
 * independent), registered with the client load balancer.
 */
export class Masters extends pulumi.ComponentResource {
  readonly instances: Record<string, aws.ec2.Instance>;

  constructor(name: string, args: MastersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:compute:Masters", name, {}, opts);
    this.instances = {};
    for (const p of args.placements) {
      const instance = new aws.ec2.Instance(
        p.name,
        hostInstanceArgs(p, args.subnetIds[p.subnetIndex]!, args, {
          userData: renderDataVolumeUserData(),
          ebsBlockDevices: [{ deviceName: "/dev/sdb", volumeSize: args.dataVolumeGiB, volumeType: "gp3", encrypted: true, deleteOnTermination: args.retainDataVolumes !== true }],
          ...(args.iamInstanceProfile !== undefined ? { iamInstanceProfile: args.iamInstanceProfile } : {}),
        }),
        // The provider replaces an instance on any ebsBlockDevices change: raftkv:retainDataVolumes
        // applies to masters created from now on, never by replacing the running ones.
        { parent: this, ignoreChanges: ["ebsBlockDevices[0].deleteOnTermination"], dependsOn: args.networkReady },
      );
      new aws.lb.TargetGroupAttachment(`${p.name}-clients`, { targetGroupArn: args.targetGroupArn, targetId: instance.id, port: DEFAULT_CLIENT_PORT }, { parent: this });
      this.instances[p.name] = instance;
    }
    this.registerOutputs({ instanceIds: Object.values(this.instances).map((i) => i.id) });
  }
}
