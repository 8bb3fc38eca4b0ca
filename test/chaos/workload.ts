/**
 * The register workload: clients, each bound to one member slot, run read / write / CAS on a
 * small pool of keys and record every operation with its call and return times. Keys retire
 * after a fixed number of operations (Jepsen's "independent" keys), which bounds the history the
 * checker has to search per key even when many operations end with an unknown outcome.
 *
 * Outcome classes: ok (a response), fail (a read that errored: it changed nothing, so it is left
 * out of the history), unknown (a write or CAS that errored: it may or may not have taken
 * effect; recorded as pending forever).
 */
import type { KvOperation, RegisterValue } from "../helpers/lincheck";
import type { ChaosCluster } from "./cluster";

export interface WorkloadOptions {
  clientsPerSlot: number;
  opTimeoutMs: number;
  opsPerKey: number;
  activeKeys: number;
  rng: () => number;
}

export interface WorkloadCounts {
  ops: number;
  ok: number;
  fail: number;
  unknown: number;
}

export class Workload {
  readonly history: KvOperation[] = [];
  readonly counts: WorkloadCounts = { ops: 0, ok: 0, fail: 0, unknown: 0 };
  private stopped = false;
  private nextId = 0;
  private keyGen = 0;
  private readonly active: { key: string; used: number }[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly t0 = performance.now();

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly prefix: string,
    private readonly opts: WorkloadOptions,
  ) {
    for (let i = 0; i < opts.activeKeys; i++) this.active.push({ key: this.newKey(), used: 0 });
  }

  private newKey(): string {
    return `${this.prefix}/r${this.keyGen++}`;
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  /** Starts clients for every slot that may ever hold a member. */
  start(slots: readonly number[]): void {
    let client = 0;
    for (const slot of slots) {
      for (let i = 0; i < this.opts.clientsPerSlot; i++) this.loops.push(this.loop(client++, slot));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private pickKey(): string {
    const i = Math.floor(this.opts.rng() * this.active.length);
    const k = this.active[i]!;
    if (++k.used >= this.opts.opsPerKey) this.active[i] = { key: this.newKey(), used: 0 };
    return k.key;
  }

  private async loop(client: number, home: number): Promise<void> {
    const last = new Map<string, RegisterValue>();
    let seq = 0;
    while (!this.stopped) {
      // A client whose home slot holds no member (removed, not yet replaced) idles.
      if (!this.cluster.members.has(home)) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const api = this.cluster.client(home);
      const key = this.pickKey();
      const r = this.opts.rng();
      const kb = Buffer.from(key);
      const id = this.nextId++;
      const call = this.now();
      const t = this.opts.opTimeoutMs;
      this.counts.ops++;
      if (r < 0.4) {
        try {
          const res = await api.call<{ kvs: { value: Buffer }[] }>("KV", "Range", { key: kb }, t);
          const value = res.kvs.length > 0 ? res.kvs[0]!.value.toString() : null;
          last.set(key, value);
          this.history.push({ id, client, key, call, ret: this.now(), input: { f: "read" }, output: { value } });
          this.counts.ok++;
        } catch {
          this.counts.fail++;
          await backoff();
        }
      } else if (r < 0.7) {
        const value = `c${client}-${seq++}`;
        try {
          await api.call("KV", "Put", { key: kb, value: Buffer.from(value) }, t);
          last.set(key, value);
          this.history.push({ id, client, key, call, ret: this.now(), input: { f: "write", value }, output: null });
          this.counts.ok++;
        } catch {
          this.history.push({ id, client, key, call, input: { f: "write", value } });
          this.counts.unknown++;
          await backoff();
        }
      } else {
        const value = `c${client}-${seq++}`;
        const expect = last.get(key) ?? null;
        const compare =
          expect === null
            ? { result: "EQUAL", target: "VERSION", key: kb, version: "0" }
            : { result: "EQUAL", target: "VALUE", key: kb, value: Buffer.from(expect) };
        try {
          const res = await api.call<{ succeeded: boolean }>(
            "KV",
            "Txn",
            { compare: [compare], success: [{ request_put: { key: kb, value: Buffer.from(value) } }], failure: [] },
            t,
          );
          if (res.succeeded) last.set(key, value);
          this.history.push({ id, client, key, call, ret: this.now(), input: { f: "cas", expect, value }, output: { ok: res.succeeded } });
          this.counts.ok++;
        } catch {
          this.history.push({ id, client, key, call, input: { f: "cas", expect, value } });
          this.counts.unknown++;
          await backoff();
        }
      }
    }
  }
}

/**
 * After an error a client waits a little (macrotask): a call on a channel in transient failure
 * can fail without yielding to timers, and a tight retry loop would starve the event loop.
 */
const backoff = (): Promise<void> => new Promise((r) => setTimeout(r, 50));
