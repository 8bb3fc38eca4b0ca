/**
 * A seeded simulation of a raft cluster: members with a simulated disk that honours the Ready
 * contract (what was not persisted is lost on a crash), a network that drops, duplicates,
 * delays, reorders and partitions messages (always through the binary codec), and a checker
 * that asserts Raft's safety properties after every step.
 */
import { decodeConfChange, decodeMessage, encodeMessage } from "../../../node-runtime/raft/codec";
import { ConfChangeInFlightError, InvalidConfChangeError, NoLeaderError, ProposalDroppedError } from "../../../node-runtime/raft/errors";
import { RaftNode, maySendBeforePersist, type RaftConfig } from "../../../node-runtime/raft/raft";
import {
  EntryType,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Snapshot,
} from "../../../node-runtime/raft/types";
import { Rng } from "./rng";

export class SafetyViolation extends Error {
  override readonly name = "SafetyViolation";
}

export interface Disk {
  hardState: HardState;
  snapshot?: Snapshot;
  /** Entries after the snapshot index, contiguous. */
  entries: Entry[];
}

export interface SimOptions {
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  keepEntries: number;
  dropRate: number;
  dupRate: number;
  maxDelay: number;
  /** Probability that a member crashes in the middle of handling a Ready. */
  midReadyCrashRate: number;
  /**
   * Probability per tick that a client proposes between the tick and the Ready it causes (a
   * member's ready loop runs after the event loop's other callbacks, so a request can land there).
   */
  proposeAfterTickRate?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function fnv(h: number, data: Uint8Array, type: number): number {
  h = Math.imul(h ^ (type + 1), 16777619) >>> 0;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 16777619) >>> 0;
  return Math.imul(h ^ data.length, 16777619) >>> 0;
}

function dataKey(e: Entry): string {
  return `${e.type}:${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length).toString("latin1")}`;
}

export class SimMember {
  raft: RaftNode | undefined;
  disk: Disk = { hardState: { term: 0, vote: 0, commit: 0 }, entries: [] };
  /** The state machine: a hash chain over applied entries. */
  smIndex = 0;
  smHash = 2166136261;
  appliedConf: ConfState = { voters: [], learners: [] };

  constructor(readonly id: NodeId) {}

  get alive(): boolean {
    return this.raft !== undefined;
  }

  diskTermAt(i: number): number | undefined {
    const s = this.disk.snapshot;
    const base = s?.meta.index ?? 0;
    if (i === base) return s?.meta.term ?? 0;
    if (i < base) return undefined;
    return this.disk.entries[i - base - 1]?.term;
  }
}

interface InFlight {
  at: number;
  from: NodeId;
  to: NodeId;
  bytes: Uint8Array;
}

export class Simulation {
  readonly rng: Rng;
  readonly members = new Map<NodeId, SimMember>();
  now = 0;
  private net: InFlight[] = [];
  private blocked = new Set<string>();
  private faultsOn = true;
  private nextId: NodeId;
  private propSeq = 0;
  /** Members that crash in the middle of their next Ready (directed scenarios). */
  readonly crashInNextReady = new Set<NodeId>();
  /** Called after every tick, before the Readies it causes are handled (directed scenarios). */
  afterTick: (() => void) | undefined;
  private readSeq = 0;

  // checker state
  private leaderOfTerm = new Map<number, NodeId>();
  private entryAt = new Map<string, { key: string; prevTerm: number }>();
  /** index → term and state-machine hash after applying it, as first seen anywhere. */
  private applied = new Map<number, { term: number; hash: number }>();
  maxApplied = 0;
  /** proposal data → index where it was applied (acknowledged writes). */
  readonly acked = new Map<string, number>();
  private readFloors = new Map<string, number>();
  readsServed = 0;
  log: string[] = [];

  constructor(readonly seed: number, readonly opts: SimOptions, size: number) {
    this.rng = new Rng(seed);
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    this.nextId = size + 1;
    for (const id of ids) {
      const m = new SimMember(id);
      m.raft = new RaftNode(this.config(id), { voters: ids });
      this.members.set(id, m);
    }
  }

