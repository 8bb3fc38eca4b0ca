/**
 * The Raft consensus core: a deterministic state machine with no timers, sockets, clock,
 * randomness or files of its own. The caller drives it (tick, step, propose, ...) and carries
 * out the work it hands back in a Ready batch; see `ready()` for the durability contract.
 *
 * Membership follows Ongaro's thesis §4.1 (single-server changes): a configuration takes effect
 * on every member as soon as its ConfChange entry is in the member's log (not when committed),
 * at most one change may be uncommitted, and a new leader may only propose a change after it has
 * committed an entry of its own term. The core therefore derives the configuration from the
 * log itself; `applyConfChange` only tells the caller what the configuration is at the entry it
 * is applying (for snapshot metadata and the member list it serves).
 */
import { decodeConfChange, encodeConfChange } from "./codec";
import { applyChange, assertValid } from "./conf";
import { ConfChangeInFlightError, NoLeaderError, ProposalDroppedError } from "./errors";
import { RaftLog } from "./log";
import { Progress, type ProgressState } from "./progress";
import { committedIndex, majority, voteResult } from "./quorum";
import {
  EntryType,
  NONE,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SoftState,
} from "./types";

export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before campaigning; randomized in [electionTick, 2*electionTick). */
  electionTick: number;
  /** Ticks between leader heartbeats; must be < electionTick. */
  heartbeatTick: number;
  /** Injected source of uniform numbers in [0, 1): the only randomness the core uses. */
  random: () => number;
  /** Campaign in two phases so a member that was partitioned away cannot disrupt a healthy leader. */
  preVote: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down. */
  checkQuorum: boolean;
  /** Soft limit on the entry bytes in one append (at least one entry is always sent). */
  maxSizePerMsg: number;
  /** Appends in flight per follower in replicate state. */
  maxInflightMsgs: number;
  /** Leader refuses proposals while this many entry bytes are appended but not committed. */
  maxUncommittedEntriesSize?: number;
  /** Followers forward proposals to the leader (default true); otherwise they are refused. */
  forwardProposals?: boolean;
  /** Soft limit on the bytes of committedEntries in one Ready (default unlimited). */
  maxCommittedSizePerReady?: number;
  /** On compact(), keep this many entries before the snapshot index (default 0). */
  compactionKeepEntries?: number;
}

/** What a member persisted, to restart it. */
export interface RestartState {
  hardState: HardState;
  /** The latest snapshot (meta and data), if one was taken or received. */
  snapshot?: Snapshot;
  /** Every persisted entry after the snapshot, in order (earlier ones are ignored). */
  entries: Entry[];
  /**
   * The index the caller's state machine has applied (default: the snapshot index, i.e. a
   * state machine restored from the snapshot). Committed entries after it are delivered again.
   */
  applied?: number;
}

export interface PeerProgress {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  isLearner: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  lead: NodeId;
  role: Role;
  commit: number;
  applied: number;
  lastIndex: number;
  voters: NodeId[];
  learners: NodeId[];
  /** Leader only: what it knows about each member (itself included while it is a member). */
  progress?: Map<NodeId, PeerProgress>;
  leadTransferee: NodeId;
}

interface PendingRead {
  seq: number;
  index: number;
  ctx: Uint8Array;
  from: NodeId;
  acks: Set<NodeId>;
}

const EMPTY = new Uint8Array(0);

export class RaftNode {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly log = new RaftLog();

  private term = 0;
  private vote: NodeId = NONE;
  private lead: NodeId = NONE;
  private role: Role = "follower";

  /** Configuration at log.base, and after each ConfChange entry in (base, last]. */
  private confBase: ConfState = { voters: [], learners: [] };
  private confHistory: { index: number; conf: ConfState }[] = [];
  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();
  /** The configuration as of the caller's last applyConfChange. */
  private appliedConf: ConfState = { voters: [], learners: [] };

  private prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId = NONE;
  private uncommittedSize = 0;

  private readSeq = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private readsAwaitingCommit: { ctx: Uint8Array; from: NodeId }[] = [];
  /** Reads passed on for another member, by ctx: whom to relay the answer to (bounded, oldest dropped). */
  private readonly relayedReads = new Map<string, NodeId>();

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** Proposals a follower forwards, coalesced into one message per Ready. */
  private forwardBuf: Entry[] = [];
  private forwardTo: NodeId = NONE;
  /** Leader: followers may have new entries to receive (batched until the next Ready). */
  private needBroadcast = false;
  /** Leader: the commit index moved; send it even to followers that have every entry. */
  private commitBroadcast = false;

