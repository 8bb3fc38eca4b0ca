/**
 * The whole-member simulator: real `Member`s (ready loop, WAL, snapshots, request IDs, read
 * path, peer calls) over the simulated clock, disk and network of world.ts, disk.ts and net.ts,
 * with clients writing and reading through them at any point of the loop. Checked after every
 * event: one leader per term, one entry per committed index, one revision per applied index.
 * Checked at the end: every acknowledged write survives on every member at its revision, the
 * members converge, and the clients' history is linearizable (test/helpers/lincheck.ts).
 */
import pino from "pino";
import { Member } from "../../../../node-runtime/server/member";
import { parseConfig, type ServerConfig } from "../../../../node-runtime/server/config";
import { Metrics } from "../../../../node-runtime/server/obs/metrics";
import type { ReloadingTls } from "../../../../node-runtime/server/tls";
import type { RaftNode } from "../../../../node-runtime/raft";
import type { PeerNetwork } from "../../../../node-runtime/server/member-env";
import type { PutResponse } from "../../../../node-runtime/kv/types";
import { checkKvHistory, formatKvResult, type KvOperation } from "../../../helpers/lincheck";
import { SimDisk } from "./disk";
import { SimNetwork } from "./net";
import { Owner, World } from "./world";

export class SimFailure extends Error {
  override readonly name = "SimFailure";
}

const HEARTBEAT_MS = 100;
const ELECTION_MS = 1000;
const CLIENT_TIMEOUT_MS = 4000;
const KEYS = ["a", "b", "c"];
const silent = pino({ level: "silent" });

/** What the member keeps private and the checker needs to see. */
interface MemberInside {
  raft: RaftNode | undefined;
  appliedIndex: number;
}

interface Node {
  id: number;
  index: number;
  cfg: ServerConfig;
  disk: SimDisk;
  owner: Owner | undefined;
  member: Member | undefined;
  started: boolean;
  incarnation: number;
  restartAt: number | undefined;
  /** Commit index up to which this incarnation's committed terms were checked. */
  checkedCommit: number;
}

interface Acked {
  key: string;
  value: string;
  revision: number;
}

export interface SeedResult {
  seed: number;
  size: number;
  steps: number;
  writesAcked: number;
  readsOk: number;
  crashes: number;
  crashesAtDiskCall: number;
  tornTails: number;
  snapshotsSaved: number;
  snapshotsSent: number;
  messagesCut: number;
  simulatedMs: number;
}

export class MemberSimulation {
  readonly world: World;
  readonly net: SimNetwork;
  readonly nodes: Node[] = [];
  private readonly history: KvOperation[] = [];
  private readonly acked: Acked[] = [];
  private opIds = 0;
  private clientsOn = true;
  private faultsOn = true;
  crashes = 0;
  private readonly leaderOfTerm = new Map<number, number>();
  private readonly committedTerm = new Map<number, number>();
  private readonly revisionAt = new Map<number, number>();
  private readonly log: string[] = [];
  readonly size: number;
  private readonly snapshotCount: number;
  private readonly catchUpEntries: number | undefined;
  private readonly slowSyncRate: number;
  private readonly crashAtCallRate: number;

