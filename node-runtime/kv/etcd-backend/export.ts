/**
 * A store's state as an etcd 3.4 snapshot file: etcd's backend database (bbolt, etcd's buckets
 * and encodings) followed by the SHA-256 of the database, produced as a stream of chunks.
 * What `etcdctl snapshot save` writes, `etcdctl snapshot status` reads and `etcdctl snapshot
 * restore` turns into a data directory.
 */
import { createHash } from "node:crypto";
import type { StoreView } from "../store";
import { writeBolt, writeBoltAsync, type BoltEntry, type BucketSource } from "./bbolt-writer";
import { AUTH_ENABLED_KEY, AUTH_REVISION_KEY, authRevisionOf, encodeRole, encodeUser } from "./auth-schema";
import {
  BUCKETS,
  CONSISTENT_INDEX,
  FINISHED_COMPACT,
  REV_KEY_LEN,
  SCHEDULED_COMPACT,
  encodeAlarm,
  encodeKeyValue,
  encodeLease,
  encodeMember,
  encodeTombstone,
  keyValueSize,
  memberKey,
  revKey,
  tombstoneSize,
  u64be,
  type EtcdMember,
} from "./schema";

export interface ExportInput {
  kv: StoreView;
  members: readonly EtcdMember[];
  removedMembers: readonly (number | string)[];
}

/** What etcd 3.4 writes into this bucket on its own: the cluster version. */
const CLUSTER_VERSION = Buffer.from("3.4.0");
const REMOVED = Buffer.from("removed");

function fixed(name: string, entries: BoltEntry[]): BucketSource {
  const sorted = [...entries].sort((a, b) => Buffer.compare(a.key, b.key));
  return { name: Buffer.from(name), entries: () => sorted };
}

function keyBucket(v: StoreView): BucketSource {
  const { log, logLength } = v;
  return {
    name: Buffer.from("key"),
    *sizes() {
      for (let i = 0; i < logLength; i++) {
        const r = log[i]!;
        if (r.val === null) yield [REV_KEY_LEN + 1, tombstoneSize(r.ki.key)] as const;
        else yield [REV_KEY_LEN, keyValueSize({ key: r.ki.key, create: r.create, mod: r.mod, version: r.ver, value: r.val, lease: r.lease })] as const;
      }
    },
    *entries() {
      for (let i = 0; i < logLength; i++) {
        const r = log[i]!;
        if (r.val === null) yield { key: revKey(r.mod, r.sub, true), value: encodeTombstone(r.ki.key) };
        else yield { key: revKey(r.mod, r.sub, false), value: encodeKeyValue({ key: r.ki.key, create: r.create, mod: r.mod, version: r.ver, value: r.val, lease: r.lease }) };
      }
    },
  };
}

export function backendBuckets(input: ExportInput): BucketSource[] {
  const v = input.kv;
  const meta: BoltEntry[] = [{ key: Buffer.from(CONSISTENT_INDEX), value: u64be(v.appliedIndex) }];
  if (v.compactRevision > 0) {
    const rev = revKey(v.compactRevision, 0, false);
    meta.push({ key: Buffer.from(FINISHED_COMPACT), value: rev }, { key: Buffer.from(SCHEDULED_COMPACT), value: rev });
  }
  // The auth store as etcd keeps it, so `etcdctl snapshot restore` gives etcd our users and roles.
  const a = v.auth;
  const authEntries: BoltEntry[] = [{ key: Buffer.from(AUTH_REVISION_KEY), value: u64be(authRevisionOf(a)) }];
  if (a.enabled || a.users.length > 0 || a.roles.length > 0) authEntries.push({ key: Buffer.from(AUTH_ENABLED_KEY), value: Buffer.from([a.enabled ? 1 : 0]) });
  const sources: Record<(typeof BUCKETS)[number], BucketSource> = {
    alarm: fixed("alarm", v.alarms.map((a) => ({ key: encodeAlarm(a.memberID, a.alarm), value: Buffer.alloc(0) }))),
    auth: fixed("auth", authEntries),
    authRoles: fixed("authRoles", a.roles.map((r) => ({ key: Buffer.from(r.name, "utf8"), value: encodeRole(r) }))),
    authUsers: fixed("authUsers", a.users.map((u) => ({ key: Buffer.from(u.name, "utf8"), value: encodeUser(u) }))),
    cluster: fixed("cluster", [{ key: Buffer.from("clusterVersion"), value: CLUSTER_VERSION }]),
    key: keyBucket(v),
    lease: fixed("lease", v.leases.map((l) => ({ key: u64be(BigInt(l.id)), value: encodeLease(l.id, l.ttl) }))),
    members: fixed("members", input.members.map((m) => ({ key: memberKey(m.id), value: encodeMember(m) }))),
    members_removed: fixed("members_removed", input.removedMembers.map((id) => ({ key: memberKey(id), value: REMOVED }))),
    meta: fixed("meta", meta),
  };
  return BUCKETS.map((b) => sources[b]);
}

export const DEFAULT_CHUNK_BYTES = 64 * 1024;

export interface SnapshotChunks {
  /** Total bytes of the file: the database plus its 32-byte SHA-256. */
  size: number;
  chunks: Generator<Buffer>;
}

/**
 * The snapshot file as chunks of about `chunkBytes` (whole pages), the last chunk being the
 * 32-byte SHA-256 of everything before it. The layout is planned on the call; each chunk is
 * produced only when asked for, so a consumer that waits for its sink to drain keeps memory at
 * a few chunks.
 */
export function etcdSnapshotChunks(input: ExportInput, chunkBytes = DEFAULT_CHUNK_BYTES): SnapshotChunks {
  const db = writeBolt(backendBuckets(input));
  return { size: db.size + SHA256_BYTES, chunks: chunked(db.pages, chunkBytes) };
}

/**
 * etcdSnapshotChunks for a server: the state is taken from `input` at the call, and the planning
 * pass (which reads every record's size) gives way to other work every few thousand records,
 * so a large store does not stall the event loop before the first chunk.
 */
export async function etcdSnapshotChunksAsync(input: ExportInput, chunkBytes = DEFAULT_CHUNK_BYTES): Promise<SnapshotChunks> {
  const db = await writeBoltAsync(backendBuckets(input));
  return { size: db.size + SHA256_BYTES, chunks: chunked(db.pages, chunkBytes) };
}

const SHA256_BYTES = 32;

function* chunked(pages: Iterable<Buffer>, chunkBytes: number): Generator<Buffer> {
  const hash = createHash("sha256");
  let pending: Buffer[] = [];
  let size = 0;
  const take = (): Buffer => {
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending, size);
    pending = [];
    size = 0;
    hash.update(out);
    return out;
  };
  for (const page of pages) {
    pending.push(page);
    size += page.length;
    if (size >= chunkBytes) yield take();
  }
  if (size > 0) yield take();
  yield hash.digest();
}