  private prevSoft: SoftState = { lead: NONE, role: "follower" };
  private prevHard: HardState = { term: 0, vote: NONE, commit: 0 };
  private readyOutstanding = false;

  /**
   * A member of a new cluster (`voters` non-empty: every founding member must be given the same
   * lists) or a member joining an existing cluster (`voters` empty: it waits for the leader to
   * send it the log or a snapshot). A founding member's log starts with one ConfChange entry per
   * member (voters by ascending id, then learners), committed at term 1, exactly as on its peers.
   */
  constructor(cfg: RaftConfig, initial: { voters: NodeId[]; learners?: NodeId[] }) {
    validateConfig(cfg);
    this.cfg = cfg;
    this.id = cfg.id;
    const voters = [...new Set(initial.voters)].sort((a, b) => a - b);
    const learners = [...new Set(initial.learners ?? [])].filter((l) => !voters.includes(l)).sort((a, b) => a - b);
    if (voters.length > 0) {
      const changes: ConfChange[] = [
        ...voters.map((nodeId): ConfChange => ({ type: "addNode", nodeId, context: EMPTY })),
        ...learners.map((nodeId): ConfChange => ({ type: "addLearner", nodeId, context: EMPTY })),
      ];
      this.appendToLog(
        changes.map((cc, i) => ({ term: 1, index: i + 1, type: EntryType.ConfChange, data: encodeConfChange(cc) })),
      );
      this.term = 1;
      this.log.committed = changes.length;
    }
    this.resetTimers();
  }

  /** A member restarting from what it persisted. The configuration is rebuilt from the snapshot and the log. */
  static restart(cfg: RaftConfig, st: RestartState): RaftNode {
    const n = new RaftNode(cfg, { voters: [] });
    const log = n.log;
    if (st.snapshot !== undefined) {
      log.base = st.snapshot.meta.index;
      log.baseTerm = st.snapshot.meta.term;
      log.snapshot = st.snapshot;
      n.confBase = cloneConf(st.snapshot.meta.confState);
    }
    const ents = st.entries.filter((e) => e.index > log.base);
    ents.forEach((e, i) => {
      if (e.index !== log.base + 1 + i) throw new Error(`raft restart: entries not contiguous at ${e.index}`);
    });
    n.appendToLog(ents);
    n.refreshMembership();
    log.stable = log.lastIndex();
    const commit = Math.max(st.hardState.commit, log.base);
    if (commit > log.lastIndex()) throw new Error(`raft restart: commit ${commit} beyond last index ${log.lastIndex()}`);
    log.committed = commit;
    const applied = st.applied ?? log.base;
    if (applied < log.base || applied > commit) throw new Error(`raft restart: applied ${applied} outside [${log.base}, ${commit}]`);
    log.applied = applied;
    n.appliedConf = cloneConf(n.confAt(applied));
    n.term = st.hardState.term;
    n.vote = st.hardState.vote;
    n.prevHard = { term: n.term, vote: n.vote, commit };
    n.resetTimers();
    return n;
  }

  // ---------------------------------------------------------------- driving

  tick(): void {
    if (this.role === "leader") this.tickLeader();
    else this.tickElection();
  }