  config(id: NodeId): RaftConfig {
    const o = this.opts;
    return {
      id,
      electionTick: o.electionTick,
      heartbeatTick: o.heartbeatTick,
      random: () => this.rng.next(),
      preVote: o.preVote,
      checkQuorum: o.checkQuorum,
      maxSizePerMsg: o.maxSizePerMsg,
      maxInflightMsgs: o.maxInflightMsgs,
      maxUncommittedEntriesSize: 1 << 16,
      compactionKeepEntries: o.keepEntries,
    };
  }

  note(s: string): void {
    this.log.push(`[${this.now}] ${s}`);
    if (this.log.length > 200) this.log.shift();
  }

  fail(msg: string): never {
    throw new SafetyViolation(`seed ${this.seed} step ${this.now}: ${msg}\n${this.describe()}`);
  }

  alive(): SimMember[] {
    return [...this.members.values()].filter((m) => m.alive);
  }

  leaders(): SimMember[] {
    // Highest term first: a deposed leader that has not heard of the new term may linger.
    // leaderTerm() is status()'s role and term without building the whole status (hot path).
    return this.alive()
      .filter((m) => m.raft!.leaderTerm() !== undefined)
      .sort((a, b) => b.raft!.leaderTerm()! - a.raft!.leaderTerm()!);
  }

  setFaults(on: boolean): void {
    this.faultsOn = on;
  }

  // ------------------------------------------------------------ network

  private sendMsg(m: Message): void {
    if (this.faultsOn && this.rng.chance(this.opts.dropRate)) return;
    const bytes = encodeMessage(m);
    const copies = this.faultsOn && this.rng.chance(this.opts.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.faultsOn ? this.rng.int(1, this.opts.maxDelay) : 1;
      this.net.push({ at: this.now + delay, from: m.from, to: m.to, bytes });
    }
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Cut every link between the groups (both directions). */
  partition(groups: NodeId[][]): void {
    this.blocked.clear();
    for (const g of groups) for (const h of groups) if (g !== h) for (const a of g) for (const b of h) this.block(a, b);
    this.note(`partition ${groups.map((g) => g.join(",")).join(" | ")}`);
  }

  heal(): void {
    this.blocked.clear();
    this.note("heal");
  }

  dropInFlight(): void {
    this.net = [];
  }

  private deliver(): void {
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.net) (f.at <= this.now ? due : rest).push(f);
    this.net = rest;
    this.rng.shuffle(due);
    for (const f of due) {
      if (this.blocked.has(`${f.from}>${f.to}`)) continue;
      const m = this.members.get(f.to);
      if (m?.raft === undefined) continue;
      m.raft.step(decodeMessage(f.bytes));
    }
  }

  // ------------------------------------------------------------ members

  crash(m: SimMember): void {
    m.raft = undefined;
    this.note(`crash ${m.id}`);
  }

  restart(m: SimMember): void {
    // The state machine is volatile: it is rebuilt from the snapshot and the log.
    const s = m.disk.snapshot;
    m.smIndex = s?.meta.index ?? 0;
    m.smHash = s !== undefined ? decodeSm(s.data).hash : 2166136261;
    m.appliedConf = s !== undefined ? { voters: [...s.meta.confState.voters], learners: [...s.meta.confState.learners] } : { voters: [], learners: [] };
    m.raft = RaftNode.restart(this.config(m.id), { hardState: { ...m.disk.hardState }, snapshot: s, entries: [...m.disk.entries] });
    this.note(`restart ${m.id} term=${m.disk.hardState.term} commit=${m.disk.hardState.commit} entries=${m.disk.entries.length}`);
  }

  addMember(): SimMember {
    const m = new SimMember(this.nextId++);
    m.raft = new RaftNode(this.config(m.id), { voters: [] });
    this.members.set(m.id, m);
    return m;
  }

  // ------------------------------------------------------------ client actions

  propose(m: SimMember): void {
    const data = enc.encode(`p${++this.propSeq}`);
    try {
      m.raft!.propose(data);
    } catch (e) {
      if (!(e instanceof NoLeaderError || e instanceof ProposalDroppedError)) throw e;
    }
  }

  read(m: SimMember): void {
    const ctx = `r${++this.readSeq}`;
    try {
      m.raft!.readIndex(enc.encode(ctx));
      this.readFloors.set(ctx, this.maxApplied);
    } catch (e) {
      if (!(e instanceof NoLeaderError)) throw e;
    }
  }

