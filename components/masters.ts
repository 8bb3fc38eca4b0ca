import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DEFAULT_CLIENT_PORT } from "./topology";
import type { HostPlacement } from "./addressing";
import { hostInstanceArgs, hostKey, type HostInstanceSettings } from "./hostInstance";
import type { MasterHost } from "./clusterInstall";

export interface MastersArgs extends HostInstanceSettings {
  /** Subnet ids indexed like the placements' subnetIndex. */
  subnetIds: pulumi.Input<string>[];
  dataVolumeGiB: number;
  /** The load balancer's target group for the client port. */
  targetGroupArn: pulumi.Input<string>;
  /** What every instance needs before it boots (the NAT gateway and the private routes). */
  networkReady: pulumi.Resource[];
  /** The backup role's instance profile (components/backup.ts), if any. */
  iamInstanceProfile?: pulumi.Input<string>;
  /** Keep the data volumes when their master goes or the stack is destroyed (raftkv:retainDataVolumes). */
  retainDataVolumes?: boolean;
}

/**
 * One EC2 instance per member at its planned address and zone, its data volume as a separate
 * EBS volume attached to it, registered with the client load balancer. Added one master at a
 * time (add), each after the previous master's gate (clusterInstall.ts), so that Pulumi itself
 * replaces, restarts or grows one master at a time:
 *  - the instance is replaced delete-before-replace (its private IP is fixed: a new instance
 *    at the same address cannot exist next to the old one), its volume detached after a clean
 *    stop of the old instance and attached to the new one, so the member comes back with its
 *    data and its identity;
 *  - the volume is separate so that its size grows in place (EBS ModifyVolume) instead of
 *    replacing the instance, and so that it outlives any instance.
 */
export class Masters extends pulumi.ComponentResource {
  readonly hosts: Record<string, MasterHost> = {};

  constructor(
    name: string,
    private readonly args: MastersArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("raftkv:compute:Masters", name, {}, opts);
  }

  /** The next master; `after` is the previous master's gate. */
  add(p: HostPlacement, after: pulumi.Resource | undefined): MasterHost {
    const args = this.args;
    const chained = after !== undefined ? [after] : [];
    const tags = pulumi.output(args.tags ?? {}).apply((t) => ({ ...t, Name: `${p.name}-data` }));
    const volume = new aws.ebs.Volume(
      `${p.name}-data`,
      { availabilityZone: p.availabilityZone, size: args.dataVolumeGiB, type: "gp3", encrypted: true, tags },
      // retainOnDelete: the volume is only forgotten by Pulumi (raftkv:retainDataVolumes), never deleted.
      { parent: this, dependsOn: chained, ...(args.retainDataVolumes === true ? { retainOnDelete: true } : {}) },
    );
    const key = hostKey(p.name, this);
    const instance = new aws.ec2.Instance(p.name, hostInstanceArgs(p, args.subnetIds[p.subnetIndex]!, args, key, args.iamInstanceProfile !== undefined ? { iamInstanceProfile: args.iamInstanceProfile } : {}), {
      parent: this,
      deleteBeforeReplace: true,
      dependsOn: [...args.networkReady, ...chained],
    });
    // Stopping first makes the detach clean (the member shuts down, handing leadership over);
    // a mounted volume detached from a running instance can hang "busy".
    const attachment = new aws.ec2.VolumeAttachment(
      `${p.name}-data-attachment`,
      { deviceName: "/dev/sdf", volumeId: volume.id, instanceId: instance.id, stopInstanceBeforeDetaching: true },
      { parent: this },
    );
    // Registered after the volume is attached, so deregistered before the attachment's delete stops
    // the instance (dependents are deleted first): the load balancer sends no new connection to a
    // member that is about to stop, and its clients reconnect to the others.
    new aws.lb.TargetGroupAttachment(
      `${p.name}-clients`,
      { targetGroupArn: args.targetGroupArn, targetId: instance.id, port: DEFAULT_CLIENT_PORT },
      { parent: this, dependsOn: [attachment] },
    );
    const host: MasterHost = {
      name: p.name,
      privateIp: p.privateIp,
      hostKey: key.publicKey,
      instance,
      instanceType: args.instanceType,
      volumeId: volume.id,
      volumeGiB: args.dataVolumeGiB,
      attachment,
    };
    this.hosts[p.name] = host;
    return host;
  }

  done(): void {
    this.registerOutputs({ instanceIds: Object.values(this.hosts).map((h) => h.instance.id) });
  }
}
