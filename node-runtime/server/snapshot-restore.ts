/**
 * `snapshot restore`: turns an etcd-format snapshot file (taken from raftkv or from a real etcd
 * 3.4) into a raftkv data directory for one member of a new cluster, with etcdctl's semantics:
 * the keys, revisions, leases and compaction revision come from the file; the membership, member
 * IDs and cluster ID come from the flags (--initial-cluster, --initial-cluster-token), so every
 * member restored from the same file with the same flags starts the same new cluster.
 *
 * The directory holds what a member would have written itself: member.json, a state-machine
 * snapshot at index N (N = number of members, as etcdctl restore uses for its raft log) in
 * term 1, and a WAL whose marker and hard state point at it. The directory is built next to
 * the target and renamed into place, so a failed restore leaves nothing behind.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";
import { parseInitialCluster, TopologyError } from "../../components/topology";
import { encodeSnapshot } from "../kv/snapshot";
import { BoltReader, fileSource, type PageSource } from "../kv/etcd-backend/bbolt-reader";
import { importBackend } from "../kv/etcd-backend/import";
import { fsyncDir, SnapshotStore, WriteAheadLog, writeMeta } from "../storage";
import { hexId } from "./identity";
import { encodeSnapshotPayload } from "./member";
import { Membership } from "./membership";

export interface RestoreConfig {
  file: string;
  name: string;
  initialCluster: string;
  initialClusterToken: string;
  /** Comma-separated, as the flag. */
  initialAdvertisePeerUrls: string;
  /** Default: "<name>.etcd", as etcdctl. */
  dataDir?: string;
  skipHashCheck?: boolean;
}

export interface RestoreResult {
  dataDir: string;
  memberId: string;
  clusterId: string;
  revision: number;
  compactRevision: number;
  keys: number;
  leases: number;
}

/** A restore that cannot proceed; the message is the whole story (etcdctl's wording where it has one). */
export class RestoreError extends Error {}

const SHA256_BYTES = 32;

/** etcdctl formats byte slices with %v: "[1 2 3]". */
const goBytes = (b: Buffer): string => `[${[...b].join(" ")}]`;

/** The database's length inside the file, after checking the trailing SHA-256 like etcdctl. */
function verifiedDbSize(src: PageSource, skipHashCheck: boolean): number {
  const size = src.size;
  const hasHash = size % 512 === SHA256_BYTES;
  if (!hasHash) {
    if (!skipHashCheck) throw new RestoreError("snapshot missing hash but --skip-hash-check=false");
    return size;
  }
  const dbSize = size - SHA256_BYTES;
  if (!skipHashCheck) {
    const h = createHash("sha256");
    const step = 1 << 20;
    for (let off = 0; off < dbSize; off += step) h.update(src.read(off, Math.min(step, dbSize - off)));
    const want = src.read(dbSize, SHA256_BYTES);
    const got = h.digest();
    if (!got.equals(want)) throw new RestoreError(`expected sha256 ${goBytes(want)}, got ${goBytes(got)}`);
  }
  return dbSize;
}

function membershipFromFlags(cfg: RestoreConfig): Membership {
  let initial;
  try {
    initial = parseInitialCluster(cfg.initialCluster);
  } catch (e) {
    if (e instanceof TopologyError) throw new RestoreError(e.message);
    throw e;
  }
  const self = initial.find((m) => m.name === cfg.name);
  if (!self) throw new RestoreError(`couldn't find local name ${JSON.stringify(cfg.name)} in the initial cluster configuration`);
  const advertised = cfg.initialAdvertisePeerUrls
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "")
    .sort();
  const inCluster = initial.filter((m) => m.name === cfg.name).map((m) => m.peerUrl).sort();
  if (advertised.join(",") !== inCluster.join(",")) {
    throw new RestoreError(`--initial-cluster has ${cfg.name}=${inCluster.join(",")} but missing from --initial-advertise-peer-urls=${advertised.join(",")}`);
  }
  if (cfg.initialClusterToken === "") throw new RestoreError("--initial-cluster-token must not be empty");
  const ms = Membership.bootstrap(initial, cfg.initialClusterToken);
  // The founding membership is part of the restored state, not something to commit again.
  ms.initialized = true;
  return ms;
}

export async function restoreSnapshot(cfg: RestoreConfig): Promise<RestoreResult> {
  const dataDir = cfg.dataDir && cfg.dataDir !== "" ? cfg.dataDir : `${cfg.name}.etcd`;
  const membership = membershipFromFlags(cfg);
  const self = membership.list().find((m) => m.name === cfg.name)!;
  if (existsSync(dataDir)) throw new RestoreError(`data-dir ${JSON.stringify(dataDir)} exists`);
  try {
    statSync(cfg.file);
  } catch (e) {
    throw new RestoreError(`stat ${cfg.file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`);
  }

  const src = fileSource(cfg.file);
  let imported;
  try {
    const dbSize = verifiedDbSize(src, cfg.skipHashCheck === true);
    const bounded: PageSource = {
      size: dbSize,
      read: (off, len) => src.read(off, Math.max(0, Math.min(len, dbSize - off))),
      close: () => src.close(),
    };
    let reader: BoltReader;
    try {
      reader = BoltReader.open(bounded);
    } catch (e) {
      throw new RestoreError((e as Error).message);
    }
    try {
      imported = importBackend(reader);
    } catch (e) {
      throw new RestoreError(`${cfg.file}: not a readable etcd backend: ${(e as Error).message}`);
    }
  } finally {
    src.close();
  }

  const voters = membership.voters();
  const index = voters.length;
  const term = 1;
  const state = { ...imported.state, appliedIndex: index };
  const data = encodeSnapshotPayload({ membership: membership.toState(), kv: encodeSnapshot(state) });

  const parent = path.dirname(path.resolve(dataDir));
  mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(dataDir)}.restore-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  try {
    const meta = { index, term, confState: { voters, learners: [] } };
    await new SnapshotStore(path.join(tmp, "snap")).save({ meta, data });
    const { wal } = await WriteAheadLog.open(path.join(tmp, "wal"));
    await wal.markSnapshot(meta);
    await wal.save({ term, vote: 0, commit: index }, []);
    await wal.close();
    await writeMeta(tmp, {
      clusterToken: cfg.initialClusterToken,
      clusterId: hexId(membership.clusterId),
      memberId: hexId(self.id),
      name: cfg.name,
      version: 1,
    });
    await fsyncDir(tmp);
    renameSync(tmp, dataDir);
    await fsyncDir(parent);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return {
    dataDir,
    memberId: hexId(self.id),
    clusterId: hexId(membership.clusterId),
    revision: state.revision,
    compactRevision: state.compactRevision,
    keys: state.keys.filter((k) => k.last()?.val != null).length,
    leases: state.leases.length,
  };
}
