/**
 * Member and cluster IDs. Every member of a new cluster derives the same IDs from the same
 * --initial-cluster and token, so no bootstrap round-trip is needed. A member added at run time
 * gets an ID with the time mixed in, as etcd's `member add` does: a member removed and added
 * again at the same peer URL is a new member, not the removed one (which peers refuse for good).
 * It learns that ID from the cluster when it joins (see Member.discoverSelf).
 *
 * IDs are positive integers below 2^52 so they survive JSON and `longs: String` round-trips
 * exactly; they print as hex like etcd's 64-bit IDs.
 */
import { createHash } from "node:crypto";

function hashToId(input: string): number {
  const digest = createHash("sha256").update(input).digest();
  const id = Number(digest.readBigUInt64BE(0) & ((1n << 52n) - 1n));
  return id === 0 ? 1 : id;
}

/** `addedAtMs`: the time of a run-time `member add`; absent for the founding members. */
export function memberIdFor(peerUrls: readonly string[], clusterToken: string, addedAtMs?: number): number {
  const time = addedAtMs === undefined ? "" : `|${addedAtMs}`;
  return hashToId(`member|${[...peerUrls].sort().join(",")}|${clusterToken}${time}`);
}

export function clusterIdFor(memberIds: readonly number[], clusterToken: string): number {
  return hashToId(`cluster|${[...memberIds].sort((a, b) => a - b).join(",")}|${clusterToken}`);
}

export function hexId(id: number | string): string {
  return BigInt(id).toString(16);
}

/**
 * Request IDs of one member, unique across its restarts: a waiter, a read-index context or a
 * member call is matched to its answer by this ID alone, and an answer can outlive the process
 * that asked (an entry proposed before a crash is applied after the restart; a peer link can
 * deliver an old read response after a reconnect). Like etcd's idutil generator, the sequence
 * starts from the wall clock (milliseconds × 2048, below 2^53 until the year 2109), and never
 * below `floor` (the highest ID this member is known to have used, e.g. found in its WAL), so a
 * clock set back does not reuse the IDs of entries still in the log either.
 */
export const REQUEST_IDS_PER_MS = 2048;
/** IDs one incarnation may use beyond its last logged one (see Member.start). */
export const REQUEST_ID_SPACE = 2 ** 31;

export class RequestIds {
  private last: number;

  constructor(nowMs: number = Date.now(), floor = 0) {
    this.last = Math.max(Math.floor(nowMs) * REQUEST_IDS_PER_MS, floor);
  }

  next(): number {
    return ++this.last;
  }

  /** Never hand out `id` or anything below it again. */
  observe(id: number): void {
    if (id > this.last) this.last = id;
  }
}
