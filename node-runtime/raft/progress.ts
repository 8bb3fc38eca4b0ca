/**
 * What the leader knows about one follower's log, and how it paces replication to it.
 *
 * probe: we do not know where the logs agree; send one append per heartbeat round until one is
 *        accepted. replicate: logs agree up to `match`; stream appends optimistically, bounded by
 *        `inflights`. snapshot: the entries it needs are compacted; a snapshot is on its way.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** A ring of the last index of each append in flight; bounded so a slow follower cannot bloat memory. */
export class Inflights {
  private readonly buf: number[];
  private start = 0;
  count = 0;

  constructor(readonly capacity: number) {
    this.buf = new Array<number>(capacity).fill(0);
  }

  full(): boolean {
    return this.count >= this.capacity;
  }

  add(lastIndex: number): void {
    this.buf[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** The follower acknowledged everything up to `index`: those messages are no longer in flight. */
  freeLE(index: number): void {
    while (this.count > 0 && this.buf[this.start] <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  freeFirst(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** probe: an append was sent this heartbeat round; wait for an answer or the next heartbeat. */
  probeSent = false;
  /** snapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** snapshot: ticks since it was sent; resent if the follower stays silent (the send may be lost). */
  snapshotTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(Math.max(1, maxInflight));
  }

  becomeProbe(): void {
    if (this.state === "snapshot") {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
      this.pendingSnapshot = 0;
    } else {
      this.next = this.match + 1;
    }
    this.state = "probe";
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.pendingSnapshot = index;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }

  /** An append was accepted up to `index`. Returns false if the answer is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * An append at `rejected` was refused; `hint` is the leader's estimate of the last index where
   * the logs may agree. Returns false if the rejection is stale (answers an older probe).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}
