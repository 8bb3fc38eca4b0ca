/**
 * The providers as the program sees them during one run: for every custom resource, the id and
 * the outputs the real provider would hand back. A resource that exists in the prior state and
 * is not replaced keeps its id and computed outputs (the real engine reads them from its
 * checkpoint); a new or replaced one gets a fresh id and fresh computed values. Replacement is
 * decided with the same diff as the planner (diff.ts), plus the TLS early-renewal rule.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { diffInputs } from "./diff";
import * as tlsMock from "./tlsMock";
import type { RecordedResource, ResourceOptions, StackState } from "./types";

export interface ProviderOptions {
  region: string;
  /** What aws.ec2.getAmi returns (a newer image can be simulated by changing it between runs). */
  amiId: string;
  /**
   * LocallySignedCert resources (by name) issued in this run by a forger: the same issuer name
   * and authority key ID as the CA given, but signed with another key. A deliberately bad leaf
   * that only a signature check tells apart (the e2e suite's certs.e2e.ts).
   */
  forgedCerts?: string[];
}

export interface Registration {
  urn: string;
  type: string;
  name: string;
  /** Plain inputs (secrets unwrapped). */
  inputs: Record<string, unknown>;
  options: ResourceOptions;
}

export interface Created {
  id: string;
  /** Computed outputs only (inputs are echoed by the caller). */
  computed: Record<string, unknown>;
  /** Names of computed outputs that the real provider marks secret. */
  secretOutputs: string[];
}

const hex = (n: number) => randomBytes(Math.ceil(n / 2)).toString("hex").slice(0, n);

/** Pulumi autonaming: `<name>-<7 hex>`, cut to the service's limit. */
function autoname(name: string, max: number): string {
  const suffix = `-${hex(7)}`;
  return name.slice(0, max - suffix.length) + suffix;
}

const ID_PREFIX: Record<string, string> = {
  "aws:ec2/vpc:Vpc": "vpc-",
  "aws:ec2/subnet:Subnet": "subnet-",
  "aws:ec2/internetGateway:InternetGateway": "igw-",
  "aws:ec2/routeTable:RouteTable": "rtb-",
  "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc-",
  "aws:ec2/eip:Eip": "eipalloc-",
  "aws:ec2/natGateway:NatGateway": "nat-",
  "aws:ec2/securityGroup:SecurityGroup": "sg-",
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr-",
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr-",
  "aws:ec2/instance:Instance": "i-",
  "aws:ebs/volume:Volume": "vol-",
};

const ACCOUNT = "123456789012";

function ipToInt(ip: string): number {
  return ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
}
function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

export class MockProviders {
  private readonly prior: Map<string, RecordedResource>;
  /** Outputs of resources created in this run, by id (e.g. a subnet's CIDR for an instance). */
  private readonly byId = new Map<string, { type: string; outputs: Record<string, unknown> }>();
  private allocated = 0;

  constructor(
    prior: StackState | undefined,
    private readonly opts: ProviderOptions,
  ) {
    this.prior = new Map((prior?.resources ?? []).map((r) => [r.urn, r]));
    for (const r of prior?.resources ?? []) if (r.custom) this.byId.set(r.id, { type: r.type, outputs: r.outputs });
  }

  /** The prior resource this registration keeps (same physical resource), if any. */
  private kept(reg: Registration): RecordedResource | undefined {
    const old = this.prior.get(reg.urn);
    if (old === undefined || old.type !== reg.type) return undefined;
    if (diffInputs(reg.type, old.inputs, reg.inputs, reg.options).kind === "replace") return undefined;
    if ((reg.type === "tls:index/locallySignedCert:LocallySignedCert" || reg.type === "tls:index/selfSignedCert:SelfSignedCert") && tlsMock.readyForRenewal(old.outputs, reg.inputs["earlyRenewalHours"])) {
      return undefined;
    }
    return old;
  }

