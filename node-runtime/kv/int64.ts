/**
 * int64 values as the state machine holds them: JS numbers. The etcd API carries revisions,
 * versions, limits and TTLs as int64; proto-loader hands them to us as decimal strings. We keep
 * them as numbers (every real revision, version or TTL is far below 2^53, so comparisons against
 * a rounded huge value give the same answers), but a number must stay inside int64 so that the
 * command codec can carry it: 2^63 - 1 rounds up to 2^63, one past the range, so the top is
 * clamped to the largest double below 2^63.
 */

/** The largest double that is an int64 (2^63 - 1024). */
export const INT64_MAX_NUMBER = 2 ** 63 - 1024;
export const INT64_MIN_NUMBER = -(2 ** 63);

const MAX = (1n << 63n) - 1n;
const MIN = -(1n << 63n);

/** Whether n is an integer the command codec can carry. */
export function isInt64Number(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= INT64_MIN_NUMBER && n <= INT64_MAX_NUMBER;
}

/** An int64 (clamped into range) as the nearest double that is still an int64. */
export function int64ToNumber(v: bigint): number {
  const c = v > MAX ? MAX : v < MIN ? MIN : v;
  const n = Number(c);
  return n > INT64_MAX_NUMBER ? INT64_MAX_NUMBER : n;
}

/**
 * An int64 field from the wire (decimal string, number, or absent) as a number; undefined when
 * it is not an integer at all. Out-of-range text is clamped (protobuf itself never delivers it).
 */
export function wireInt64(v: string | number | bigint | undefined | null): number | undefined {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'bigint') return int64ToNumber(v);
  if (typeof v === 'number') return Number.isInteger(v) ? int64ToNumber(BigInt(v)) : undefined;
  if (!/^[+-]?\d+$/.test(v)) return undefined;
  return int64ToNumber(BigInt(v));
}
