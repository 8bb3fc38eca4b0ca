/**
 * Lease properties of the whole-member simulator.
 *
 * What a client may rely on, across members and leader changes (checked in global simulated
 * time): a lease is not revoked sooner than TTL / MAX_CLOCK_RATE after the client SENT the last
 * grant or keep-alive that was answered (through any member). That is the design's whole clock
 * assumption: each leader measures a lease on its own monotonic clock, whose rate is off by at
 * most 5% (|drift| ≤ ρ = 0.05, so TTL on it lasts at least TTL / 1.05 of real time); offsets
 * between members' clocks and steps of their wall clocks play no part. The time the answer
 * reaches the client is not the reference: the network may hold an answer for longer than a
 * TTL, so a client counts from its request, as it must with any lease. A keep-alive sent after
 * the revoke was proposed may still be answered with the TTL (etcd 3.4 answers a keep-alive
 * racing a revoke so; see Member.renewAsLeader): only those sent before it count.
 * Per incarnation, besides: Expiry is the leader's alone, from its own
 * clock (node-runtime/kv/lessor.ts), so what is checked is what that design promises:
 * - a revoke is proposed only by a member whose core leads, in a term it leads (not a member
 *   that silently lost leadership, issue 12 bug 3), and every revoke that is applied was
 *   appended in the term of the member that proposed it (never forwarded to another leader);
 * - when it is proposed, the lease's TTL has passed on the proposer's clock since it became
 *   leader, since it applied the grant and since its last keep-alive answer for that lease.
 * The simulator's clocks run at rate 0.95–1.05 with offsets; elapsed time on a member's clock is
 * simulated time × its rate, which is what the lessor measures too.
 */
import { MAX_CLOCK_RATE, type Owner } from "./world";

/** The shortest a lease of `ttlSec` may live in simulated ms after the client sent its last answered grant or keep-alive. */
export function leaseFloorMs(ttlSec: number): number {
  return (ttlSec * 1000) / MAX_CLOCK_RATE - 1;
}

/**
 * The client-side record of each lease: the grants and keep-alives that were answered (when each
 * was sent), when a revoke was last proposed and when one was first applied, to check
 * leaseFloorMs from both ends (an answer can arrive after the revoke is applied). A keep-alive
 * sent after the applied revoke was proposed may still be answered with the TTL, as etcd answers
 * a keep-alive racing a revoke: it does not count.
 */
export class LeaseLedger {
  private readonly answers = new Map<string, Array<{ at: number; ttl: number; what: string }>>();
  private readonly proposed = new Map<string, number>();
  private readonly revoked = new Map<string, { at: number; proposedAt: number }>();

  /** A grant or keep-alive sent at `sentAt` was answered with `ttlSec`; the violation, if any. */
  answered(id: string, sentAt: number, ttlSec: number, what: string): string | undefined {
    let list = this.answers.get(id);
    if (list === undefined) this.answers.set(id, (list = []));
    list.push({ at: sentAt, ttl: ttlSec, what });
    const rev = this.revoked.get(id);
    if (rev !== undefined && sentAt < rev.proposedAt && rev.at - sentAt < leaseFloorMs(ttlSec)) {
      return `lease ${id} (TTL ${ttlSec} s): a ${what} sent at ${sentAt} was answered, but the revoke was applied at ${rev.at}, ${(rev.at - sentAt).toFixed(0)} ms later (at least ${leaseFloorMs(ttlSec).toFixed(0)})`;
    }
    return undefined;
  }

  /** A revoke is proposed (`applied` false) or applied now; the violation, if any. */
  revoke(id: string, now: number, applied: boolean, by: string): string | undefined {
    let before = now;
    if (!applied) this.proposed.set(id, now);
    else {
      const first = this.revoked.get(id) ?? { at: now, proposedAt: this.proposed.get(id) ?? now };
      this.revoked.set(id, first);
      before = first.proposedAt;
    }
    let last: { at: number; ttl: number; what: string } | undefined;
    for (const a of this.answers.get(id) ?? []) if (a.at < before && (last === undefined || a.at > last.at)) last = a;
    if (last === undefined || now - last.at >= leaseFloorMs(last.ttl)) return undefined;
    return `lease ${id} (TTL ${last.ttl} s) revoke ${applied ? "applied" : "proposed"} by ${by} ${(now - last.at).toFixed(0)} ms after the client sent its last answered ${last.what} (at least ${leaseFloorMs(last.ttl).toFixed(0)} ms across leaders: TTL / ${MAX_CLOCK_RATE})`;
  }
}

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
