// The first frame on every peer connection says who dials whom in which cluster, so a member
// of another cluster (or a stale address now used by a different member) is refused before
// any raft message is exchanged.

export const PROTOCOL_VERSION = 1;

export interface Hello {
  version: number;
  clusterId: string;
  from: number;
  to: number;
}

export function encodeHello(h: Hello): Buffer {
  return Buffer.from(JSON.stringify(h), "utf8");
}

export function decodeHello(body: Uint8Array): Hello | string {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    return "handshake is not valid JSON";
  }
  if (typeof v !== "object" || v === null) return "handshake is not an object";
  const h = v as Record<string, unknown>;
  if (typeof h.version !== "number" || typeof h.clusterId !== "string" || !isMemberId(h.from) || !isMemberId(h.to)) {
    return "handshake lacks version, clusterId, from or to";
  }
  return { version: h.version, clusterId: h.clusterId, from: h.from, to: h.to };
}

/** What a joining member sends instead of a Hello to ask for the member list (see FrameType.MembersQuery). */
export interface MembersQuery {
  version: number;
  clusterId: string;
}

export function encodeMembersQuery(q: MembersQuery): Buffer {
  return Buffer.from(JSON.stringify(q), "utf8");
}

export function decodeMembersQuery(body: Uint8Array): MembersQuery | string {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    return "member list query is not valid JSON";
  }
  if (typeof v !== "object" || v === null) return "member list query is not an object";
  const q = v as Record<string, unknown>;
  if (typeof q.version !== "number" || typeof q.clusterId !== "string") return "member list query lacks version or clusterId";
  return { version: q.version, clusterId: q.clusterId };
}

function isMemberId(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Marks a refusal that tells the dialer it was removed from the cluster. A removed member may
 * never receive the committed entry that removes it (the leader stops replicating to it as soon
 * as the change is appended), so this refusal is how it learns to stop, as with etcd's 410 Gone.
 */
export const REMOVED_MARKER = "has been removed from this cluster";

/** Why the acceptor refuses a handshake, or undefined when it is acceptable. */
export function checkHello(
  h: Hello,
  self: { id: number; clusterId: string; isKnownPeer: (id: number) => boolean; isRemovedPeer?: (id: number) => boolean },
): string | undefined {
  if (h.version !== PROTOCOL_VERSION) return `unsupported peer protocol version ${h.version} (want ${PROTOCOL_VERSION})`;
  if (h.clusterId !== self.clusterId) return `cluster ID mismatch: peer is in cluster ${h.clusterId}, this member in ${self.clusterId}`;
  if (h.to !== self.id) return `member ID mismatch: peer dialed member ${h.to.toString(16)}, this is member ${self.id.toString(16)}`;
  if (h.from === self.id) return `peer claims this member's own ID ${self.id.toString(16)}`;
  if (self.isRemovedPeer?.(h.from)) return `member ${h.from.toString(16)} ${REMOVED_MARKER}`;
  if (!self.isKnownPeer(h.from)) return `member ${h.from.toString(16)} is not a member of this cluster (removed or not yet added)`;
  return undefined;
}