  constructor(
    readonly seed: number,
    opts: { size?: number; snapshotCount?: number; catchUpEntries?: number } = {},
  ) {
    this.world = new World(seed);
    const rng = this.world.rng;
    this.size = rng.pick([1, 3, 3, 3, 5]);
    if (opts.size !== undefined) this.size = opts.size;
    this.snapshotCount = opts.snapshotCount ?? rng.pick([5, 10, 30]);
    this.catchUpEntries = opts.catchUpEntries;
    this.slowSyncRate = rng.pick([0, 0.01, 0.05]);
    this.crashAtCallRate = rng.pick([0, 0.002, 0.01, 0.03]);
    this.net = new SimNetwork(this.world, {
      maxDelayMs: rng.pick([2, 10, 50]),
      longDelayRate: rng.pick([0, 0.002, 0.01]),
      dropRate: rng.pick([0, 0.01, 0.05]),
      holdRate: 0.5,
      electionMs: ELECTION_MS,
    });
    const urls = Array.from({ length: this.size }, (_, i) => `m${i + 1}=https://10.0.0.${i + 1}:2380`).join(",");
    for (let i = 0; i < this.size; i++) {
      const peer = `https://10.0.0.${i + 1}:2380`;
      const cfg = parseConfig(
        [
          `--name=m${i + 1}`,
          `--data-dir=/data/m${i + 1}`,
          `--initial-cluster=${urls}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--listen-peer-urls=${peer}`,
          `--listen-client-urls=http://10.0.0.${i + 1}:2379`,
          `--advertise-client-urls=http://10.0.0.${i + 1}:2379`,
          `--heartbeat-interval=${HEARTBEAT_MS}`,
          `--election-timeout=${ELECTION_MS}`,
          `--snapshot-count=${this.snapshotCount}`,
          "--peer-cert-file=/sim/peer.crt",
          "--peer-key-file=/sim/peer.key",
          "--peer-trusted-ca-file=/sim/ca.crt",
        ],
        {},
      );
      const node: Node = { id: 0, index: i, cfg, disk: undefined as unknown as SimDisk, owner: undefined, member: undefined, started: false, incarnation: 0, restartAt: undefined, checkedCommit: 0 };
      node.disk = new SimDisk(this.world, { slowSyncRate: this.slowSyncRate, tornRate: 0.5, crashAtCallRate: this.crashAtCallRate, crashAfterSnapshotRate: 0.15 }, (owner) => {
        if (node.owner === owner) this.crash(node, "at a disk call");
      });
      this.nodes.push(node);
    }
  }

  note(s: string): void {
    if (process.env.SIM_TRACE) console.log(`[${this.world.now}] ${s}`);
    this.log.push(`[${this.world.now}] ${s}`);
    if (this.log.length > 300) this.log.shift();
  }

  /** A failure seen inside the members' callbacks: raised by the check after the current event. */
  private failure: SimFailure | undefined;

  private record(msg: string): void {
    try {
      this.fail(msg);
    } catch (e) {
      this.failure ??= e as SimFailure;
    }
  }

  fail(msg: string): never {
    throw new SimFailure(`seed ${this.seed} at ${this.world.now} ms: ${msg}\n${this.describe()}\n--- last events:\n${this.log.slice(-60).join("\n")}`);
  }

  private inside(n: Node): MemberInside | undefined {
    return n.member as unknown as MemberInside | undefined;
  }

  // ------------------------------------------------------------ members

  start(n: Node): void {
    const rng = this.world.rng;
    n.incarnation++;
    const owner = new Owner(`m${n.index + 1}#${n.incarnation}`, this.faultsOn ? rng.int(-3000, 3000) : 0, this.faultsOn ? 0.95 + rng.next() * 0.1 : 1);
    n.owner = owner;
    n.started = false;
    n.checkedCommit = 0;
    n.restartAt = undefined;
    // SIM_TRACE=1: the member's own log lines too, stamped with simulated time.
    const logger = process.env.SIM_TRACE ? pino({ level: "debug", base: undefined, timestamp: false }, { write: (line: string) => console.log(`[${this.world.now}] ${owner.name} ${line.trim()}`) }) : silent;
    const member: Member = new Member(n.cfg, undefined as unknown as ReloadingTls, logger, new Metrics(), {
      clock: this.world.clockFor(owner),
      random: () => rng.next(),
      fs: n.disk.mount(owner),
      // The member knows its ID once start() has read its data dir (or the flags).
      network: (hooks): PeerNetwork => {
        n.id = member.id;
        return this.net.attach(member.id, owner, hooks);
      },
      catchUpEntries: this.catchUpEntries ?? rng.pick([1, 5, 50]),
    });
    n.member = member;
    member.on("fatal", (e: Error) => {
      if (!owner.dead) this.record(`member m${n.index + 1} died: ${e.message}`);
    });
    member.on("leader", (lead: number) => this.note(`m${n.index + 1} sees leader ${lead === 0 ? "none" : this.name(lead)}`));
    this.note(`start m${n.index + 1} (incarnation ${n.incarnation})`);
    member.start().then(
      () => {
        if (owner.dead) return;
        n.started = true;
        this.note(`m${n.index + 1} started`);
      },
      (e: unknown) => {
        if (!owner.dead) this.record(`member m${n.index + 1} failed to start: ${e instanceof Error ? e.stack : String(e)}`);
      },
    );
  }