  confChange(cc: ConfChange): boolean {
    const leader = this.leaders()[0];
    if (leader === undefined) return false;
    try {
      leader.raft!.proposeConfChange(cc);
      this.note(`propose ${cc.type} ${cc.nodeId} at ${leader.id}`);
      return true;
    } catch (e) {
      if (e instanceof ConfChangeInFlightError || e instanceof InvalidConfChangeError || e instanceof ProposalDroppedError) return false;
      throw e;
    }
  }

  compact(m: SimMember): void {
    const idx = m.smIndex;
    const term = m.diskTermAt(idx);
    if (idx === 0 || term === undefined || idx <= (m.disk.snapshot?.meta.index ?? 0)) return;
    const snap: Snapshot = {
      meta: { index: idx, term, confState: { voters: [...m.appliedConf.voters], learners: [...m.appliedConf.learners] } },
      data: encodeSm(idx, m.smHash),
    };
    m.raft!.compact(snap);
    const base = m.disk.snapshot?.meta.index ?? 0;
    m.disk.entries = m.disk.entries.slice(idx - base);
    m.disk.snapshot = snap;
    this.note(`compact ${m.id} at ${idx}`);
  }

  // ------------------------------------------------------------ time

  /** One unit of simulated time: deliver what is due, tick every `tickEvery` units, handle Readies. */
  step(tick: boolean): void {
    this.now++;
    this.deliver();
    if (tick) {
      for (const m of this.alive()) m.raft!.tick();
      const rate = this.opts.proposeAfterTickRate ?? 0;
      if (this.faultsOn && rate > 0 && this.rng.chance(rate)) {
        const alive = this.alive();
        if (alive.length > 0) this.propose(this.rng.pick(alive));
      }
      this.afterTick?.();
    }
    this.processReadies();
  }

  processReadies(): void {
    for (let round = 0; round < 50; round++) {
      let any = false;
      for (const m of this.alive()) {
        if (m.raft!.hasReady()) {
          any = true;
          this.handleReady(m);
        }
      }
      this.checkElectionSafety();
      if (!any) return;
    }
  }

