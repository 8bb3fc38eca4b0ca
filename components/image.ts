import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import type { Arch } from "./instanceTypes";

/** Debian's official AWS account; Debian 13 ships Node.js 20 in its own archive. */
const DEBIAN_OWNER = "136693071363";
const DEBIAN_ARCH: Record<Arch, string> = { x86_64: "amd64", arm64: "arm64" };

export interface PinnedImagesArgs {
  /** The architectures the stack's instance types need. */
  archs: Arch[];
  /** raftkv:amiId: when set, every host uses it (settings.ts checks that one architecture is needed). */
  configured?: string;
}

/**
 * The image of every host, resolved once and then kept. A lookup of the newest Debian 13 image
 * changes whenever Debian publishes one, and the image of an instance forces its replacement:
 * with a floating lookup any `pulumi up` could replace every host. So the lookup's answer at the
 * stack's first `up` is stored in the state: a local command prints it, and `ignoreChanges` on
 * its command line keeps the first answer (and its output) from then on. The image changes only
 * by config (raftkv:amiId), and then the masters are replaced one at a time (masters.ts).
 */
export class PinnedImages extends pulumi.ComponentResource {
  private readonly ids = new Map<Arch, pulumi.Output<string>>();

  constructor(name: string, args: PinnedImagesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:compute:PinnedImages", name, {}, opts);
    for (const arch of new Set(args.archs)) {
      const newest = aws.ec2
        .getAmiOutput(
          {
            owners: [DEBIAN_OWNER],
            mostRecent: true,
            filters: [
              { name: "name", values: [`debian-13-${DEBIAN_ARCH[arch]}-*`] },
              { name: "architecture", values: [arch] },
            ],
          },
          { parent: this },
        )
        .apply((ami) => {
          if (!/^ami-[0-9a-z]+$/.test(ami.id)) throw new Error(`unexpected image id ${JSON.stringify(ami.id)}`);
          return ami.id;
        });
      const pin = new command.local.Command(
        `${name}-${arch}`,
        { create: pulumi.interpolate`printf '%s' ${newest}` },
        { parent: this, ignoreChanges: ["create"] },
      );
      this.ids.set(arch, args.configured !== undefined ? pulumi.output(args.configured) : pin.stdout);
    }
    this.registerOutputs({});
  }

  /** The image for an architecture the stack declared. */
  image(arch: Arch): pulumi.Output<string> {
    const id = this.ids.get(arch);
    if (id === undefined) throw new Error(`no image for ${arch}`);
    return id;
  }
}
