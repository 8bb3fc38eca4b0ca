/**
 * Simulated time for the whole-member simulator: one event queue ordered by (time, sequence),
 * run one callback at a time with every promise settled in between (as node's event loop drains
 * microtasks after each callback), so a seed replays the same interleaving of the real member's
 * async code. Each member incarnation is an Owner: its events die with it (a crash), wait while it
 * is paused (a stopped VM, a long GC) and its clock may run fast or slow (rate 0.95–1.05, see
 * MAX_CLOCK_RATE) and be set off or stepped; its monotonic clock runs at the same rate but is
 * never set off or stepped.
 */
import type { Clock, TimerHandle } from "../../../../node-runtime/server/member-env";
import { Rng } from "../rng";

/** The fastest a simulated member's clock runs (and MIN_CLOCK_RATE the slowest) relative to simulated time. */
export const MAX_CLOCK_RATE = 1.05;
export const MIN_CLOCK_RATE = 0.95;

interface Event {
  at: number;
  seq: number;
  owner: Owner | undefined;
  fn: () => void;
}

export class Owner {
  dead = false;
  pausedUntil = 0;
  constructor(
    readonly name: string,
    /** Wall-clock offset of this member's clock (ms); a clock step (NTP, an operator) changes it. */
    public skewMs: number,
    /** How fast this member's clock runs relative to simulated time (1 = exact). */
    readonly rate: number,
  ) {}
}

interface SimTimer {
  cancelled: boolean;
}

export class World {
  now = 0;
  private seq = 0;
  private heap: Event[] = [];
  readonly rng: Rng;
  steps = 0;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  schedule(at: number, owner: Owner | undefined, fn: () => void): void {
    this.push({ at: Math.max(at, this.now), seq: this.seq++, owner, fn });
  }

  pending(): number {
    return this.heap.length;
  }

  /** Runs events until `until` (simulated ms) or `stop()` is true; `after` runs after each one. */
  async run(until: number, after: () => void, stop?: () => boolean): Promise<void> {
    while (this.heap.length > 0 && this.heap[0].at <= until) {
      if (stop?.()) return;
      const ev = this.pop();
      if (ev.owner?.dead) continue;
      if (ev.owner !== undefined && ev.owner.pausedUntil > ev.at) {
        this.push({ ...ev, at: ev.owner.pausedUntil, seq: this.seq++ });
        continue;
      }
      this.now = ev.at;
      this.steps++;
      ev.fn();
      // Let every promise chain the callback started run to its next real wait.
      await new Promise<void>((r) => setImmediate(r));
      after();
    }
    if (!stop?.()) this.now = Math.max(this.now, until);
  }

  clockFor(owner: Owner): Clock {
    const world = this;
    const timer = (fn: () => void, ms: number, repeat: boolean): TimerHandle => {
      const t: SimTimer = { cancelled: false };
      const fire = (): void => {
        if (t.cancelled) return;
        if (repeat) world.schedule(world.now + Math.max(1, ms / owner.rate), owner, fire);
        fn();
      };
      world.schedule(world.now + Math.max(repeat ? 1 : 0, ms / owner.rate), owner, fire);
      return t;
    };
    const cancel = (t: TimerHandle | undefined): void => {
      if (t !== undefined) (t as SimTimer).cancelled = true;
    };
    return {
      now: () => 1_800_000_000_000 + owner.skewMs + world.now * owner.rate,
      monotonic: () => 1_000_000 + world.now * owner.rate,
      setTimeout: (fn, ms) => timer(fn, ms, false),
      clearTimeout: cancel,
      setInterval: (fn, ms) => timer(fn, ms, true),
      clearInterval: cancel,
      setImmediate: (fn) => world.schedule(world.now, owner, fn),
    };
  }

  private less(a: Event, b: Event): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Event {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
