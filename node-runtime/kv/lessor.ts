/**
 * Leases. What is replicated (which leases exist, their granted TTL, which keys are attached)
 * changes only through applied commands. Expiry is not replicated: only the leader (the
 * "primary" lessor) tracks deadlines, from its own clock, and turns expired leases into
 * revoke proposals — no member ever deletes keys on its own clock. A new leader starts every
 * lease afresh at now + TTL (promote), like etcd, so a leader change never shortens a lease.
 */
import { errLeaseNotFound, errNotLeader } from './errors';

/** etcd's MaxLeaseTTL (seconds). */
export const MAX_LEASE_TTL = 9_000_000_000;
/** How long the leader waits before proposing the revoke of the same expired lease again. */
export const EXPIRED_RETRY_MS = 3000;

export class Lease {
  /** Attached keys (latin1). */
  readonly keys = new Set<string>();
  /** Leader-only deadline in ms; undefined = not tracked yet (set at the next check). */
  expiry: number | undefined = undefined;
  /**
   * Leader-only: expired() does not name this lease again before this time (its revoke is in
   * flight). Kept apart from the deadline so that a renewal is never mistaken for a retry mark.
   */
  retryAt: number | undefined = undefined;

  constructor(
    readonly id: string,
    readonly ttl: number,
  ) {}
}

export class Lessor {
  private readonly byId = new Map<string, Lease>();
  private primary = false;

  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Lease | undefined {
    return this.byId.get(id);
  }

  all(): IterableIterator<Lease> {
    return this.byId.values();
  }

  /** Replicated: called from apply only. */
  add(lease: Lease): void {
    this.byId.set(lease.id, lease);
  }

  /** Replicated: called from apply only. */
  delete(id: string): void {
    this.byId.delete(id);
  }

  /** Replicated: every lease gone (a snapshot replaces them). */
  clear(): void {
    this.byId.clear();
  }

  /** This member became leader: every lease gets a fresh deadline now + TTL. */
  promote(nowMs: number): void {
    this.primary = true;
    for (const l of this.byId.values()) {
      l.expiry = nowMs + l.ttl * 1000;
      l.retryAt = undefined;
    }
  }

  /** This member stopped being leader: deadlines are forgotten. */
  demote(): void {
    this.primary = false;
    for (const l of this.byId.values()) {
      l.expiry = undefined;
      l.retryAt = undefined;
    }
  }

  /** Leader: the lease's deadline has passed (it is or will be revoked; it cannot be renewed). */
  isExpired(l: Lease, nowMs: number): boolean {
    return this.primary && l.expiry !== undefined && l.expiry <= nowMs;
  }

  /**
   * Keep-alive (leader only). Returns the TTL in seconds; throws if unknown or not leader. An
   * expired lease is not renewed (etcd answers "lease not found" too): its revoke may already be
   * on its way, and a keep-alive answered now would promise a TTL the revoke cuts short.
   */
  renew(id: string, nowMs: number): number {
    if (!this.primary) throw errNotLeader();
    const l = this.byId.get(id);
    if (!l || this.isExpired(l, nowMs)) throw errLeaseNotFound();
    l.expiry = nowMs + l.ttl * 1000;
    l.retryAt = undefined;
    return l.ttl;
  }

  /** Seconds left (leader); the granted TTL elsewhere, where no deadline is tracked. */
  remaining(l: Lease, nowMs: number): number {
    if (!this.primary || l.expiry === undefined) return l.ttl;
    // Whole seconds left, rounded down as etcd reports them (299 just after a 300 s grant).
    return Math.max(0, Math.floor((l.expiry - nowMs) / 1000));
  }

  /**
   * Leases the leader should propose to revoke, in ID order. Each returned lease is not
   * returned again for EXPIRED_RETRY_MS, so a lost proposal is retried but not flooded.
   */
  expired(nowMs: number): string[] {
    if (!this.primary) return [];
    const out: string[] = [];
    for (const l of this.byId.values()) {
      if (l.expiry === undefined) {
        l.expiry = nowMs + l.ttl * 1000;
      } else if (l.expiry <= nowMs && (l.retryAt === undefined || l.retryAt <= nowMs)) {
        out.push(l.id);
        l.retryAt = nowMs + EXPIRED_RETRY_MS;
      }
    }
    return out.sort(compareIds);
  }
}

/** Order of int64 IDs given as decimal strings. */
export function compareIds(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
