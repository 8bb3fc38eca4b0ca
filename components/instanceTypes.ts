/**
 * What the program must know about an EC2 instance type before it exists: its CPU architecture
 * (which image to boot: the bundles are plain JavaScript and run on either, Node.js comes from
 * the image's own archive) and its memory (what a member may use of it). Pure.
 */
import { TopologyError } from "./topology";

export type Arch = "x86_64" | "arm64";

const TYPE_RE = /^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9]+)$/;

/**
 * Graviton types carry a "g" in the attributes after the generation (t4g, m7g, c6gn, r6gd,
 * im4gn, is4gen, x2gd; g5g is a GPU type on Graviton), plus the first-generation a1. Everything
 * else EC2 sells as a general-purpose Linux host is x86_64 (g4dn: "dn" has no g).
 */
export function archOf(instanceType: string): Arch {
  const m = TYPE_RE.exec(instanceType);
  if (!m) throw new TopologyError(`${JSON.stringify(instanceType)} is not an EC2 instance type (family+generation.size, e.g. t3.small)`);
  if (m[1] === "a" && m[2] === "1") return "arm64";
  return m[3]!.replace(/-.*$/, "").includes("g") ? "arm64" : "x86_64";
}

/** Burstable sizes, GiB (t2/t3/t3a/t4g share them). */
const BURSTABLE_GIB: Record<string, number> = { nano: 0.5, micro: 1, small: 2, medium: 4, large: 8, xlarge: 16, "2xlarge": 32 };
/** GiB per vCPU of the families whose memory follows their size. */
const GIB_PER_VCPU: Record<string, number> = { m: 4, c: 2, r: 8 };

/** The memory of an instance type in MiB, or undefined when this table does not know it. */
export function memoryMiB(instanceType: string): number | undefined {
  const m = TYPE_RE.exec(instanceType);
  if (!m) return undefined;
  const [, family, , , size] = m;
  if (family === "t") {
    const gib = BURSTABLE_GIB[size!];
    return gib === undefined ? undefined : gib * 1024;
  }
  const perVcpu = GIB_PER_VCPU[family!];
  if (perVcpu === undefined) return undefined;
  const vcpus = size === "large" ? 2 : size === "xlarge" ? 4 : /^\d+xlarge$/.test(size!) ? 4 * Number.parseInt(size!, 10) : undefined;
  return vcpus === undefined ? undefined : vcpus * perVcpu * 1024;
}

export interface MemberBudget {
  /** node --max-old-space-size. */
  heapMiB: number;
  /** --quota-backend-bytes: the store's size limit, which the heap must hold ~1.5 times. */
  quotaBackendBytes: number;
}

const MIB = 1024 * 1024;
/** What the OS, sshd, journald and the member's non-heap memory keep of an instance. */
const RESERVED_MIB = 256;
/** The heap holds about 1.5 bytes per byte of stored data (index, history, buffers). */
const HEAP_PER_QUOTA = 1.5;
/** etcd's own ceiling for --quota-backend-bytes. */
const MAX_QUOTA = 8 * 1024 * MIB;

/**
 * A member's memory on an instance type: three quarters of what the OS leaves as heap, and a
 * storage quota the heap can hold (at most etcd's 8 GiB). An explicit quota above that is
 * refused with the reason; an instance type this table does not know needs an explicit
 * raftkv:masterMemoryMiB.
 */
export function memberBudget(instanceType: string, opts: { memoryMiB?: number; quotaBackendBytes?: number } = {}): MemberBudget {
  const mem = opts.memoryMiB ?? memoryMiB(instanceType);
  if (mem === undefined) {
    throw new TopologyError(`the memory of instance type ${instanceType} is not known here: set raftkv:masterMemoryMiB to its memory in MiB`);
  }
  if (mem < 1024) throw new TopologyError(`instance type ${instanceType} has ${mem} MiB of memory; a member needs at least 1024 MiB`);
  const heapMiB = Math.floor(((mem - RESERVED_MIB) * 3) / 4);
  const fits = Math.min(MAX_QUOTA, Math.floor(heapMiB / HEAP_PER_QUOTA / 64) * 64 * MIB);
  if (opts.quotaBackendBytes !== undefined) {
    if (opts.quotaBackendBytes > fits) {
      throw new TopologyError(
        `raftkv:quotaBackendBytes ${opts.quotaBackendBytes} does not fit ${instanceType} (${mem} MiB): its member heap is ${heapMiB} MiB, which holds at most ${fits} bytes of data; use a larger instance type or a smaller quota`,
      );
    }
    return { heapMiB, quotaBackendBytes: opts.quotaBackendBytes };
  }
  return { heapMiB, quotaBackendBytes: fits };
}
