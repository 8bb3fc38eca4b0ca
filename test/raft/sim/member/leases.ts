/**
 * Lease properties of the whole-member simulator. Expiry is the leader's alone, from its own
 * clock (node-runtime/kv/lessor.ts), so what is checked is what that design promises:
 * - a revoke is proposed only by a member whose core leads, in a term it leads (not a member
 *   that silently lost leadership, issue 12 bug 3), and every revoke that is applied was
 *   appended in the term of the member that proposed it (never forwarded to another leader);
 * - when it is proposed, the lease's TTL has passed on the proposer's clock since it became
 *   leader, since it applied the grant and since its last keep-alive answer for that lease.
 * The simulator's clocks run at rate 0.95–1.05 with offsets; elapsed time on a member's clock is
 * simulated time × its rate, which is what the lessor measures too.
 */
import type { Owner } from "./world";

export interface LeaseEvents {
  /** Simulated ms at which this incarnation last became leader (lessor.promote). */
  leaderSince: number | undefined;
  /** Lease ID → simulated ms of this incarnation's last keep-alive answer as leader. */
  renewed: Map<string, number>;
  /** Lease ID → simulated ms at which this incarnation applied (or replayed) the grant. */
  granted: Map<string, number>;
}

export function newLeaseEvents(): LeaseEvents {
  return { leaderSince: undefined, renewed: new Map(), granted: new Map() };
}

/** Why a revoke proposed now by this incarnation breaks the TTL, or undefined if it does not. */
export function earlyRevoke(ev: LeaseEvents, owner: Owner, id: string, ttlSec: number, now: number): string | undefined {
  const need = ttlSec * 1000 - 1;
  const onClock = (since: number): number => (now - since) * owner.rate;
  if (ev.leaderSince === undefined) return `lease ${id} revoke proposed by ${owner.name}, which never became leader`;
  if (onClock(ev.leaderSince) < need) return `lease ${id} (TTL ${ttlSec} s) revoked ${onClock(ev.leaderSince).toFixed(0)} ms after ${owner.name} became leader (its clock)`;
  const g = ev.granted.get(id);
  if (g !== undefined && onClock(g) < need) return `lease ${id} (TTL ${ttlSec} s) revoked ${onClock(g).toFixed(0)} ms after ${owner.name} applied its grant (its clock)`;
  const r = ev.renewed.get(id);
  if (r !== undefined && onClock(r) < need) return `lease ${id} (TTL ${ttlSec} s) revoked ${onClock(r).toFixed(0)} ms after ${owner.name} answered a keep-alive for it (its clock)`;
  return undefined;
}