  /** Feed a message received from a peer. Stale or irrelevant messages are ignored. */
  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term === 0) {
      // Forwarded requests are not bound to a term.
    } else if (m.term > this.term) {
      if (m.type === "vote" || m.type === "preVote") {
        // Leader lease: while we hear from a live leader, ignore would-be disruptors (§4.2.3).
        const inLease = this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.cfg.electionTick;
        if (!m.force && inLease) return;
      }
      if (m.type === "preVote") {
        // A pre-vote never changes our term.
      } else if (m.type === "preVoteResp" && !m.reject) {
        // A grant carries the term we would campaign in; counted below.
      } else {
        const lead = m.type === "app" || m.type === "heartbeat" || m.type === "snap" ? m.from : NONE;
        this.becomeFollower(m.term, lead);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === "app" || m.type === "heartbeat")) {
        // A stale leader (e.g. after a partition) learns the new term and steps down; with
        // pre-vote it could otherwise never be deposed by our (non-incrementing) pre-votes.
        this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === "preVote") {
        this.send({ type: "preVoteResp", from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    if (m.type === "vote" || m.type === "preVote") {
      const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
      const canVote =
        this.vote === m.from ||
        (this.vote === NONE && this.lead === NONE) ||
        (m.type === "preVote" && m.term > this.term);
      if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
        this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
        if (m.type === "vote") {
          this.electionElapsed = 0;
          this.vote = m.from;
        }
      } else {
        this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (this.role) {
      case "leader":
        this.stepLeader(m);
        break;
      case "candidate":
      case "preCandidate":
        this.stepCandidate(m);
        break;
      case "follower":
        this.stepFollower(m);
        break;
    }
  }

  /**
   * Propose a state-machine command. On the leader it is appended at once and its position
   * returned; on a follower it is forwarded (undefined is returned; the entry may still be lost,
   * so the caller needs its own timeout). Throws NoLeaderError / ProposalDroppedError.
   */
  propose(data: Uint8Array): { index: number; term: number } | undefined {
    return this.proposeEntry(EntryType.Normal, data);
  }

  /** Propose a membership change. Throws ConfChangeInFlightError, InvalidConfChangeError, NoLeaderError, ... */
  proposeConfChange(cc: ConfChange): { index: number; term: number } | undefined {
    if (this.role === "leader") {
      this.checkConfChangeAllowed();
      assertValid(this.currentConf(), cc);
    }
    return this.proposeEntry(EntryType.ConfChange, encodeConfChange(cc));
  }

  /**
   * Ask for a linearizable read point. The answer arrives as a ReadState with the same ctx in a
   * later Ready (possibly never, if leadership changes: the caller retries on timeout).
   */
  readIndex(ctx: Uint8Array): void {
    if (this.role === "leader") {
      this.handleReadRequest(ctx, this.id);
      return;
    }
    if (this.lead === NONE) throw new NoLeaderError();
    this.send({ type: "readIndex", from: this.id, to: this.lead, term: 0, ctx });
  }

  /** Hand leadership to `to` (leader only): catch it up, then tell it to campaign at once. */
  transferLeadership(to: NodeId): void {
    if (this.role !== "leader") {
      if (this.lead === NONE) throw new NoLeaderError();
      throw new ProposalDroppedError("leadership transfer must be requested on the leader");
    }
    if (to === this.id) return;
    const pr = this.prs.get(to);
    if (pr === undefined || pr.isLearner) throw new ProposalDroppedError(`node ${to} is not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    // The transfer must finish within an election timeout or it is abandoned.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, false);
  }

  /**
   * The caller is applying a committed ConfChange entry: returns the configuration after it,
   * for the caller to record (e.g. in snapshot metadata). The core's own membership already
   * follows the log, so this call never changes who the core talks to.
   */
  applyConfChange(cc: ConfChange): ConfState {
    this.appliedConf = applyChange(this.appliedConf, cc);
    return cloneConf(this.appliedConf);
  }

  /**
   * The caller took a state-machine snapshot at snapshot.meta.index (≤ applied). The core keeps
   * it to send to followers that need compacted entries, and forgets the entries it covers
   * (minus `compactionKeepEntries`). The caller may then delete them from its storage too.
   */
  compact(snapshot: Snapshot): void {
    const t = this.log.termAt(snapshot.meta.index);
    if (t !== undefined && t !== snapshot.meta.term) {
      throw new Error(`raft compact: snapshot term ${snapshot.meta.term} != log term ${t} at ${snapshot.meta.index}`);
    }
    this.log.compact(snapshot, this.cfg.compactionKeepEntries ?? 0);
    let i = 0;
    while (i < this.confHistory.length && this.confHistory[i].index <= this.log.base) i++;
    if (i > 0) {
      this.confBase = this.confHistory[i - 1].conf;
      this.confHistory.splice(0, i);
    }
  }

  /**
   * Whether this core leads right now, and in which term (cheap; for callers that must not act
   * on a role they learned from an older Ready, e.g. lease expiry while a slow fsync is awaited).
   */
  leaderTerm(): number | undefined {
    return this.role === "leader" ? this.term : undefined;
  }

  /** The commit index this core knows now (it can be ahead of the last Ready's). */
  committed(): number {
    return this.log.committed;
  }

  /** The term of the entry at `index` in this member's log, if it still holds it (for tests and diagnostics). */
  logTerm(index: number): number | undefined {
    return this.log.termAt(index);
  }

  status(): Status {
    const conf = this.currentConf();
    let progress: Map<NodeId, PeerProgress> | undefined;
    if (this.role === "leader") {
      progress = new Map();
      for (const [id, pr] of this.prs) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, isLearner: pr.isLearner });
      }
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      lead: this.lead,
      role: this.role,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      voters: [...conf.voters],
      learners: [...conf.learners],
      progress,
      leadTransferee: this.leadTransferee,
    };
  }

  // ---------------------------------------------------------------- Ready

  hasReady(): boolean {
    if (this.readyOutstanding) return false;
    this.flush();
    const hs = this.hardState();
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.pendingSnapshot !== undefined ||
      this.log.stable < this.log.lastIndex() ||
      this.log.committed > Math.max(this.log.applied, this.log.base) ||
      this.lead !== this.prevSoft.lead ||
      this.role !== this.prevSoft.role ||
      !sameHard(hs, this.prevHard)
    );
  }

  /**
   * The next batch of work. The caller must, in this order:
   *
   *  1. Persist durably (fsync): `snapshot` (if any), then `entries` (overwriting any stored
   *     entries from entries[0].index on), then `hardState` (if any). A vote or term must be on
   *     disk before any message that depends on it leaves the member.
   *  2. Send `messages`. Relaxation for the leader: messages of type app, heartbeat and snap
   *     may be sent before step 1 finishes (in parallel with the leader's own fsync), because
   *     the leader counts its own log toward commit only once `advance()` confirms it durable —
   *     but only when `hardState` carries no term or vote that is not yet on disk (see
   *     `maySendBeforePersist`). Every other message must wait for step 1.
   *  3. Restore the state machine from `snapshot` (if any), then apply `committedEntries` in
   *     order (calling `applyConfChange` for ConfChange entries); hand `readStates` to waiting
   *     reads (serve each once the state machine has applied its index).
   *  4. Call `advance(rd)`.
   *
   * `ready()` may not be called again before `advance()`; tick/step/propose/readIndex may be
   * called in between (their effects appear in the next Ready).
   */
  ready(): Ready {
    if (this.readyOutstanding) throw new Error("raft: ready() called again before advance()");
    this.flush();
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      committedEntries: this.log.nextCommitted(this.cfg.maxCommittedSizePerReady ?? Infinity),
      messages: this.msgs,
      readStates: this.readStates,
    };
    if (this.lead !== this.prevSoft.lead || this.role !== this.prevSoft.role) {
      rd.softState = { lead: this.lead, role: this.role };
      this.prevSoft = rd.softState;
    }
    const hs = this.hardState();
    if (!sameHard(hs, this.prevHard)) {
      rd.hardState = hs;
      this.prevHard = hs;
    }
    if (this.log.pendingSnapshot !== undefined) {
      rd.snapshot = this.log.pendingSnapshot;
      this.log.pendingSnapshot = undefined;
    }
    this.msgs = [];
    this.readStates = [];
    this.readyOutstanding = true;
    return rd;
  }

  /** The caller finished the I/O of `rd` (see `ready()`). */
  advance(rd: Ready): void {
    if (!this.readyOutstanding) throw new Error("raft: advance() without ready()");
    this.readyOutstanding = false;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      this.log.applied = Math.max(this.log.applied, rd.committedEntries[rd.committedEntries.length - 1].index);
    }
    if (this.role === "leader") {
      const self = this.prs.get(this.id);
      if (self !== undefined && self.maybeUpdate(this.log.stable)) this.maybeCommit();
    }
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, lead: NodeId): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.role = "follower";
    this.lead = lead;
    this.reset();
  }

  private becomePreCandidate(): void {
    // Term and vote stay: a pre-vote round must not disturb anyone if it fails.
    this.role = "preCandidate";
    this.lead = NONE;
    this.reset();
  }

  private becomeCandidate(): void {
    this.term++;
    this.vote = this.id;
    this.role = "candidate";
    this.lead = NONE;
    this.reset();
  }

  private becomeLeader(): void {
    this.role = "leader";
    this.lead = this.id;
    this.reset();
    const last = this.log.lastIndex();
    for (const id of [...this.voters, ...this.learners]) {
      const pr = new Progress(last + 1, this.cfg.maxInflightMsgs, this.learners.has(id));
      if (id === this.id) {
        pr.match = this.log.stable;
        pr.becomeReplicate();
        pr.next = last + 1;
      }
      this.prs.set(id, pr);
    }
    // An entry of our own term: committing it commits everything before it (§5.4.2), and it
    // unlocks reads and membership changes.
    this.appendToLog([{ term: this.term, index: last + 1, type: EntryType.Normal, data: EMPTY }]);
    this.needBroadcast = true;
  }

  private reset(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTick + Math.floor(this.cfg.random() * this.cfg.electionTick);
    this.votes.clear();
    this.prs.clear();
    this.leadTransferee = NONE;
    this.uncommittedSize = 0;
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.needBroadcast = false;
    this.commitBroadcast = false;
  }

  private resetTimers(): void {
    this.randomizedElectionTimeout = this.cfg.electionTick + Math.floor(this.cfg.random() * this.cfg.electionTick);
  }

  /**
   * May this member start an election? Voters may; so may a member whose removal is appended but
   * not committed, because it may be the only one holding that entry (thesis §4.2.2). It then
   * campaigns among the new voters and does not count itself.
   */
  private promotable(): boolean {
    if (this.voters.has(this.id)) return true;
    const last = this.lastConfIndex();
    return last > this.log.committed && this.confAt(last - 1).voters.includes(this.id);
  }

  private campaign(kind: "pre" | "elect" | "transfer"): void {
    let voteTerm: number;
    let type: "vote" | "preVote";
    if (kind === "pre") {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
      type = "preVote";
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
      type = "vote";
    }
    if (this.poll(this.id, true)) return;
    for (const v of this.voters) {
      if (v === this.id) continue;
      this.send({
        type,
        from: this.id,
        to: v,
        term: voteTerm,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        force: kind === "transfer",
      });
    }
  }

  /** Record a vote; returns true if the round is decided (and acted upon). */
  private poll(from: NodeId, granted: boolean): boolean {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const r = voteResult(this.voters, this.votes);
    if (r === "won") {
      if (this.role === "preCandidate") this.campaign("elect");
      else this.becomeLeader();
      return true;
    }
    if (r === "lost") {
      this.becomeFollower(this.term, NONE);
      return true;
    }
    return false;
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.cfg.preVote ? "pre" : "elect");
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const pr of this.prs.values()) {
      // A snapshot send may have been lost without anyone telling us: retry after a while.
      if (pr.state === "snapshot" && ++pr.snapshotTicks >= this.cfg.electionTick) {
        pr.becomeProbe();
        this.needBroadcast = true;
      }
    }
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        let active = 0;
        for (const v of this.voters) {
          const pr = this.prs.get(v);
          if (v === this.id || (pr !== undefined && pr.recentActive)) active++;
        }
        if (active < majority(this.voters.size)) {
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const pr of this.prs.values()) pr.recentActive = false;
      }
      this.leadTransferee = NONE;
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  // ---------------------------------------------------------------- per-role steps

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "app":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case "heartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.send({ type: "heartbeatResp", from: this.id, to: m.from, term: this.term, readSeq: m.readSeq });
        break;
      case "snap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m.snapshot, m.from);
        break;
      case "timeoutNow":
        if (this.promotable()) this.campaign("transfer");
        break;
      case "prop":
        if (this.lead !== NONE && this.cfg.forwardProposals !== false) {
          for (const e of m.entries) this.forward(e);
        }
        break;
      case "readIndex":
        // A member that took us for the leader: pass its read on and relay the answer back.
        // (etcd-io/raft keeps the original sender instead; our peers drop a message whose
        // sender is not the member on the other end of the link, so we relay.)
        if (this.lead !== NONE) {
          this.rememberRelayedRead(m.ctx, m.from);
          this.send({ type: "readIndex", from: this.id, to: this.lead, term: 0, ctx: m.ctx });
        }
        break;
      case "readIndexResp": {
        const key = ctxKey(m.ctx);
        const requester = this.relayedReads.get(key);
        if (requester === undefined) {
          this.readStates.push({ index: m.index, ctx: m.ctx });
        } else {
          this.relayedReads.delete(key);
          this.send({ type: "readIndexResp", from: this.id, to: requester, term: this.term, index: m.index, ctx: m.ctx });
        }
        break;
      }
      default:
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case "app":
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        break;
      case "heartbeat":
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case "snap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m.snapshot, m.from);
        break;
      case "preVoteResp":
        if (this.role === "preCandidate") this.poll(m.from, !m.reject);
        break;
      case "voteResp":
        if (this.role === "candidate") this.poll(m.from, !m.reject);
        break;
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case "prop":
        for (const e of m.entries) {
          try {
            if (e.type === EntryType.ConfChange) {
              const cc = decodeConfChange(e.data);
              this.checkConfChangeAllowed();
              assertValid(this.currentConf(), cc);
            }
            this.appendProposal(e.type, e.data);
          } catch {
            // The follower already returned to its caller; a dropped proposal times out there.
          }
        }
        return;
      case "readIndex":
        this.handleReadRequest(m.ctx, m.from);
        return;
      default:
        break;
    }
    const pr = this.prs.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case "appResp":
        this.handleAppResp(m.from, pr, m.index, m.reject, m.rejectHint, m.logTerm);
        break;
      case "heartbeatResp":
        pr.recentActive = true;
        pr.probeSent = false;
        // Appends or their answers may have been lost: free a slot so the window cannot stay
        // full forever, and probe even with nothing new so a lost tail is noticed (the
        // follower rejects, and we fall back to probing from its match).
        if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
        if (m.readSeq > 0) this.ackReads(m.from, m.readSeq);
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- replication

  private proposeEntry(type: EntryType, data: Uint8Array): { index: number; term: number } | undefined {
    if (this.role === "leader") return this.appendProposal(type, data);
    if (this.lead === NONE) throw new NoLeaderError();
    if (this.cfg.forwardProposals === false) throw new ProposalDroppedError("proposal forwarding is disabled");
    this.forward({ term: 0, index: 0, type, data });
    return undefined;
  }

  private forward(e: Entry): void {
    if (this.forwardTo !== this.lead) this.flushForward();
    this.forwardTo = this.lead;
    this.forwardBuf.push(e);
  }

  private flushForward(): void {
    if (this.forwardBuf.length === 0) return;
    const entries = this.forwardBuf.map((e, i) => ({ term: 0, index: i, type: e.type, data: e.data }));
    this.send({ type: "prop", from: this.id, to: this.forwardTo, term: 0, entries });
    this.forwardBuf = [];
  }

  private appendProposal(type: EntryType, data: Uint8Array): { index: number; term: number } {
    if (this.leadTransferee !== NONE) throw new ProposalDroppedError("leadership transfer in progress");
    if (!this.prs.has(this.id)) throw new ProposalDroppedError("this leader is being removed from the cluster");
    const size = data.length;
    const limit = this.cfg.maxUncommittedEntriesSize;
    if (limit !== undefined && limit > 0 && this.uncommittedSize > 0 && this.uncommittedSize + size > limit) {
      throw new ProposalDroppedError("too many uncommitted entry bytes");
    }
    this.uncommittedSize += size;
    const index = this.log.lastIndex() + 1;
    this.appendToLog([{ term: this.term, index, type, data }]);
    this.needBroadcast = true;
    return { index, term: this.term };
  }

  private checkConfChangeAllowed(): void {
    if (this.lastConfIndex() > this.log.committed || this.log.termAt(this.log.committed) !== this.term) {
      throw new ConfChangeInFlightError();
    }
  }

  /** Append entries (ents[0].index ≤ last+1) and track the configuration they carry. */
  private appendToLog(ents: Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0].index;
    let confChanged = false;
    if (first <= this.log.lastIndex()) {
      while (this.confHistory.length > 0 && this.confHistory[this.confHistory.length - 1].index >= first) {
        this.confHistory.pop();
        confChanged = true;
      }
    }
    this.log.truncateAndAppend(ents);
    for (const e of ents) {
      if (e.type !== EntryType.ConfChange) continue;
      let cc: ConfChange;
      try {
        cc = decodeConfChange(e.data);
      } catch {
        continue; // Only our own encoder writes these; an undecodable one changes nothing anywhere.
      }
      this.confHistory.push({ index: e.index, conf: applyChange(this.currentConf(), cc) });
      confChanged = true;
    }
    if (confChanged) this.refreshMembership();
  }

  private refreshMembership(): void {
    const conf = this.currentConf();
    this.voters = new Set(conf.voters);
    this.learners = new Set(conf.learners);
    if (this.role !== "leader") return;
    const last = this.log.lastIndex();
    for (const id of [...this.voters, ...this.learners]) {
      const pr = this.prs.get(id);
      if (pr === undefined) {
        this.prs.set(id, new Progress(last, this.cfg.maxInflightMsgs, this.learners.has(id)));
        this.needBroadcast = true;
      } else {
        pr.isLearner = this.learners.has(id);
      }
    }
    for (const id of [...this.prs.keys()]) {
      if (!this.voters.has(id) && !this.learners.has(id)) this.prs.delete(id);
    }
    if (this.leadTransferee !== NONE && !this.voters.has(this.leadTransferee)) this.leadTransferee = NONE;
    this.maybeCommit();
  }

  private currentConf(): ConfState {
    return this.confHistory.length > 0 ? this.confHistory[this.confHistory.length - 1].conf : this.confBase;
  }

  private confAt(index: number): ConfState {
    let conf = this.confBase;
    for (const h of this.confHistory) {
      if (h.index > index) break;
      conf = h.conf;
    }
    return conf;
  }

  private lastConfIndex(): number {
    return this.confHistory.length > 0 ? this.confHistory[this.confHistory.length - 1].index : 0;
  }

  private handleAppend(m: Extract<Message, { type: "app" }>): void {
    const log = this.log;
    if (m.index < log.committed) {
      this.sendAppResp(m.from, log.committed);
      return;
    }
    if (log.matchTerm(m.index, m.logTerm)) {
      const lastNew = m.index + m.entries.length;
      const ci = log.findConflict(m.entries);
      if (ci > 0) {
        if (ci <= log.committed) throw new Error(`raft: entry ${ci} conflicts with committed entry (commit ${log.committed})`);
        const off = ci - m.entries[0].index;
        this.appendToLog(off === 0 ? m.entries : m.entries.slice(off));
      }
      log.commitTo(Math.min(m.commit, lastNew));
      this.sendAppResp(m.from, lastNew);
      return;
    }
    const [hintIndex, hintTerm] = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
    this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm });
  }

  private sendAppResp(to: NodeId, index: number): void {
    this.send({ type: "appResp", from: this.id, to, term: this.term, index, reject: false, rejectHint: 0, logTerm: 0 });
  }

  private handleSnapshot(s: Snapshot, from: NodeId): void {
    const { index, term } = s.meta;
    if (index <= this.log.committed) {
      this.sendAppResp(from, this.log.committed);
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the entries it covers: just learn that they are committed.
      this.log.commitTo(index);
      this.sendAppResp(from, this.log.committed);
      return;
    }
    this.log.restore(s);
    this.confBase = cloneConf(s.meta.confState);
    this.confHistory = [];
    this.appliedConf = cloneConf(s.meta.confState);
    this.refreshMembership();
    this.sendAppResp(from, this.log.lastIndex());
  }

  private handleAppResp(from: NodeId, pr: Progress, index: number, reject: boolean, rejectHint: number, logTerm: number): void {
    pr.recentActive = true;
    if (reject) {
      let hint = rejectHint;
      if (logTerm > 0) hint = this.log.findConflictByTerm(rejectHint, logTerm)[0];
      if (pr.maybeDecrTo(index, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(from, false);
      }
      return;
    }
    if (!pr.maybeUpdate(index)) {
      if (pr.state === "replicate") pr.inflights.freeLE(index);
      return;
    }
    if (pr.state === "probe") {
      pr.becomeReplicate();
    } else if (pr.state === "snapshot" && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === "replicate") {
      pr.inflights.freeLE(index);
    }
    this.maybeCommit();
    this.needBroadcast = true;
    if (from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(from);
  }

  /** Advance the commit index to what a quorum holds, if that entry is of our term (§5.4.2). */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const v of this.voters) matches.push(this.prs.get(v)?.match ?? 0);
    const idx = committedIndex(matches);
    const old = this.log.committed;
    if (idx <= old || this.log.termAt(idx) !== this.term) return false;
    this.log.commitTo(idx);
    for (let i = old + 1; i <= idx; i++) {
      const e = this.log.entry(i);
      if (e !== undefined && e.term === this.term) this.uncommittedSize = Math.max(0, this.uncommittedSize - e.data.length);
    }
    this.needBroadcast = true;
    this.commitBroadcast = true;
    if (this.log.termAt(old) !== this.term && this.readsAwaitingCommit.length > 0) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const r of waiting) this.handleReadRequest(r.ctx, r.from);
    }
    if (!this.voters.has(this.id) && this.lastConfIndex() <= idx) this.stepDownRemoved();
    return true;
  }

  /**
   * Our removal is committed (§4.2.2): tell everyone the commit index, hand leadership to a
   * caught-up voter if there is one, and stop leading.
   */
  private stepDownRemoved(): void {
    this.flush();
    let best: NodeId = NONE;
    for (const v of this.voters) {
      const pr = this.prs.get(v);
      if (pr !== undefined && pr.match === this.log.lastIndex()) best = v;
    }
    if (best !== NONE) this.sendTimeoutNow(best);
    this.becomeFollower(this.term, NONE);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  /** Send the next batch of entries to `to`, or a snapshot if they are compacted. Returns whether a message went out. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const last = this.log.lastIndex();
    if (pr.next > last + 1) pr.next = last + 1;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.termAt(prevIndex);
    if (prevTerm === undefined) {
      const snap = this.log.snapshot;
      if (snap === undefined) throw new Error(`raft: follower ${to} needs compacted entries but no snapshot is kept`);
      pr.becomeSnapshot(snap.meta.index);
      this.send({ type: "snap", from: this.id, to, term: this.term, snapshot: snap });
      return true;
    }
    const entries = this.log.slice(pr.next, last + 1, this.cfg.maxSizePerMsg);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: "app", from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    if (entries.length > 0 && pr.state === "replicate") {
      const lastSent = entries[entries.length - 1].index;
      pr.next = lastSent + 1;
      pr.inflights.add(lastSent);
    } else if (pr.state === "probe") {
      pr.probeSent = true;
    }
    return true;
  }

  private bcastHeartbeat(): void {
    const readSeq = this.pendingReads.length > 0 ? this.pendingReads[this.pendingReads.length - 1].seq : 0;
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      this.send({ type: "heartbeat", from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), readSeq });
    }
  }

  /** Generate the appends that batching deferred: one pass per Ready, not one per proposal. */
  private flush(): void {
    this.flushForward();
    if (this.role !== "leader" || !this.needBroadcast) return;
    const withCommit = this.commitBroadcast;
    this.needBroadcast = false;
    this.commitBroadcast = false;
    for (const id of this.prs.keys()) {
      if (id === this.id) continue;
      if (!this.sendAppend(id, withCommit)) continue;
      while (this.sendAppend(id, false)) {
        // Stream more while the follower's window allows.
      }
    }
  }

  // ---------------------------------------------------------------- reads

  private rememberRelayedRead(ctx: Uint8Array, from: NodeId): void {
    if (from === this.id || from === NONE) return;
    // An answer that never comes (leader change) leaves an entry behind; the requester retries
    // with a new ctx, so keeping the newest few hundred is enough.
    if (this.relayedReads.size >= 512) this.relayedReads.delete(this.relayedReads.keys().next().value as string);
    this.relayedReads.set(ctxKey(ctx), from);
  }

  private handleReadRequest(ctx: Uint8Array, from: NodeId): void {
    if (this.log.termAt(this.log.committed) !== this.term) {
      // Our commit index may lag what the previous leader committed until we commit in our term.
      this.readsAwaitingCommit.push({ ctx, from });
      return;
    }
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.respondRead(this.log.committed, ctx, from);
      return;
    }
    const seq = ++this.readSeq;
    this.pendingReads.push({ seq, index: this.log.committed, ctx, from, acks: new Set([this.id]) });
    this.bcastHeartbeat();
  }

  /** A heartbeat answer echoing `seq` proves we were still leader when every read up to `seq` arrived. */
  private ackReads(from: NodeId, seq: number): void {
    let released = -1;
    const q = majority(this.voters.size);
    for (let i = 0; i < this.pendingReads.length; i++) {
      const r = this.pendingReads[i];
      if (r.seq > seq) break;
      r.acks.add(from);
      let n = 0;
      for (const a of r.acks) if (this.voters.has(a)) n++;
      if (n >= q) released = i;
    }
    if (released < 0) return;
    const done = this.pendingReads.splice(0, released + 1);
    for (const r of done) this.respondRead(r.index, r.ctx, r.from);
  }

  private respondRead(index: number, ctx: Uint8Array, from: NodeId): void {
    if (from === this.id) this.readStates.push({ index, ctx });
    else this.send({ type: "readIndexResp", from: this.id, to: from, term: this.term, index, ctx });
  }

  // ---------------------------------------------------------------- helpers

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }
}

function ctxKey(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString("hex");
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

function validateConfig(cfg: RaftConfig): void {
  if (!Number.isSafeInteger(cfg.id) || cfg.id <= 0) throw new Error(`raft config: invalid id ${cfg.id}`);
  if (!(cfg.heartbeatTick >= 1)) throw new Error("raft config: heartbeatTick must be >= 1");
  if (!(cfg.electionTick > cfg.heartbeatTick)) throw new Error("raft config: electionTick must be > heartbeatTick");
  if (!(cfg.maxInflightMsgs >= 1)) throw new Error("raft config: maxInflightMsgs must be >= 1");
  if (!(cfg.maxSizePerMsg >= 1)) throw new Error("raft config: maxSizePerMsg must be >= 1");
}

/**
 * Whether a leader may send the app/heartbeat/snap messages of `rd` before `rd` is durable
 * (step 2 of the Ready contract), given the hard state already on disk. Not when `rd` carries
 * a new term or vote: a single voter becomes leader inside one Ready, so its new term is durable
 * only once this Ready is; an append that left before that fsync, followed by a crash, lets the
 * restarted member win the same term again and write a different entry at the same (index, term).
 */
export function maySendBeforePersist(rd: Ready, durable: Pick<HardState, "term" | "vote">): boolean {
  return rd.hardState === undefined || (rd.hardState.term === durable.term && rd.hardState.vote === durable.vote);
}
