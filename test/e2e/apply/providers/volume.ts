/**
 * aws:ebs/volume:Volume and aws:ec2/volumeAttachment:VolumeAttachment as lab volumes
 * (lab/index.ts createVolume ... detachVolume), with the lifecycle of @pulumi/aws 7.x
 * (terraform-provider-aws v6 ebs_volume.go, volume_attachment.go):
 *  - a Volume is created empty at `size` GiB; a size change is an in-place ModifyVolume (the
 *    attached host sees the larger device at once); deleting a volume still attached fails
 *    (VolumeInUse);
 *  - an attachment attaches the volume to the running instance under its by-id name; deleting
 *    it stops the instance first when `stopInstanceBeforeDetaching` (a clean shutdown), then
 *    detaches. Detaching a volume mounted on a running instance fails here (on EC2 it hangs
 *    "busy"), which is why the program asks for the stop.
 */
import type { RecordedResource } from "../contract";
import { ProviderError, type ApplyContext, type Provider } from "../provider";
import { hostName } from "./instance";

const INSTANCE = "aws:ec2/instance:Instance";

function sizeMiB(r: RecordedResource): number {
  const gib = r.inputs["size"];
  if (typeof gib !== "number" || !Number.isInteger(gib) || gib < 1) throw new ProviderError(`volume ${r.name}: size ${JSON.stringify(gib)} is not a whole number of GiB`);
  return gib * 1024;
}

function volumeLab(ctx: ApplyContext) {
  const lab = ctx.lab;
  if (lab.createVolume === undefined || lab.resizeVolume === undefined || lab.deleteVolume === undefined || lab.attachVolume === undefined || lab.detachVolume === undefined) {
    throw new ProviderError("this lab has no volumes");
  }
  return lab as Required<typeof lab>;
}

export const volume: Provider = {
  async create(r, ctx) {
    await volumeLab(ctx).createVolume(r.id, sizeMiB(r));
    ctx.log(`volume ${r.name} (${r.id}) created, ${sizeMiB(r)} MiB`);
    return r.outputs;
  },
  async update(old, next, diffKeys, ctx) {
    if (diffKeys.includes("size")) {
      await volumeLab(ctx).resizeVolume(old.id, sizeMiB(next));
      ctx.log(`volume ${next.name} (${old.id}) grown to ${sizeMiB(next)} MiB in place`);
    }
    return next.outputs;
  },
  async delete(old, ctx) {
    await volumeLab(ctx).deleteVolume(old.id);
    ctx.log(`volume ${old.name} (${old.id}) deleted`);
  },
};

function instanceHost(instanceId: unknown, ctx: ApplyContext): string | undefined {
  const inst = ctx.live().find((x) => x.type === INSTANCE && x.id === instanceId);
  return inst === undefined ? undefined : hostName(inst);
}

export const volumeAttachment: Provider = {
  async create(r, ctx) {
    const host = instanceHost(r.inputs["instanceId"], ctx);
    if (host === undefined) throw new ProviderError(`attachment ${r.name}: no instance ${String(r.inputs["instanceId"])}`);
    await volumeLab(ctx).attachVolume(String(r.inputs["volumeId"]), host);
    ctx.log(`volume ${String(r.inputs["volumeId"])} attached to ${host}`);
    return r.outputs;
  },
  async update(_old, next) {
    return next.outputs;
  },
  async delete(old, ctx) {
    const host = instanceHost(old.inputs["instanceId"], ctx);
    const volumeId = String(old.inputs["volumeId"]);
    if (host === undefined) return; // the instance is gone: terminating it detached the volume
    if (old.inputs["stopInstanceBeforeDetaching"] === true) {
      ctx.log(`stopping ${host} before detaching ${volumeId}`);
      await ctx.lab.host(host)?.stop();
    }
    await volumeLab(ctx).detachVolume(volumeId, host);
    ctx.log(`volume ${volumeId} detached from ${host}`);
  },
};
