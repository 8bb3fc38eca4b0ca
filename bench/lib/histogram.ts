/**
 * A latency histogram with 1 % wide logarithmic buckets: recording is one Math.log, and
 * histograms from several workers merge by adding counts, so no worker ships raw samples.
 */

const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Buckets cover 1 µs .. ~ 1.2e9 µs (20 minutes); anything longer lands in the last one. */
const BUCKETS = Math.ceil(Math.log(1.2e9) / LOG_GROWTH) + 1;

export class Histogram {
  readonly counts: Uint32Array;
  total = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Uint32Array(BUCKETS);
    if (counts) {
      if (counts.length !== BUCKETS) throw new RangeError(`histogram has ${counts.length} buckets, expected ${BUCKETS}`);
      for (let i = 0; i < BUCKETS; i++) {
        this.counts[i] = counts[i]!;
        this.total += counts[i]!;
      }
    }
  }

  recordMicros(us: number): void {
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) / LOG_GROWTH));
    this.counts[i]!++;
    this.total++;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
  }

  /** The q-quantile (0 < q <= 1) in microseconds, as the geometric middle of its bucket. */
  quantileMicros(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return i === 0 ? 1 : Math.pow(GROWTH, i + 0.5);
    }
    return Math.pow(GROWTH, BUCKETS);
  }

  toJSON(): number[] {
    return Array.from(this.counts);
  }
}
