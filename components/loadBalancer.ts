import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DEFAULT_CLIENT_PORT, DEFAULT_METRICS_PORT } from "./topology";
import { LOAD_BALANCER_HOST_OFFSET, hostAddress, type SubnetPlan } from "./addressing";

export interface ClientLoadBalancerArgs {
  vpcId: pulumi.Input<string>;
  subnets: SubnetPlan[];
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * An internal network load balancer on the client port. TLS passes through untouched (members
 * terminate it and check client certificates); targets are judged by the member's plain-HTTP
 * /health. Its address in each subnet is fixed by the plan so it never takes an address a
 * master is going to use. Peers never go through it.
 */
export class ClientLoadBalancer extends pulumi.ComponentResource {
  readonly dnsName: pulumi.Output<string>;
  readonly targetGroupArn: pulumi.Output<string>;

  constructor(name: string, args: ClientLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:loadbalancer:ClientLoadBalancer", name, {}, opts);
    const parent = { parent: this };
    const nlb = new aws.lb.LoadBalancer(
      `${name}-nlb`,
      {
        internal: true,
        loadBalancerType: "network",
        enableCrossZoneLoadBalancing: true,
        securityGroups: [args.securityGroupId],
        subnetMappings: args.subnets.map((s, i) => ({
          subnetId: args.subnetIds[i]!,
          privateIpv4Address: hostAddress(s.cidr, LOAD_BALANCER_HOST_OFFSET),
        })),
        tags: args.tags ?? {},
      },
      parent,
    );
    const tg = new aws.lb.TargetGroup(
      `${name}-clients`,
      {
        vpcId: args.vpcId,
        port: DEFAULT_CLIENT_PORT,
        protocol: "TCP",
        targetType: "instance",
        deregistrationDelay: 30,
        healthCheck: {
          protocol: "HTTP",
          port: String(DEFAULT_METRICS_PORT),
          path: "/health",
          matcher: "200",
          interval: 10,
          healthyThreshold: 2,
          unhealthyThreshold: 2,
        },
        tags: args.tags ?? {},
      },
      parent,
    );
    new aws.lb.Listener(
      `${name}-clients`,
      { loadBalancerArn: nlb.arn, port: DEFAULT_CLIENT_PORT, protocol: "TCP", defaultActions: [{ type: "forward", targetGroupArn: tg.arn }] },
      parent,
    );
    this.dnsName = nlb.dnsName;
    this.targetGroupArn = tg.arn;
    this.registerOutputs({ dnsName: this.dnsName, targetGroupArn: this.targetGroupArn });
  }
}