  crash(n: Node, why: string): void {
    if (n.owner === undefined || n.owner.dead) return;
    n.owner.dead = true;
    n.member = undefined;
    n.started = false;
    n.disk.crash();
    this.crashes++;
    this.note(`crash m${n.index + 1} ${why}`);
    n.restartAt = this.world.now + this.world.rng.int(100, 2000);
    this.world.schedule(n.restartAt, undefined, () => {
      if (n.member === undefined && n.restartAt !== undefined) this.start(n);
    });
  }

  // ------------------------------------------------------------ clients

  private startClient(c: number): void {
    const next = (): void => {
      if (!this.clientsOn) return;
      this.world.schedule(this.world.now + this.world.rng.int(0, 200), undefined, () => this.clientOp(c, next));
    };
    next();
  }

  private clientOp(c: number, next: () => void): void {
    const rng = this.world.rng;
    const up = this.nodes.filter((n) => n.started && n.member !== undefined);
    if (up.length === 0) return next();
    const n = rng.pick(up);
    const m = n.member!;
    const key = rng.pick(KEYS);
    const call = this.world.now;
    let settled = false;
    const timer = { done: false };
    this.world.schedule(call + CLIENT_TIMEOUT_MS, undefined, () => {
      if (settled) return;
      timer.done = true;
      next();
    });
    if (rng.chance(0.55)) {
      const value = `c${c}.${++this.opIds}`;
    this.note(`c${c} put ${key}=${value} via m${n.index + 1}`);
      const op: KvOperation = { id: this.opIds, client: c, call, key, input: { f: "write", value } };
      this.history.push(op);
      let p: Promise<unknown>;
      try {
        p = m.proposeKv({ type: "put", req: { key: Buffer.from(key), value: Buffer.from(value) } });
      } catch {
        p = Promise.reject(new Error("refused"));
      }
      p.then(
        (res) => {
          if (timer.done) return;
          settled = true;
          op.ret = this.world.now;
          op.output = null;
          this.note(`c${c} put ${key}=${value} acknowledged at revision ${(res as PutResponse).header.revision}`);
          this.acked.push({ key, value, revision: (res as PutResponse).header.revision });
          next();
        },
        (e: unknown) => {
          if (timer.done) return;
          // Refused before the member's request timeout: never proposed (no leader, dropped
          // proposal), so it is not part of the history; a write that timed out stays pending.
          const msg = e instanceof Error ? e.message : String(e);
          if (!/timed out/.test(msg)) this.history.splice(this.history.indexOf(op), 1);
          this.note(`c${c} put ${key}=${value} failed: ${msg}`);
          settled = true;
          next();
        },
      );
    } else {
      const id = ++this.opIds;
      this.note(`c${c} get ${key} via m${n.index + 1}`);
      let p: Promise<void>;
      try {
        p = m.readBarrier();
      } catch {
        p = Promise.reject(new Error("refused"));
      }
      p.then(
        () => {
          if (timer.done) return;
          settled = true;
          const kv = m.kv.range({ key: Buffer.from(key) }).kvs[0];
          this.history.push({ id, client: c, call, ret: this.world.now, key, input: { f: "read" }, output: { value: kv === undefined ? null : kv.value.toString() } });
          next();
        },
        () => {
          if (timer.done) return;
          settled = true;
          next();
        },
      );
    }
  }

  // ------------------------------------------------------------ faults

