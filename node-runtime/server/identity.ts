/**
 * Deterministic member and cluster IDs. Every member of a new cluster derives the same IDs from
 * the same --initial-cluster and token, so no bootstrap round-trip is needed. Like etcd, the ID
 * depends on the peer URLs and the token only (MemberAdd carries no name), so a member added at
 * run time can derive its own ID from its --initial-advertise-peer-urls when it joins.
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

export function memberIdFor(peerUrls: readonly string[], clusterToken: string): number {
  return hashToId(`member|${[...peerUrls].sort().join(",")}|${clusterToken}`);
}

export function clusterIdFor(memberIds: readonly number[], clusterToken: string): number {
  return hashToId(`cluster|${[...memberIds].sort((a, b) => a - b).join(",")}|${clusterToken}`);
}

export function hexId(id: number | string): string {
  return BigInt(id).toString(16);
}