  async register(reg: Registration): Promise<Created> {
    const old = this.kept(reg);
    let created: Created;
    if (old !== undefined) {
      const computed: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(old.outputs)) if (!(k in old.inputs)) computed[k] = v;
      created = { id: old.id, computed, secretOutputs: SECRET_OUTPUTS[reg.type] ?? [] };
    } else {
      created = await this.create(reg);
    }
    this.byId.set(created.id, { type: reg.type, outputs: { ...reg.inputs, ...created.computed } });
    return created;
  }

  private async create(reg: Registration): Promise<Created> {
    const i = reg.inputs;
    const secretOutputs = SECRET_OUTPUTS[reg.type] ?? [];
    const prefixed = (p: string) => `${p}${hex(17)}`;
    const arn = (service: string, resource: string) => `arn:aws:${service}:${this.opts.region}:${ACCOUNT}:${resource}`;
    switch (reg.type) {
      case "tls:index/privateKey:PrivateKey": {
        const { id, ...computed } = tlsMock.privateKey(i);
        return { id: String(id), computed, secretOutputs };
      }
      case "tls:index/certRequest:CertRequest": {
        const { id, ...computed } = await tlsMock.certRequest(i);
        return { id: String(id), computed, secretOutputs };
      }
      case "tls:index/selfSignedCert:SelfSignedCert": {
        const { id, ...computed } = await tlsMock.selfSignedCert(i);
        return { id: String(id), computed, secretOutputs };
      }
      case "tls:index/locallySignedCert:LocallySignedCert": {
        const { id, ...computed } = await tlsMock.locallySignedCert(i, { forged: this.opts.forgedCerts?.includes(reg.name) === true });
        return { id: String(id), computed, secretOutputs };
      }
      case "command:remote:Command":
        // The applier replaces these with what the command really printed.
        return { id: `${reg.name}${hex(8)}`, computed: { stdout: "", stderr: "" }, secretOutputs };
      case "command:local:Command": {
        // `pulumi up` runs a local command when it registers (commandController.go Create), on
        // the machine running Pulumi, and the program sees its stdout: so does this run.
        const create = i["create"];
        if (typeof create !== "string" || create === "") return { id: `${reg.name}${hex(8)}`, computed: { stdout: "", stderr: "" }, secretOutputs };
        const r = spawnSync("/bin/sh", ["-c", create], { encoding: "utf8", timeout: 60_000 });
        if (r.status !== 0) throw new Error(`local command ${reg.name} failed (exit ${String(r.status)}): ${r.stderr}`);
        // The provider trims the trailing newline of stdout and stderr.
        return { id: `${reg.name}${hex(8)}`, computed: { stdout: r.stdout.replace(/\n$/, ""), stderr: r.stderr.replace(/\n$/, "") }, secretOutputs };
      }
      case "aws:ec2/volumeAttachment:VolumeAttachment":
        // The provider's id: "vai-" + a hash of device name, instance and volume.
        return { id: `vai-${createHash("sha1").update(`${String(i["deviceName"])}-${String(i["instanceId"])}-${String(i["volumeId"])}`).digest("hex").slice(0, 10)}`, computed: {}, secretOutputs };
      case "command:remote:CopyToRemote":
        return { id: hex(16), computed: {}, secretOutputs };
      case "aws:ec2/keyPair:KeyPair": {
        const keyName = (i["keyName"] as string | undefined) ?? autoname(reg.name, 255);
        return {
          id: keyName,
          computed: { keyName, keyPairId: prefixed("key-"), arn: arn("ec2", `key-pair/${keyName}`), fingerprint: createHash("md5").update(String(i["publicKey"])).digest("hex").replace(/(..)(?!$)/g, "$1:") },
          secretOutputs,
        };
      }
      case "aws:ec2/instance:Instance":
        return { ...this.instance(reg), secretOutputs };
      case "aws:lb/loadBalancer:LoadBalancer": {
        const name = (i["name"] as string | undefined) ?? autoname(reg.name, 32);
        const kind = i["loadBalancerType"] === "network" ? "net" : "app";
        const id = arn("elasticloadbalancing", `loadbalancer/${kind}/${name}/${hex(16)}`);
        const dnsName = `${i["internal"] === true ? "internal-" : ""}${name}-${hex(16)}.elb.${this.opts.region}.amazonaws.com`;
        return { id, computed: { name, arn: id, arnSuffix: id.split(":loadbalancer/")[1], dnsName, zoneId: "Z2IFOLAFXWLO4F" }, secretOutputs };
      }
      case "aws:lb/targetGroup:TargetGroup": {
        const name = (i["name"] as string | undefined) ?? autoname(reg.name, 32);
        const id = arn("elasticloadbalancing", `targetgroup/${name}/${hex(16)}`);
        return { id, computed: { name, arn: id, arnSuffix: id.split(":")[5] }, secretOutputs };
      }
      case "aws:lb/listener:Listener": {
        const id = `${String(i["loadBalancerArn"]).replace(":loadbalancer/", ":listener/")}/${hex(16)}`;
        return { id, computed: { arn: id }, secretOutputs };
      }
      case "aws:lb/targetGroupAttachment:TargetGroupAttachment":
        return { id: `${reg.name}-${hex(20)}`, computed: {}, secretOutputs };
      case "aws:ec2/securityGroup:SecurityGroup": {
        const id = prefixed("sg-");
        return { id, computed: { name: (i["name"] as string | undefined) ?? autoname(reg.name, 255), arn: arn("ec2", `security-group/${id}`), ownerId: ACCOUNT }, secretOutputs };
      }
      case "aws:ec2/vpc:Vpc": {
        const id = prefixed("vpc-");
        return { id, computed: { arn: arn("ec2", `vpc/${id}`), defaultSecurityGroupId: prefixed("sg-"), defaultRouteTableId: prefixed("rtb-"), mainRouteTableId: prefixed("rtb-"), ownerId: ACCOUNT }, secretOutputs };
      }
      case "aws:ec2/eip:Eip": {
        const id = prefixed("eipalloc-");
        // 203.0.113.0/24 (TEST-NET-3): a public address that is never routed anywhere.
        return { id, computed: { allocationId: id, publicIp: `203.0.113.${1 + (this.allocated++ % 250)}` }, secretOutputs };
      }
      case "aws:s3/bucket:Bucket": {
        // S3 autonames in lowercase (bucket names allow no capitals).
        const bucket = (i["bucket"] as string | undefined) ?? autoname(reg.name.toLowerCase(), 63);
        return { id: bucket, computed: { bucket, arn: `arn:aws:s3:::${bucket}`, bucketDomainName: `${bucket}.s3.amazonaws.com`, region: this.opts.region }, secretOutputs };
      }
      case "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
      case "aws:s3/bucketOwnershipControls:BucketOwnershipControls":
      case "aws:s3/bucketVersioning:BucketVersioning":
      case "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
      case "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
        // These settings are identified by their bucket.
        return { id: String(i["bucket"]), computed: {}, secretOutputs };
      case "aws:iam/role:Role": {
        const name = (i["name"] as string | undefined) ?? autoname(reg.name, 64);
        return { id: name, computed: { name, arn: `arn:aws:iam::${ACCOUNT}:role/${name}`, uniqueId: `AROA${hex(17).toUpperCase()}` }, secretOutputs };
      }
      case "aws:iam/rolePolicy:RolePolicy": {
        const name = (i["name"] as string | undefined) ?? autoname(reg.name, 128);
        return { id: `${String(i["role"])}:${name}`, computed: { name }, secretOutputs };
      }
      case "aws:iam/instanceProfile:InstanceProfile": {
        const name = (i["name"] as string | undefined) ?? autoname(reg.name, 128);
        return { id: name, computed: { name, arn: `arn:aws:iam::${ACCOUNT}:instance-profile/${name}`, uniqueId: `AIPA${hex(17).toUpperCase()}` }, secretOutputs };
      }
      default: {
        const p = ID_PREFIX[reg.type];
        if (p === undefined) throw new Error(`engine: no mock provider for ${reg.type}; add it to test/e2e/engine/mockProvider.ts`);
        const id = prefixed(p);
        return { id, computed: { arn: arn("ec2", `${p.slice(0, -1)}/${id}`) }, secretOutputs };
      }
    }
  }

  /**
   * An instance: its private IP from the inputs (or the next free one of its subnet), and, in the
   * e2e network model, a "public IP" equal to its address in the public subnet.
   */
  private instance(reg: Registration): Omit<Created, "secretOutputs"> {
    const i = reg.inputs;
    let privateIp = i["privateIp"] as string | undefined;
    if (privateIp === undefined) {
      const subnet = this.byId.get(String(i["subnetId"]));
      const cidr = subnet?.outputs["cidrBlock"];
      if (typeof cidr !== "string") throw new Error(`engine: instance ${reg.name} has no privateIp and subnet ${String(i["subnetId"])} has no known CIDR`);
      privateIp = intToIp(ipToInt(cidr.split("/")[0]!) + 200 + this.allocated++);
    }
    const publicIp = i["associatePublicIpAddress"] === true ? privateIp : "";
    const domain = this.opts.region === "us-east-1" ? "ec2.internal" : `${this.opts.region}.compute.internal`;
    const id = `i-${hex(17)}`;
    return {
      id,
      computed: {
        privateIp,
        publicIp,
        privateDns: `ip-${privateIp.replace(/\./g, "-")}.${domain}`,
        publicDns: publicIp === "" ? "" : `ec2-${publicIp.replace(/\./g, "-")}.${this.opts.region}.compute.amazonaws.com`,
        arn: `arn:aws:ec2:${this.opts.region}:${ACCOUNT}:instance/${id}`,
        instanceState: "running",
        primaryNetworkInterfaceId: `eni-${hex(17)}`,
      },
    };
  }

  /** Provider functions (invokes). Unknown ones fail: answering {} would hide a mistake. */
  call(token: string, inputs: Record<string, unknown>): Record<string, unknown> {
    switch (token) {
      case "aws:ec2/getAmi:getAmi":
        return {
          id: this.opts.amiId,
          imageId: this.opts.amiId,
          architecture: "x86_64",
          name: `debian-13-amd64-${this.opts.amiId}`,
          ownerId: Array.isArray(inputs["owners"]) ? String(inputs["owners"][0]) : ACCOUNT,
          rootDeviceName: "/dev/xvda",
          mostRecent: inputs["mostRecent"] ?? false,
          owners: inputs["owners"] ?? [],
          filters: inputs["filters"] ?? [],
        };
      case "aws:index/getAvailabilityZones:getAvailabilityZones":
        return availabilityZones(this.opts.region, inputs);
      default:
        throw new Error(`engine: no mock for invoke ${token}; add it to test/e2e/engine/mockProvider.ts`);
    }
  }
}

