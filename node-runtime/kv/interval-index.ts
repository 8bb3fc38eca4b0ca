/**
 * Key intervals [begin, end) (end null = no upper bound) answering "which intervals contain
 * this key" in O(log n + matches): a treap ordered by (begin, end) where every node also knows
 * the largest end in its subtree (the classic augmented interval tree). Range and prefix
 * watchers live here, so a write touches only the watchers that want it however many exist.
 *
 * Identical intervals share one node, whose values are kept in a Set. Keys are latin1
 * strings, so JS string order is byte order.
 */

interface Node<V> {
  begin: string;
  end: string | null;
  values: Set<V>;
  priority: number;
  /** Largest end in this subtree (null = unbounded, the largest of all). */
  maxEnd: string | null;
  left: Node<V> | undefined;
  right: Node<V> | undefined;
}

/** a > b, with null as +infinity. */
function endAfter(a: string | null, b: string): boolean {
  return a === null || a > b;
}

function maxOf(a: string | null, b: string | null): string | null {
  if (a === null || b === null) return null;
  return a > b ? a : b;
}

function cmp(aBegin: string, aEnd: string | null, bBegin: string, bEnd: string | null): number {
  if (aBegin !== bBegin) return aBegin < bBegin ? -1 : 1;
  if (aEnd === bEnd) return 0;
  if (aEnd === null) return 1;
  if (bEnd === null) return -1;
  return aEnd < bEnd ? -1 : 1;
}

function refresh<V>(n: Node<V>): void {
  let m = n.end;
  if (n.left) m = maxOf(m, n.left.maxEnd);
  if (n.right) m = maxOf(m, n.right.maxEnd);
  n.maxEnd = m;
}

function rotateRight<V>(n: Node<V>): Node<V> {
  const l = n.left!;
  n.left = l.right;
  l.right = n;
  refresh(n);
  refresh(l);
  return l;
}

function rotateLeft<V>(n: Node<V>): Node<V> {
  const r = n.right!;
  n.right = r.left;
  r.left = n;
  refresh(n);
  refresh(r);
  return r;
}

export class IntervalIndex<V> {
  private root: Node<V> | undefined;
  private count = 0;
  /**
   * Treap priorities from a PRNG of the index's own (mulberry32), seeded per index: the tree's
   * shape, like everything else a member does, then depends only on its inputs, so the member
   * simulator replays a seed exactly. Answers never depended on it (results come in interval
   * order whatever the shape).
   */
  private prng = 0x6d2b79f5;

  private nextPriority(): number {
    let t = (this.prng = (this.prng + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Number of values held (not distinct intervals). */
  get size(): number {
    return this.count;
  }

  add(begin: string, end: string | null, value: V): void {
    this.root = this.insert(this.root, begin, end, value);
  }

  /** Removes one value; false if it was not there. */
  delete(begin: string, end: string | null, value: V): boolean {
    let removed = false;
    const del = (n: Node<V> | undefined): Node<V> | undefined => {
      if (!n) return undefined;
      const c = cmp(begin, end, n.begin, n.end);
      if (c < 0) n.left = del(n.left);
      else if (c > 0) n.right = del(n.right);
      else {
        removed = n.values.delete(value);
        if (n.values.size === 0) return this.unlink(n);
      }
      refresh(n);
      return n;
    };
    this.root = del(this.root);
    if (removed) this.count--;
    return removed;
  }

  /** Calls fn with every value held, in interval order. */
  forEach(fn: (value: V) => void): void {
    const visit = (n: Node<V> | undefined): void => {
      if (!n) return;
      visit(n.left);
      for (const v of n.values) fn(v);
      visit(n.right);
    };
    visit(this.root);
  }

  /** Calls fn with every value whose interval contains key. */
  stab(key: string, fn: (value: V) => void): void {
    const visit = (n: Node<V> | undefined): void => {
      // Nothing below ends after key: no interval here can contain it.
      if (!n || !endAfter(n.maxEnd, key)) return;
      visit(n.left);
      if (n.begin > key) return; // this node and everything to its right begin after key
      if (endAfter(n.end, key)) for (const v of n.values) fn(v);
      visit(n.right);
    };
    visit(this.root);
  }

  private insert(n: Node<V> | undefined, begin: string, end: string | null, value: V): Node<V> {
    if (!n) {
      this.count++;
      return { begin, end, values: new Set([value]), priority: this.nextPriority(), maxEnd: end, left: undefined, right: undefined };
    }
    const c = cmp(begin, end, n.begin, n.end);
    if (c === 0) {
      if (!n.values.has(value)) {
        n.values.add(value);
        this.count++;
      }
      return n;
    }
    if (c < 0) {
      n.left = this.insert(n.left, begin, end, value);
      if (n.left.priority > n.priority) return rotateRight(n);
    } else {
      n.right = this.insert(n.right, begin, end, value);
      if (n.right.priority > n.priority) return rotateLeft(n);
    }
    refresh(n);
    return n;
  }

  /** The subtree that replaces n once n is gone (children merged by priority). */
  private unlink(n: Node<V>): Node<V> | undefined {
    const merge = (a: Node<V> | undefined, b: Node<V> | undefined): Node<V> | undefined => {
      if (!a) return b;
      if (!b) return a;
      if (a.priority > b.priority) {
        a.right = merge(a.right, b);
        refresh(a);
        return a;
      }
      b.left = merge(a, b.left);
      refresh(b);
      return b;
    };
    return merge(n.left, n.right);
  }
}
