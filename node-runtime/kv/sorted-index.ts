/**
 * An ordered set of items by string key: a list of sorted chunks (the layout of Python's
 * sortedcontainers). Insert/remove cost a binary search over chunk boundaries, one inside the
 * chunk and a memmove of at most MAX_CHUNK pointers; range scans start with the same binary
 * search and then walk contiguous memory. Compared with a pointer B-tree it allocates almost
 * nothing per key and is simpler, at the same O(log n) search depth for the sizes we hold.
 *
 * Keys are latin1 strings (one char per byte), so JS string order is byte order.
 */

export interface Keyed {
  readonly key: string;
}

const HALF_CHUNK = 512;
const MAX_CHUNK = 2 * HALF_CHUNK;

export class SortedIndex<T extends Keyed> {
  private chunks: T[][] = [];
  /** Last key of every chunk, for the chunk-level binary search. */
  private lasts: string[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Builds from items already in strictly ascending key order (snapshot restore). */
  static fromSorted<T extends Keyed>(items: readonly T[]): SortedIndex<T> {
    const idx = new SortedIndex<T>();
    for (let i = 0; i < items.length; i += HALF_CHUNK) {
      const chunk = items.slice(i, i + HALF_CHUNK);
      idx.chunks.push(chunk);
      idx.lasts.push(chunk[chunk.length - 1].key);
    }
    idx.count = items.length;
    return idx;
  }

  /** Index of the first chunk whose last key is >= key (may equal chunks.length). */
  private chunkFor(key: string): number {
    let lo = 0;
    let hi = this.lasts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lasts[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds an item whose key is not present yet. */
  insert(item: T): void {
    const key = item.key;
    if (this.chunks.length === 0) {
      this.chunks.push([item]);
      this.lasts.push(key);
      this.count = 1;
      return;
    }
    let c = this.chunkFor(key);
    if (c === this.chunks.length) c--; // beyond every key: append to the last chunk
    const chunk = this.chunks[c];
    const pos = lowerBound(chunk, key);
    if (pos === chunk.length) {
      chunk.push(item);
      this.lasts[c] = key;
    } else {
      chunk.splice(pos, 0, item);
    }
    this.count++;
    if (chunk.length > MAX_CHUNK) {
      const tail = chunk.splice(HALF_CHUNK);
      this.chunks.splice(c + 1, 0, tail);
      this.lasts[c] = chunk[chunk.length - 1].key;
      this.lasts.splice(c + 1, 0, tail[tail.length - 1].key);
    }
  }

  remove(key: string): boolean {
    const c = this.chunkFor(key);
    if (c === this.chunks.length) return false;
    const chunk = this.chunks[c];
    const pos = lowerBound(chunk, key);
    if (pos === chunk.length || chunk[pos].key !== key) return false;
    chunk.splice(pos, 1);
    this.count--;
    if (chunk.length === 0) {
      this.chunks.splice(c, 1);
      this.lasts.splice(c, 1);
    } else if (pos === chunk.length) {
      this.lasts[c] = chunk[chunk.length - 1].key;
    }
    return true;
  }

  /**
   * Calls fn for every item with start <= key < end (end undefined: no upper bound), in
   * ascending order, until fn returns false.
   */
  scan(start: string, end: string | undefined, fn: (item: T) => boolean | void): void {
    let c = this.chunkFor(start);
    if (c === this.chunks.length) return;
    let pos = lowerBound(this.chunks[c], start);
    for (; c < this.chunks.length; c++, pos = 0) {
      const chunk = this.chunks[c];
      for (; pos < chunk.length; pos++) {
        const item = chunk[pos];
        if (end !== undefined && item.key >= end) return;
        if (fn(item) === false) return;
      }
    }
  }

  /** All items in order (snapshots). */
  toArray(): T[] {
    const out: T[] = [];
    for (const chunk of this.chunks) for (const item of chunk) out.push(item);
    return out;
  }
}

function lowerBound<T extends Keyed>(arr: readonly T[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid].key < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