/**
 * @pulumi/aws 7.x getAvailabilityZones (EC2 DescribeAvailabilityZones) for a region shaped like
 * most: four regular zones listed out of name order (EC2 promises no order), one of them impaired,
 * plus an opted-in local zone and one not opted in. The call's `state` and `filters` (zone-type, opt-in-status, zone-name) are applied as
 * EC2 applies them; other filters are refused rather than ignored.
 */
function availabilityZones(region: string, inputs: Record<string, unknown>): Record<string, unknown> {
  const zones = [
    { name: `${region}b`, id: "az2", type: "availability-zone", state: "available", optIn: "opt-in-not-required" },
    { name: `${region}a`, id: "az1", type: "availability-zone", state: "available", optIn: "opt-in-not-required" },
    { name: `${region}-lz-1a`, id: "lz1-az1", type: "local-zone", state: "available", optIn: "opted-in" },
    { name: `${region}d`, id: "az4", type: "availability-zone", state: "impaired", optIn: "opt-in-not-required" },
    { name: `${region}c`, id: "az3", type: "availability-zone", state: "available", optIn: "opt-in-not-required" },
    { name: `${region}-wl1-az1`, id: "wl1-az1", type: "wavelength-zone", state: "available", optIn: "not-opted-in" },
  ];
  const field: Record<string, (z: (typeof zones)[number]) => string> = { "zone-type": (z) => z.type, "opt-in-status": (z) => z.optIn, "zone-name": (z) => z.name };
  let picked = zones.filter((z) => inputs["state"] === undefined || z.state === inputs["state"]);
  if (inputs["allAvailabilityZones"] !== true) picked = picked.filter((z) => z.optIn !== "not-opted-in");
  for (const f of (inputs["filters"] ?? []) as Array<{ name: string; values: string[] }>) {
    const get = field[f.name];
    if (get === undefined) throw new Error(`engine: getAvailabilityZones filter ${f.name} is not reproduced`);
    picked = picked.filter((z) => f.values.includes(get(z)));
  }
  return { id: region, names: picked.map((z) => z.name), zoneIds: picked.map((z) => `${region.replace(/-/g, "")}-${z.id}`), groupNames: picked.map(() => region), ...inputs };
}

/** Computed outputs the real providers mark secret. */
const SECRET_OUTPUTS: Record<string, string[]> = {
  "tls:index/privateKey:PrivateKey": ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"],
  "command:remote:Command": [],
};