  private scheduleFaults(until: number): void {
    const rng = this.world.rng;
    const step = (): void => {
      if (!this.faultsOn || this.world.now >= until) return;
      const n = rng.pick(this.nodes);
      const r = rng.next();
      if (r < 0.25) this.crash(n, "(power loss)");
      else if (r < 0.5 && this.size > 1) {
        const ids = rng.shuffle(this.nodes.map((x) => x.id));
        const cut = rng.int(1, ids.length - 1);
        this.net.partition([ids.slice(0, cut), ids.slice(cut)]);
        this.note(`partition ${ids.slice(0, cut).map((id) => this.name(id))} | ${ids.slice(cut).map((id) => this.name(id))}`);
      } else if (r < 0.65) {
        this.net.heal();
        this.note("heal");
      } else if (r < 0.8 && n.owner !== undefined) {
        n.owner.pausedUntil = this.world.now + rng.int(200, 2 * ELECTION_MS);
        this.note(`pause m${n.index + 1} until ${n.owner.pausedUntil}`);
      }
      this.world.schedule(this.world.now + rng.int(300, 3000), undefined, step);
    };
    this.world.schedule(rng.int(0, 1000), undefined, step);
  }

  private name(id: number): string {
    const n = this.nodes.find((x) => x.id === id);
    return n === undefined ? String(id) : `m${n.index + 1}`;
  }

  // ------------------------------------------------------------ checks

  /** After every event. */
  private checkStep(): void {
    if (this.failure) throw this.failure;
    for (const n of this.nodes) {
      const inside = this.inside(n);
      const raft = inside?.raft;
      if (raft === undefined || n.owner?.dead) continue;
      const term = raft.leaderTerm();
      if (term !== undefined) {
        const prev = this.leaderOfTerm.get(term);
        if (prev === undefined) this.leaderOfTerm.set(term, n.id);
        else if (prev !== n.id) this.fail(`election safety: ${this.name(prev)} and m${n.index + 1} both lead term ${term}`);
      }
      const commit = raft.status().commit;
      for (let i = n.checkedCommit + 1; i <= commit; i++) {
        const t = raft.logTerm(i);
        if (t === undefined) continue;
        const seen = this.committedTerm.get(i);
        if (seen === undefined) this.committedTerm.set(i, t);
        else if (seen !== t) this.fail(`log matching: m${n.index + 1} has term ${t} at committed index ${i}, another member ${seen}`);
      }
      n.checkedCommit = Math.max(n.checkedCommit, commit);
      const applied = inside!.appliedIndex;
      if (applied > 0 && n.member !== undefined) {
        const rev = n.member.kv.revision;
        const seen = this.revisionAt.get(applied);
        if (seen === undefined) this.revisionAt.set(applied, rev);
        else if (seen !== rev) this.fail(`state machine safety: m${n.index + 1} is at revision ${rev} after applying ${applied}, another member was at ${seen}`);
      }
    }
  }

  /** After the heal: every acknowledged write is on every member at its revision, and all agree. */
  private checkFinal(): void {
    if (this.failure) throw this.failure;
    const members = this.nodes.map((n) => n.member!);
    const applied = this.nodes.map((n) => this.inside(n)!.appliedIndex);
    if (new Set(applied).size !== 1) this.fail(`members did not converge: applied ${applied.join(", ")}`);
    const hashes = members.map((m) => m.kv.hashKV(0).hash);
    if (new Set(hashes).size !== 1) this.fail(`state machine safety: members differ at applied ${applied[0]}: hashes ${hashes.join(", ")}`);
    for (const a of this.acked) {
      for (const [i, m] of members.entries()) {
        const kv = m.kv.range({ key: Buffer.from(a.key), revision: a.revision }).kvs[0];
        if (kv === undefined || kv.value.toString() !== a.value || kv.mod_revision !== a.revision) {
          this.fail(`acknowledged write lost: ${a.key}=${a.value} at revision ${a.revision} is ${kv === undefined ? "absent" : `${kv.value.toString()}@${kv.mod_revision}`} on m${i + 1}`);
        }
      }
    }
    const result = checkKvHistory(this.history, { maxSteps: 2_000_000 });
    if (result.verdict === "illegal") this.fail(`not linearizable:\n${formatKvResult(result)}`);
    if (result.verdict === "unknown") this.fail(`linearizability check gave up: ${formatKvResult(result)}`);
  }

