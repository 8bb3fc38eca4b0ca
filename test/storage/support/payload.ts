/** Deterministic entry data from (index, term), so a reader can check content without a copy of what was written. */
export function payloadFor(index: number, term: number, size?: number): Uint8Array {
  const n = size ?? (index * 7 + term * 13) % 300;
  const out = new Uint8Array(n);
  let x = (index * 2654435761) ^ (term * 40503) ^ 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export { seededRandom as rng } from "../../helpers/prng";
