/**
 * The bytes a member puts into a raft entry: what kind of command it is, and which member and
 * request proposed it, so that when the entry is applied the proposing member can answer the
 * client that is waiting for it. Layout: u8 kind | f64 origin member | f64 request seq | payload.
 * (IDs and sequence numbers are safe integers, which a float64 holds exactly.)
 */
export enum EntryKind {
  Kv = 1,
  MemberAttr = 2,
  /** The founding membership, proposed once by the first leader so that members added later learn it. */
  ClusterInit = 3,
}

export interface Envelope {
  kind: EntryKind;
  origin: number;
  seq: number;
  payload: Uint8Array;
}

const HEADER = 17;

export function encodeEnvelope(kind: EntryKind, origin: number, seq: number, payload: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt8(kind, 0);
  out.writeDoubleLE(origin, 1);
  out.writeDoubleLE(seq, 9);
  out.set(payload, HEADER);
  return out;
}

export function decodeEnvelope(data: Uint8Array): Envelope {
  if (data.length < HEADER) throw new Error(`raft entry of ${data.length} bytes is shorter than its ${HEADER}-byte header`);
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const kind = b.readUInt8(0);
  if (kind !== EntryKind.Kv && kind !== EntryKind.MemberAttr && kind !== EntryKind.ClusterInit) throw new Error(`raft entry of unknown kind ${kind}`);
  return { kind, origin: b.readDoubleLE(1), seq: b.readDoubleLE(9), payload: b.subarray(HEADER) };
}