  private handleReady(m: SimMember): void {
    const raft = m.raft!;
    const rd = raft.ready();
    if (this.crashInNextReady.delete(m.id) || (this.faultsOn && this.rng.chance(this.opts.midReadyCrashRate))) {
      // Crash before the disk write finished. A leader may already have sent its appends, as
      // far as the Ready contract allows.
      if (raft.status().role === "leader" && maySendBeforePersist(rd, m.disk.hardState)) {
        for (const msg of rd.messages) if (msg.type === "app" || msg.type === "heartbeat" || msg.type === "snap") this.sendMsg(msg);
      }
      this.crash(m);
      return;
    }
    this.persist(m, rd);
    if (rd.softState?.role === "leader") this.checkLeaderCompleteness(m);
    for (const msg of rd.messages) this.sendMsg(msg);
    if (rd.snapshot !== undefined) {
      const sm = decodeSm(rd.snapshot.data);
      if (sm.index !== rd.snapshot.meta.index) this.fail(`snapshot data index ${sm.index} != meta ${rd.snapshot.meta.index}`);
      this.checkApplied(m, sm.index, rd.snapshot.meta.term, sm.hash);
      m.smIndex = sm.index;
      m.smHash = sm.hash;
      m.appliedConf = { voters: [...rd.snapshot.meta.confState.voters], learners: [...rd.snapshot.meta.confState.learners] };
    }
    for (const e of rd.committedEntries) {
      if (e.index !== m.smIndex + 1) this.fail(`member ${m.id} applies ${e.index} after ${m.smIndex}`);
      m.smHash = fnv(m.smHash, e.data, e.type);
      m.smIndex = e.index;
      this.checkApplied(m, e.index, e.term, m.smHash);
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        m.appliedConf = raft.applyConfChange(cc);
      } else if (e.data.length > 0) {
        const key = dec.decode(e.data);
        if (!this.acked.has(key)) this.acked.set(key, e.index);
      }
    }
    for (const rs of rd.readStates) {
      const ctx = dec.decode(rs.ctx);
      const floor = this.readFloors.get(ctx);
      if (floor === undefined) this.fail(`read state for unknown ctx ${ctx}`);
      if (rs.index < floor) this.fail(`read ${ctx} at index ${rs.index} misses a write acknowledged at ${floor} (stale read)`);
      this.readsServed++;
    }
    raft.advance(rd);
  }

  /** Write what the Ready asks, checking log matching on the way: (index, term) fixes the entry and its predecessor's term. */
  private persist(m: SimMember, rd: Ready): void {
    const d = m.disk;
    if (rd.snapshot !== undefined) {
      d.snapshot = rd.snapshot;
      d.entries = [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      const base = d.snapshot?.meta.index ?? 0;
      if (first <= base) this.fail(`member ${m.id} writes entry ${first} below its snapshot ${base}`);
      if (first - base - 1 > d.entries.length) this.fail(`member ${m.id} leaves a gap writing ${first}`);
      let prevTerm = m.diskTermAt(first - 1)!;
      d.entries.length = first - base - 1;
      for (const e of rd.entries) {
        const k = `${e.index}:${e.term}`;
        const seen = this.entryAt.get(k);
        const key = dataKey(e);
        if (seen === undefined) this.entryAt.set(k, { key, prevTerm });
        else if (seen.key !== key || seen.prevTerm !== prevTerm) this.fail(`log matching: two different entries at index ${e.index} term ${e.term}`);
        d.entries.push(e);
        prevTerm = e.term;
      }
    }
    if (rd.hardState !== undefined) d.hardState = { ...rd.hardState };
  }

  private checkApplied(m: SimMember, index: number, term: number, hash: number): void {
    const seen = this.applied.get(index);
    if (seen === undefined) {
      this.applied.set(index, { term, hash });
      if (index > this.maxApplied) this.maxApplied = index;
    } else if (seen.hash !== hash || seen.term !== term) {
      this.fail(`state machine safety: member ${m.id} applied a different entry/state at index ${index}`);
    }
  }

  private checkElectionSafety(): void {
    for (const m of this.alive()) {
      const term = m.raft!.leaderTerm();
      if (term === undefined) continue;
      const prev = this.leaderOfTerm.get(term);
      if (prev === undefined) this.leaderOfTerm.set(term, m.id);
      else if (prev !== m.id) this.fail(`election safety: ${prev} and ${m.id} both leaders of term ${term}`);
    }
  }

  /** A new leader holds every entry anyone has applied (applied implies committed). */
  private checkLeaderCompleteness(m: SimMember): void {
    const raft = m.raft!;
    if (raft.status().lastIndex < this.maxApplied) this.fail(`leader completeness: leader ${m.id} lacks committed index ${this.maxApplied}`);
    for (let i = this.maxApplied; i > 0; i--) {
      const t = raft.logTerm(i);
      if (t === undefined) break;
      if (t !== this.applied.get(i)!.term) this.fail(`leader completeness: leader ${m.id} has term ${t} at committed index ${i}`);
    }
  }

  /** Every member's state, for failure reports. */
  describe(): string {
    const lines: string[] = [];
    for (const m of this.members.values()) {
      const st = m.raft?.status();
      if (st === undefined) {
        lines.push(`  ${m.id}: down`);
        continue;
      }
      let line = `  ${m.id}: ${st.role} term=${st.term} vote=${st.vote} lead=${st.lead} commit=${st.commit} last=${st.lastIndex} lastTerm=${m.raft!.logTerm(st.lastIndex)} applied=${m.smIndex} voters=${st.voters} learners=${st.learners}`;
      if (st.progress !== undefined) {
        for (const [id, p] of st.progress) line += `\n      ${id}: ${p.state} match=${p.match} next=${p.next} active=${p.recentActive}`;
      }
      lines.push(line);
    }
    return lines.join("\n");
  }

  proposalsMade(): number {
    return this.propSeq;
  }

  maxAppliedTerm(): number {
    let t = 0;
    for (const a of this.applied.values()) t = Math.max(t, a.term);
    return t;
  }

  maxCommit(): number {
    let c = 0;
    for (const m of this.alive()) c = Math.max(c, m.raft!.status().commit);
    return c;
  }
}

function encodeSm(index: number, hash: number): Uint8Array {
  return enc.encode(JSON.stringify({ index, hash }));
}

function decodeSm(b: Uint8Array): { index: number; hash: number } {
  return JSON.parse(dec.decode(b)) as { index: number; hash: number };
}
