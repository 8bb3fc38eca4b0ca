/**
 * `<dataDir>/member.json`: which cluster and member a data directory belongs to, so a member
 * started with the wrong flags refuses the directory instead of mixing two clusters' logs.
 * Replaced atomically; never partially written.
 */
import { join } from "node:path";
import { writeFileAtomic } from "./durable-fs";
import { nodeFs, type StorageFs } from "./fs";

export interface MemberMeta {
  clusterToken: string;
  /** Hex, as etcd prints IDs. */
  clusterId: string;
  /** Hex, as etcd prints IDs. */
  memberId: string;
  name: string;
  /** Data directory format version. */
  version: number;
  /**
   * The last request-ID incarnation a process on this data dir took (server/identity.ts
   * RequestIds); absent in data dirs from before it was kept, read as 0.
   */
  incarnation?: number;
}

export const MEMBER_META_FILE = "member.json";

/** The metadata, or undefined if the directory has none yet; malformed content throws. */
export async function readMeta(dataDir: string, fs: StorageFs = nodeFs): Promise<MemberMeta | undefined> {
  const path = join(dataDir, MEMBER_META_FILE);
  let text: string;
  try {
    text = (await fs.readFile(path)).toString("utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON: ${(err as Error).message}`);
  }
  const problem = metaProblem(v);
  if (problem) throw new Error(`${path}: invalid member metadata: ${problem}`);
  return v as MemberMeta;
}

export async function writeMeta(dataDir: string, meta: MemberMeta, fs: StorageFs = nodeFs): Promise<void> {
  const problem = metaProblem(meta);
  if (problem) throw new TypeError(`invalid member metadata: ${problem}`);
  const { clusterToken, clusterId, memberId, name, version, incarnation } = meta;
  const text = JSON.stringify({ clusterToken, clusterId, memberId, name, version, incarnation }, null, 2) + "\n";
  await writeFileAtomic(join(dataDir, MEMBER_META_FILE), [Buffer.from(text, "utf8")], fs);
}

function metaProblem(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null) return "not an object";
  const o = v as Record<string, unknown>;
  for (const k of ["clusterToken", "clusterId", "memberId", "name"]) {
    if (typeof o[k] !== "string") return `${k} must be a string`;
  }
  if (typeof o.version !== "number" || !Number.isSafeInteger(o.version)) return "version must be an integer";
  if (o.incarnation !== undefined && (typeof o.incarnation !== "number" || !Number.isSafeInteger(o.incarnation) || o.incarnation < 0)) return "incarnation must be a non-negative integer";
  return undefined;
}
