import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DEFAULT_CLIENT_PORT, DEFAULT_METRICS_PORT, DEFAULT_PEER_PORT } from "./topology";
import { hostAddress, publicSubnetCidr, type HostPlacement, type SubnetPlan } from "./addressing";
import type { NetworkSettings } from "./settings";

/** Fixed addresses in the public subnet, so nothing AWS picks can take the bastion's. */
export const NAT_HOST_OFFSET = 5;
export const BASTION_HOST_OFFSET = 10;

/** The bastion's place: the public subnet (in the first zone) at its fixed offset. */
export function bastionPlacement(vpcCidr: string, firstZone: string, namePrefix: string): HostPlacement {
  return { name: `${namePrefix}-bastion`, subnetIndex: -1, availabilityZone: firstZone, privateIp: hostAddress(publicSubnetCidr(vpcCidr), BASTION_HOST_OFFSET) };
}

export interface NetworkArgs {
  network: NetworkSettings;
  /** Networks operators and Pulumi's SSH connect from; never 0.0.0.0/0. */
  adminCidrs: string[];
  /** A bastion's security group, allowed to SSH to every host. */
  bastionSecurityGroupId?: pulumi.Input<string>;
  /**
   * Create the security group of a bastion in the public subnet (new VPC only): SSH to it only
   * from adminCidrs, and from it to every host.
   */
  createBastionGroup?: boolean;
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * Where the cluster lives: a VPC with one private subnet per availability zone (plus one public
 * subnet holding the NAT gateway that lets hosts reach the distribution's package mirror), or an
 * existing VPC and subnets; and the security groups. Peer traffic (2380) is allowed only between
 * masters; the client port (2379) from workers, the load balancer and the admin networks; the
 * health port (2381) from the load balancer and masters; SSH from the admin networks or bastion.
 */
export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  /** Private subnets in the order of `subnets` (one per zone). */
  readonly subnetIds: pulumi.Output<string>[];
  readonly subnets: SubnetPlan[];
  readonly mastersSecurityGroupId: pulumi.Output<string>;
  readonly workersSecurityGroupId: pulumi.Output<string>;
  readonly loadBalancerSecurityGroupId: pulumi.Output<string>;
  /** The public subnet (new VPC only): the NAT gateway and the bastion live there. */
  readonly publicSubnetId: pulumi.Output<string> | undefined;
  /** The security group of the bastion this stack creates (createBastionGroup). */
  readonly createdBastionSecurityGroupId: pulumi.Output<string> | undefined;
  /**
   * The rules Pulumi's SSH path needs (to the bastion, and from it or the admin networks to
   * the hosts): commands depend on them so they exist before the first dial and are deleted
   * only after the last command (a leave script) ran.
   */
  readonly sshRules: pulumi.Resource[];
  /**
   * Every security-group rule (SSH, peers, clients, health, egress): the install commands
   * depend on all of them, so `pulumi destroy` deletes none while a leave script still needs
   * the peer and client ports, and `pulumi up` runs none before the members can reach each other.
   */
  readonly rules: pulumi.Resource[];
  /** The hosts' way out (NAT gateway, private routes): instances boot after it, so apt-get works. */
  readonly egressReady: pulumi.Resource[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:network:Network", name, {}, opts);
    const parent = { parent: this };
    const tags = args.tags ?? {};
    const named = (n: string) => pulumi.output(tags).apply((t) => ({ ...t, Name: n }));
    const net = args.network;
    this.subnets = net.subnets.map((s) => ({ availabilityZone: s.availabilityZone, cidr: s.cidr }));

    if (args.createBastionGroup === true && net.kind !== "new") throw new Error("a bastion is created only in a new VPC");
    let publicSubnetId: pulumi.Output<string> | undefined;
    const egressReady: pulumi.Resource[] = [];
    const rules: pulumi.Resource[] = [];
    if (net.kind === "existing") {
      this.vpcId = pulumi.output(net.vpcId);
      this.subnetIds = net.subnets.map((s) => pulumi.output(s.id));
    } else {
      const vpc = new aws.ec2.Vpc(`${name}-vpc`, { cidrBlock: net.vpcCidr, enableDnsHostnames: true, enableDnsSupport: true, tags: named(`${name}-vpc`) }, parent);
      this.vpcId = vpc.id;
      const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: named(`${name}-igw`) }, parent);
      const publicSubnet = new aws.ec2.Subnet(
        `${name}-public`,
        { vpcId: vpc.id, cidrBlock: publicSubnetCidr(net.vpcCidr), availabilityZone: net.subnets[0]!.availabilityZone, tags: named(`${name}-public`) },
        parent,
      );
      const publicRoutes = new aws.ec2.RouteTable(`${name}-public`, { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }], tags: named(`${name}-public`) }, parent);
      new aws.ec2.RouteTableAssociation(`${name}-public`, { subnetId: publicSubnet.id, routeTableId: publicRoutes.id }, parent);
      publicSubnetId = publicSubnet.id;
      const eip = new aws.ec2.Eip(`${name}-nat`, { domain: "vpc", tags: named(`${name}-nat`) }, parent);
      const nat = new aws.ec2.NatGateway(`${name}-nat`, { subnetId: publicSubnet.id, allocationId: eip.id, privateIp: hostAddress(publicSubnetCidr(net.vpcCidr), NAT_HOST_OFFSET), tags: named(`${name}-nat`) }, { parent: this, dependsOn: [igw] });
      const privateRoutes = new aws.ec2.RouteTable(`${name}-private`, { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", natGatewayId: nat.id }], tags: named(`${name}-private`) }, parent);
      egressReady.push(nat, privateRoutes);
      this.subnetIds = net.subnets.map((s) => {
        const subnet = new aws.ec2.Subnet(
          `${name}-private-${s.availabilityZone}`,
          { vpcId: vpc.id, cidrBlock: s.cidr, availabilityZone: s.availabilityZone, mapPublicIpOnLaunch: false, tags: named(`${name}-private-${s.availabilityZone}`) },
          parent,
        );
        egressReady.push(new aws.ec2.RouteTableAssociation(`${name}-private-${s.availabilityZone}`, { subnetId: subnet.id, routeTableId: privateRoutes.id }, parent));
        return subnet.id;
      });
    }

    const group = (role: string, description: string) => {
      const sg = new aws.ec2.SecurityGroup(`${name}-${role}`, { vpcId: this.vpcId, description, tags: named(`${name}-${role}`) }, parent);
      // Hosts need the package mirror and the AWS APIs; egress is not what we restrict.
      rules.push(new aws.vpc.SecurityGroupEgressRule(`${name}-${role}-egress`, { securityGroupId: sg.id, ipProtocol: "-1", cidrIpv4: "0.0.0.0/0", description: "all egress" }, parent));
      return sg;
    };
    const masters = group("masters", "raftkv masters");
    const workers = group("workers", "raftkv workers");
    const lb = group("lb", "raftkv client load balancer");

    type Source = { key: string; description: string; sg?: pulumi.Input<string>; cidr?: string };
    const allow = (target: aws.ec2.SecurityGroup, targetRole: string, port: number, sources: Source[]): aws.vpc.SecurityGroupIngressRule[] =>
      sources.map((s) => {
        const rule = new aws.vpc.SecurityGroupIngressRule(
            `${name}-${targetRole}-${port}-from-${s.key}`,
            {
              securityGroupId: target.id,
              ipProtocol: "tcp",
              fromPort: port,
              toPort: port,
              description: s.description,
              ...(s.sg !== undefined ? { referencedSecurityGroupId: s.sg } : { cidrIpv4: s.cidr! }),
            },
            parent,
          );
        rules.push(rule);
        return rule;
      });
    const admins: Source[] = args.adminCidrs.map((cidr, i) => ({ key: `admin${i}`, cidr, description: `admin network ${cidr}` }));
    const ssh: Source[] = [...admins];
    if (args.bastionSecurityGroupId !== undefined) ssh.push({ key: "bastion", sg: args.bastionSecurityGroupId, description: "bastion" });
    let bastion: aws.ec2.SecurityGroup | undefined;
    const sshRules: pulumi.Resource[] = [];
    if (args.createBastionGroup === true) {
      bastion = group("bastion", "raftkv bastion: SSH from the admin networks only");
      sshRules.push(...allow(bastion, "bastion", 22, admins));
      ssh.push({ key: "created-bastion", sg: bastion.id, description: "the stack's bastion" });
    }

    allow(masters, "masters", DEFAULT_PEER_PORT, [{ key: "masters", sg: masters.id, description: "raft peers" }]);
    allow(masters, "masters", DEFAULT_CLIENT_PORT, [
      { key: "masters", sg: masters.id, description: "members and on-host tools" },
      { key: "workers", sg: workers.id, description: "workers" },
      { key: "lb", sg: lb.id, description: "load balancer" },
      ...admins,
    ]);
    allow(masters, "masters", DEFAULT_METRICS_PORT, [
      { key: "masters", sg: masters.id, description: "member health" },
      { key: "lb", sg: lb.id, description: "load balancer health check" },
    ]);
    sshRules.push(...allow(masters, "masters", 22, ssh), ...allow(workers, "workers", 22, ssh));
    allow(lb, "lb", DEFAULT_CLIENT_PORT, [{ key: "workers", sg: workers.id, description: "workers" }, ...admins]);

    this.mastersSecurityGroupId = masters.id;
    this.workersSecurityGroupId = workers.id;
    this.loadBalancerSecurityGroupId = lb.id;
    this.publicSubnetId = publicSubnetId;
    this.createdBastionSecurityGroupId = bastion?.id;
    this.sshRules = sshRules;
    this.rules = rules;
    this.egressReady = egressReady;
    this.registerOutputs({
      vpcId: this.vpcId,
      subnetIds: this.subnetIds,
      mastersSecurityGroupId: this.mastersSecurityGroupId,
      workersSecurityGroupId: this.workersSecurityGroupId,
      loadBalancerSecurityGroupId: this.loadBalancerSecurityGroupId,
    });
  }
}
