/**
 * Data-corruption detection as etcd does it (etcdserver/corrupt.go): compare this member's KV
 * hash at its applied revision with each peer's hash at that same revision. A peer that reports
 * the same compact revision but a different hash holds different data. Peers that cannot answer
 * (unreachable, behind that revision, compacted past it) are skipped: no verdict without data.
 */

export interface KvHash {
  hash: number;
  compactRevision: number;
  /** The revision the hash covers. */
  revision: number;
}

export interface HashPeers {
  local(): KvHash | Promise<KvHash>;
  peers(): number[];
  /** The peer's hash at `revision`; rejects when the peer cannot say. */
  peerHash(id: number, revision: number): Promise<KvHash>;
}

/** IDs of the peers whose data differs from ours at our current revision. */
export async function findMismatchedPeers(src: HashPeers): Promise<{ local: KvHash; mismatched: number[]; checked: number[] }> {
  const local = await src.local();
  const results = await Promise.all(
    src.peers().map(async (id) => {
      try {
        return { id, h: await src.peerHash(id, local.revision) };
      } catch {
        return { id, h: undefined };
      }
    }),
  );
  const mismatched: number[] = [];
  const checked: number[] = [];
  for (const { id, h } of results) {
    if (!h || h.revision !== local.revision || h.compactRevision !== local.compactRevision) continue;
    checked.push(id);
    if (h.hash !== local.hash) mismatched.push(id);
  }
  return { local, mismatched, checked };
}
