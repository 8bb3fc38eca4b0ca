// The bounded queue of ordered messages waiting for one peer. When it exceeds its byte bound the
// OLDEST messages go first: raft retransmits what is lost, and the newest messages (latest
// heartbeats, latest appends) are the ones worth delivering.

export class SendQueue {
  private items: Uint8Array[] = [];
  private head = 0;
  private bytesQueued = 0;

  constructor(private readonly maxBytes: number) {}

  get bytes(): number {
    return this.bytesQueued;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Appends and returns how many messages had to be dropped to respect the bound. */
  push(payload: Uint8Array): number {
    this.items.push(payload);
    this.bytesQueued += payload.length;
    let dropped = 0;
    while (this.bytesQueued > this.maxBytes && this.length > 0) {
      this.shift();
      dropped++;
    }
    return dropped;
  }

  peek(): Uint8Array | undefined {
    return this.items[this.head];
  }

  shift(): Uint8Array | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head] = EMPTY;
    this.head++;
    this.bytesQueued -= item.length;
    // Compact once the consumed prefix dominates, so shifting stays amortised O(1).
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.bytesQueued = 0;
    return n;
  }
}

const EMPTY = new Uint8Array(0);
