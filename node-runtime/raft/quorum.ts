/** Majority arithmetic over a voter set (raft imports nothing from the rest of the repo). */

export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The highest index matched by a majority of `matches` (one per voter). Clusters have at most a
 * handful of voters, so sorting a tiny array is cheaper than anything cleverer.
 */
export function committedIndex(matches: number[]): number {
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[majority(matches.length) - 1];
}

export type VoteResult = "won" | "lost" | "pending";

export function voteResult(voters: Iterable<number>, votes: Map<number, boolean>): VoteResult {
  let n = 0;
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    n++;
    const g = votes.get(v);
    if (g === true) granted++;
    else if (g === false) rejected++;
  }
  const q = majority(n);
  if (granted >= q) return "won";
  if (rejected > n - q) return "lost";
  return "pending";
}
