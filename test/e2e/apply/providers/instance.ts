/**
 * aws:ec2/instance:Instance as a lab host:
 *  - create boots a host at the instance's private address (the one the program fixed, or the
 *    one the mock provider assigned), with its user data given to cloud-init, the public key of
 *    its KeyPair authorized for the image's login user, and its first EBS block device as a
 *    second disk; the instance id (stable across runs unless replaced) is cloud-init's
 *    instance-id, so user data runs once per instance as on EC2;
 *  - update: @pulumi/aws applies instanceType and userData changes in place by stopping and
 *    starting the instance (the same instance id: cloud-init does not run changed user data
 *    again); other in-place changes (tags, ...) touch nothing on the host;
 *  - delete terminates: the host, its tree and its disk are gone.
 */
import type { HostSpec, RecordedResource } from "../contract";
import { ProviderError, type ApplyContext, type Provider } from "../provider";

const KEY_PAIR = "aws:ec2/keyPair:KeyPair";
const STOP_START_KEYS = new Set(["instanceType", "userData", "userDataBase64"]);

export function instanceIp(r: RecordedResource): string {
  const ip = r.outputs["privateIp"] ?? r.inputs["privateIp"];
  if (typeof ip !== "string" || ip === "") throw new ProviderError(`instance ${r.name} has no private IP in its inputs or mock outputs`);
  return ip;
}

function authorizedKeys(r: RecordedResource, ctx: ApplyContext): string[] {
  const keyName = r.inputs["keyName"];
  if (keyName === undefined) return [];
  const kp = ctx
    .live()
    .find((x) => x.type === KEY_PAIR && (x.outputs["keyName"] === keyName || x.inputs["keyName"] === keyName || x.id === keyName));
  const pub = kp?.inputs["publicKey"];
  if (typeof pub !== "string") throw new ProviderError(`instance ${r.name}: no KeyPair named ${JSON.stringify(keyName)} exists`);
  return [pub];
}

function userData(r: RecordedResource): string | undefined {
  const ud = r.inputs["userData"];
  if (typeof ud === "string") return ud;
  const b64 = r.inputs["userDataBase64"];
  if (typeof b64 === "string") return Buffer.from(b64, "base64").toString("utf8");
  return undefined;
}

function dataDisk(r: RecordedResource): { sizeMiB: number } | undefined {
  const devices = r.inputs["ebsBlockDevices"];
  if (!Array.isArray(devices) || devices.length === 0) return undefined;
  const first = devices[0] as Record<string, unknown>;
  const gib = typeof first["volumeSize"] === "number" ? first["volumeSize"] : 8;
  return { sizeMiB: gib * 1024 };
}

/** Lab host names: the instance's Pulumi name, which the program keeps unique. */
export function hostName(r: RecordedResource): string {
  return r.name;
}

export const instance: Provider = {
  async create(r, ctx) {
    const disk = dataDisk(r);
    const ud = userData(r);
    const spec: HostSpec = {
      name: hostName(r),
      instanceId: r.id,
      privateIp: instanceIp(r),
      sshAuthorizedKeys: authorizedKeys(r, ctx),
      ...(ud !== undefined ? { userData: ud } : {}),
      ...(disk !== undefined ? { dataDisk: disk } : {}),
    };
    await ctx.lab.addHost(spec);
    ctx.hostBooted(r.urn);
    await ctx.syncDns();
    ctx.log(`instance ${r.name} booted at ${spec.privateIp}`);
    return r.outputs;
  },
  async update(old, next, diffKeys, ctx) {
    if (diffKeys.some((k) => STOP_START_KEYS.has(k))) {
      const host = ctx.lab.host(hostName(old));
      if (host === undefined) throw new ProviderError(`instance ${old.name} has no host to stop and start`);
      ctx.log(`instance ${old.name}: stop/start for ${diffKeys.join(", ")}`);
      await host.stop();
      await host.start();
    }
    return next.outputs;
  },
  async delete(old, ctx) {
    const host = ctx.lab.host(hostName(old));
    if (host !== undefined) await host.destroy();
    ctx.log(`instance ${old.name} terminated`);
  },
};
