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
 * Request IDs of one member, unique across its restarts whatever its clock does: a waiter, a
 * read-index context or a member call is matched to its answer by this ID alone, and an answer
 * can outlive the process that asked (an entry proposed or forwarded before a crash is applied
 * after the restart; a peer link can deliver an old read response after a reconnect).
 *
 * An ID is `incarnation × 2^32 + n`. The incarnation is a counter saved in the data dir
 * (member.json) and raised, durably, at every start before the first ID is handed out, so no
 * two processes on one data dir share an incarnation; n counts up within it. A process that
 * hands out half of its 2^32 IDs saves the next incarnation for itself in the background and
 * moves on to it when its own is used up. IDs stay below 2^53 (exact as the float64 of an entry
 * envelope) for 2^21 − 1 incarnations. The clock plays no part (etcd mixes in the time; a clock
 * set back across a restart repeated IDs here, issue 12).
 */
export const REQUEST_ID_BITS = 32;
export const MAX_INCARNATION = 2 ** (53 - REQUEST_ID_BITS) - 1;

/** The incarnation an ID belongs to (an ID of another scheme maps to a high one; see Member.start). */
export function incarnationOfRequestId(id: number, bits = REQUEST_ID_BITS): number {
  return Math.floor(id / 2 ** bits);
}

export class RequestIds {
  private last: number;
  /** next() looks at the incarnation's boundaries only from here on (cheap common path). */
  private checkAt: number;
  private end: number;
  private reserving = false;
  private reserved: number | undefined;
  private readonly span: number;

  /**
   * `incarnation`: saved durably before the first next(). `reserve(i)` saves incarnation i as
   * used (member.json) and resolves once it is durable. `bits`: smaller in tests only.
   */
  constructor(
    private incarnation: number,
    private readonly reserve: (incarnation: number) => Promise<void>,
    bits = REQUEST_ID_BITS,
  ) {
    if (!Number.isSafeInteger(incarnation) || incarnation < 1) throw new RangeError(`request ID incarnation ${incarnation} must be a positive integer`);
    this.span = 2 ** bits;
    this.last = incarnation * this.span;
    this.end = this.last + this.span;
    this.checkAt = this.last + this.span / 2;
    if (this.end - 1 > Number.MAX_SAFE_INTEGER) throw new RangeError(`request ID incarnation ${incarnation} is past the last one (${(Number.MAX_SAFE_INTEGER + 1) / this.span - 1})`);
  }

  next(): number {
    if (this.last + 1 >= this.checkAt) this.boundary();
    return ++this.last;
  }

  /** Half used: save the next incarnation; all used: move to it (or refuse until it is saved). */
  private boundary(): void {
    const want = this.incarnation + 1;
    if (this.last + 1 >= this.end) {
      if (this.reserved !== want) throw new Error(`request IDs of incarnation ${this.incarnation} are used up and the next one is not saved yet`);
      this.incarnation = want;
      this.reserved = undefined;
      this.last = want * this.span;
      this.end = this.last + this.span;
      this.checkAt = this.last + this.span / 2;
      return;
    }
    this.checkAt = this.end;
    if (this.reserving || this.reserved === want) return;
    if ((want + 1) * this.span - 1 > Number.MAX_SAFE_INTEGER) return;
    this.reserving = true;
    this.reserve(want).then(
      () => {
        this.reserving = false;
        this.reserved = want;
      },
      () => {
        // Try again at the next ID.
        this.reserving = false;
        this.checkAt = Math.min(this.checkAt, this.last + 1);
      },
    );
  }
}