  describe(): string {
    return this.nodes
      .map((n) => {
        const inside = this.inside(n);
        if (inside?.raft === undefined) return `  m${n.index + 1}: ${n.member === undefined ? "down" : "starting"}`;
        const st = inside.raft.status();
        return `  m${n.index + 1}: ${st.role} term=${st.term} lead=${this.name(st.lead)} commit=${st.commit} last=${st.lastIndex} applied=${inside.appliedIndex} rev=${n.member!.kv.revision}${n.owner!.pausedUntil > this.world.now ? " paused" : ""}`;
      })
      .join("\n");
  }

  // ------------------------------------------------------------ the run

  async run(chaosMs: number): Promise<SeedResult> {
    const after = (): void => this.checkStep();
    for (const n of this.nodes) this.start(n);
    for (let c = 1; c <= 4; c++) this.startClient(c);
    this.scheduleFaults(chaosMs);
    await this.world.run(chaosMs, after);

    // Heal: no more faults, everyone up, then let the clients finish and the cluster settle.
    this.faultsOn = false;
    this.clientsOn = false;
    this.net.faultsOn = false;
    this.net.heal();
    this.note("heal all, stop faults and clients");
    for (const n of this.nodes) {
      n.disk.faultsOn = false;
      if (n.owner !== undefined) n.owner.pausedUntil = 0;
      if (n.member === undefined) this.start(n);
    }
    const settleBy = this.world.now + 30_000;
    await this.world.run(settleBy, after, () => this.settled());
    if (!this.settled()) this.fail("liveness: no leader serving every member 30 s after the heal");
    // One more linearizable read of every key after everything settled (retried until a leader answers).
    for (const key of KEYS) {
      const call = this.world.now;
      let value: string | null | undefined;
      const attempt = (): void => {
        const n = this.nodes.find((x) => x.member?.isLeader()) ?? this.nodes[0];
        const m = n.member!;
        let p: Promise<void>;
        try {
          p = m.readBarrier();
        } catch (e) {
          p = Promise.reject(e);
        }
        p.then(
          () => {
            const kv = m.kv.range({ key: Buffer.from(key) }).kvs[0];
            value = kv === undefined ? null : kv.value.toString();
          },
          () => this.world.schedule(this.world.now + 100, undefined, attempt),
        );
      };
      attempt();
      await this.world.run(this.world.now + 20_000, after, () => value !== undefined);
      if (value === undefined) this.fail(`liveness: final read of ${key} not answered in 20 s`);
      this.history.push({ id: ++this.opIds, client: 0, call, ret: this.world.now, key, input: { f: "read" }, output: { value } });
    }
    await this.world.run(this.world.now + 10_000, after, () => this.settled());
    if (!this.settled()) this.fail("liveness: the members did not settle again after the final reads");
    const sum = (f: (n: Node) => number): number => this.nodes.reduce((a, n) => a + f(n), 0);
    this.checkFinal();
    return {
      seed: this.seed,
      size: this.size,
      steps: this.world.steps,
      writesAcked: this.acked.length,
      readsOk: this.history.filter((o) => o.input.f === "read").length,
      crashes: this.crashes,
      crashesAtDiskCall: sum((n) => n.disk.stats.crashesAtCall),
      tornTails: sum((n) => n.disk.stats.tornTails),
      snapshotsSaved: sum((n) => n.disk.stats.snapshotsSaved),
      snapshotsSent: this.net.snapshotsSent,
      messagesCut: this.net.cutMessages,
      simulatedMs: this.world.now,
    };
  }

  /** Every member started, one leader known to all, everything committed applied everywhere. */
  settled(): boolean {
    let lead: number | undefined;
    let commit: number | undefined;
    for (const n of this.nodes) {
      const inside = this.inside(n);
      if (!n.started || inside?.raft === undefined) return false;
      const st = inside.raft.status();
      if (st.lead === 0 || (lead !== undefined && st.lead !== lead)) return false;
      lead = st.lead;
      if (commit !== undefined && st.commit !== commit) return false;
      commit = st.commit;
      if (inside.appliedIndex !== st.commit) return false;
    }
    return true;
  }
}

export async function runMemberSeed(seed: number, chaosMs = 8000): Promise<SeedResult> {
  return new MemberSimulation(seed).run(chaosMs);
}
