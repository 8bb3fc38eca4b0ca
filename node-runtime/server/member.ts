/**
 * One raftkv member: drives the pure raft core with real time, real disk and real sockets, and
 * applies committed entries to the key-value state machine.
 *
 * The ready loop is the heart of it. Raft produces a batch; we make its state durable (one WAL
 * save, i.e. one fdatasync, for everything in the batch), then send its messages, then apply its
 * committed entries, then acknowledge it. While a batch is being persisted, new proposals and
 * messages pile up inside the raft core and become the next batch: that is the group commit, and
 * nothing on this path waits for one request at a time.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import {
  RaftNode,
  NoLeaderError,
  maySendBeforePersist,
  type ConfChange,
  type Message,
  type Ready,
  type RaftConfig,
  type Role,
} from "../raft";
import { decodeConfChange, decodeMessage, encodeMessage } from "../raft/codec";
import { EntryType, type ConfState, type Entry, type HardState, type Snapshot } from "../raft/types";
import { SnapshotStore, WriteAheadLog, nodeFs, readMeta, writeMeta, type MemberMeta, type StorageFs } from "../storage";
import { KvStore, decodeCommand, prepareCommand, type KvCommand } from "../kv";
import type { AuthApplyResult } from "../kv/auth";
import { PeerTransport, type PeerRecord } from "./transport";
import type { ReloadingTls } from "./tls";
import type { Metrics } from "./obs";
import type { ServerConfig } from "./config";
import { ConfigError } from "./config";
import { EntryKind, decodeEnvelope, encodeEnvelope } from "./envelope";
import { forwardedEntryProblem } from "./forwarded-proposal";
import { MAX_INCARNATION, RequestIds, hexId, incarnationOfRequestId, memberIdFor } from "./identity";
import { Membership, foundingMemberIds, memberContextOf, type MemberContext, type MemberInfo, type MembershipState } from "./membership";
import { queryMembers } from "./transport/members-query";
import { EtcdError, Errors } from "./errors";
import { findMismatchedPeers, type HashPeers, type KvHash } from "./corrupt-check";
import { sleep, systemClock, type Clock, type MemberEnv, type PeerNetwork, type TimerHandle } from "./member-env";
import { DEFAULT_TOKEN_TTL_SEC, SimpleTokens } from "./auth-tokens";

/** Peer payload tags: raft messages and the few member-to-member calls raft does not carry. */
const TAG_RAFT = 0;
const TAG_RPC_REQ = 1;
const TAG_RPC_RES = 2;

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
}

interface ReadBatch {
  ctx: Buffer;
  waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
  timer?: TimerHandle;
}

export interface SnapshotPayload {
  membership: MembershipState;
  kv: Uint8Array;
}

export interface MemberStatusInfo {
  id: number;
  name: string;
  clusterId: number;
  leader: number;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  isLeader: boolean;
  isLearner: boolean;
  revision: number;
  dbSize: number;
}

type RpcHandler = (body: unknown) => Promise<unknown>;

/** A registry update that is not a voting change: published client URLs, changed peer URLs. */
interface MemberAttr {
  id: number;
  name?: string;
  clientURLs?: string[];
  peerURLs?: string[];
}

export class Member extends EventEmitter {
  /**
   * This member's ID, known once start() has read the data dir: a founding member derives it
   * from --initial-cluster (as its peers do), a restarted member reads it from its data dir, and
   * a member joining an existing cluster asks the cluster for the ID `member add` gave it.
   */
  id = 0;
  clusterId = 0;
  private raft!: RaftNode;
  private wal!: WriteAheadLog;
  private snaps!: SnapshotStore;
  kv!: KvStore;
  membership!: Membership;
  private transport!: PeerNetwork;
  private tickTimer?: TimerHandle;
  private leaseTimer?: TimerHandle;
  private corruptTimer?: TimerHandle;
  private processing = false;
  private again = false;
  private stopped = false;
  /** Request IDs (waiters, read contexts, member calls): unique across restarts, see RequestIds. */
  private ids!: RequestIds;
  private readonly waiters = new Map<number, Waiter>();
  private currentRead: ReadBatch | undefined;
  private nextRead: ReadBatch | undefined;
  private readonly readsInFlight = new Map<string, ReadBatch>();
  private readonly applyWaiters: Array<{ index: number; resolve: () => void }> = [];
  private lastSnapshotIndex = 0;
  /** Index of the newest snapshot marker written to the WAL. */
  private markedIndex = 0;
  private snapshotting = false;
  /** A snapshot now durable on disk, for the ready loop to compact the raft log to. */
  private pendingCompact: Snapshot | undefined;
  private appliedIndex = 0;
  private leader = 0;
  /** Term and vote as last fsync'd. */
  private synced = { term: 0, vote: 0 };
  private unsavedHardState: HardState | undefined;
  /** Raft term and commit index as of the last Ready (cheap to read on every response). */
  private term = 0;
  private commitIndex = 0;
  private role: Role = "follower";
  /** The configuration as of the last applied entry (what a snapshot taken now covers). */
  private appliedConf: ConfState = { voters: [], learners: [] };
  private readonly rpcHandlers = new Map<string, RpcHandler>();
  private readonly rpcPending = new Map<number, Waiter>();
  private readonly revoking = new Set<string>();
  private fatal: Error | undefined;
  /**
   * Set when a committed entry could not be applied. This member then stops applying (its state
   * stays as of the entry before), raises a CORRUPT alarm for itself and answers requests with
   * etcd's "corrupt cluster"; it keeps running, voting and persisting the log, so the rest of the
   * cluster is unaffected. Never a crash: every member would crash on the same entry, forever.
   */
  private applyHalt: { index: number; reason: string } | undefined;
  readonly requestTimeoutMs: number;
  /** Time, randomness, disk and network: see member-env.ts. */
  private readonly clock: Clock;
  /** Lets the event loop run between steps of long work (snapshots), on the member's clock. */
  private readonly pause = (): Promise<void> => new Promise<void>((resolve) => this.clock.setImmediate(resolve));
  private readonly fs: StorageFs;
  /** Simple auth tokens: per-member memory, assigned as Authenticate entries are applied. */
  readonly tokens: SimpleTokens;
  /** The last index of the WAL as this process found it (entries up to it are replayed, not new). */
  private replayedUpTo = 0;

  constructor(
    readonly cfg: ServerConfig,
    private readonly peerTls: ReloadingTls,
    readonly log: Logger,
    readonly metrics: Metrics,
    private readonly env: Partial<MemberEnv> = {},
  ) {
    super();
    this.clock = env.clock ?? systemClock;
    this.fs = env.fs ?? nodeFs;
    this.requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
    this.tokens = new SimpleTokens((cfg.authTokenTtlSec ?? DEFAULT_TOKEN_TTL_SEC) * 1000);
  }

  // -------------------------------------------------------------------------------------------
  // start / stop

  async start(): Promise<void> {
    const { cfg } = this;
    await this.fs.mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
    const meta = await readMeta(cfg.dataDir, this.fs);
    if (meta !== undefined) {
      if (meta.clusterToken !== cfg.initialClusterToken) {
        throw new ConfigError(
          `data dir ${cfg.dataDir} belongs to cluster token ${JSON.stringify(meta.clusterToken)}, not --initial-cluster-token ${JSON.stringify(cfg.initialClusterToken)}`,
        );
      }
      if (meta.name !== cfg.name) throw new ConfigError(`data dir ${cfg.dataDir} belongs to member ${meta.name} (${meta.memberId}), not to ${cfg.name}`);
    }
    const { wal, recovered } = await WriteAheadLog.open(`${cfg.dataDir}/wal`, {
      logger: (msg, fields) => this.log.warn(fields ?? {}, msg),
      fs: this.fs,
    });
    this.wal = wal;
    this.snaps = new SnapshotStore(`${cfg.dataDir}/snap`, { logger: (msg, fields) => this.log.warn(fields ?? {}, msg), fs: this.fs });
    // Only the snapshot the WAL marked: a newer file without its marker (a crash inside a save or
    // an install from the leader) is not where the WAL's entries continue from.
    const snapshot = await this.snaps.loadMarked(recovered.snapshot);
    // Entries without any term on disk are the torn remains of this member's first save (the
    // founding conf changes, or a joiner's first appends: written before their hard state, in one
    // write). Restarting from part of the founding configuration would make this member a
    // cluster of its own (the core adopts a configuration when appended), so start over instead:
    // nothing was voted or acknowledged yet.
    const hasState = meta !== undefined && (snapshot !== undefined || recovered.hardState.term > 0);

    const self = cfg.initialCluster.find((m) => m.name === cfg.name)!;
    const foundingId = memberIdFor([self.peerUrl], cfg.initialClusterToken);
    let joined: ClusterView | undefined;
    if (hasState) {
      this.id = parseInt(meta.memberId, 16);
    } else if (cfg.initialClusterState === "new") {
      this.id = foundingId;
      if (meta !== undefined && meta.memberId !== hexId(this.id)) {
        throw new ConfigError(`data dir ${cfg.dataDir} belongs to member ${meta.name} (${meta.memberId}), not to the founding member ${cfg.name} (${hexId(this.id)})`);
      }
    } else {
      joined = await this.discoverSelf();
      this.id = joined.id;
    }
    const raftCfg: RaftConfig = {
      id: this.id,
      electionTick: Math.max(2, Math.round(cfg.electionTimeoutMs / cfg.heartbeatIntervalMs)),
      heartbeatTick: 1,
      random: this.env.random ?? Math.random,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 256,
      forwardProposals: true,
      // Like etcd, keep a tail of the log after a snapshot so that a follower slightly behind
      // catches up with entries rather than a whole snapshot.
      compactionKeepEntries: this.env.catchUpEntries ?? 5000,
    };
    // Request IDs (see RequestIds): this process takes the next incarnation, above the saved one
    // and above that of any own entry still in the log (which will be applied again; also
    // entries of a data dir from before incarnations were saved: their clock-based IDs map to a
    // high incarnation).
    let ownLogged = 0;
    for (const e of recovered.entries) ownLogged = Math.max(ownLogged, requestIdOf(e, this.id));
    const incarnation = Math.max((meta?.incarnation ?? 0) + 1, incarnationOfRequestId(ownLogged) + 1);
    if (incarnation > MAX_INCARNATION) throw new ConfigError(`data dir ${cfg.dataDir} has used up its request IDs (incarnation ${incarnation}, at most ${MAX_INCARNATION}); restore it from a snapshot into a new data dir`);
    this.replayedUpTo = recovered.entries.at(-1)?.index ?? 0;

    if (hasState) {
      this.restoreFromSnapshot(snapshot);
      // Without a snapshot the log from index 1 rebuilds the registry; only the founding members
      // need their URLs from the flags, to reach each other before the entry naming them applies.
      if (snapshot === undefined) {
        const founding = foundingMemberIds(recovered.entries);
        if (founding.size === 0 && cfg.initialClusterState === "existing") {
          // A joiner that saved a term (it heard from the leader) but no entry or snapshot yet:
          // its log names no member, so it would not even know where to answer the leader.
          // Ask the cluster for the member list again, as on its first start.
          const view = await this.discoverSelf(this.id);
          this.membership = Membership.fromState({ clusterId: view.clusterId, initialized: false, members: view.members, removed: [] });
        } else {
          this.membership = Membership.restart(cfg.initialCluster, cfg.initialClusterToken, founding, parseInt(meta!.clusterId, 16));
        }
      }
      this.clusterId = this.membership.clusterId;
      this.raft = RaftNode.restart(raftCfg, {
        hardState: recovered.hardState,
        ...(snapshot !== undefined ? { snapshot } : {}),
        entries: recovered.entries,
        applied: this.kv.appliedIndex,
      });
      this.log.info({ entries: recovered.entries.length, snapshotIndex: snapshot?.meta.index ?? 0, term: recovered.hardState.term }, "recovered from data dir");
    } else if (cfg.initialClusterState === "new") {
      this.membership = this.bootstrapMembership();
      this.clusterId = this.membership.clusterId;
      this.kv = this.newKv();
      this.raft = new RaftNode(raftCfg, { voters: this.membership.voters(), learners: [] });
      this.log.info({ members: this.membership.list().map((m) => m.name) }, "bootstrapping a new cluster");
    } else {
      // Joining an existing cluster: the members as a member of it listed them (with this one,
      // added but maybe not yet applied); the leader sends us the log (or a snapshot) including
      // the conf change that added us.
      const view = joined!;
      this.membership = Membership.fromState({ clusterId: view.clusterId, initialized: false, members: view.members, removed: [] });
      this.clusterId = view.clusterId;
      this.kv = this.newKv();
      this.raft = new RaftNode(raftCfg, { voters: [], learners: [] });
      this.log.info({ id: hexId(this.id), members: view.members.map((m) => hexId(m.id)) }, "joining an existing cluster");
    }
    // Saved (fsync'd) before this process hands out its first request ID.
    const metaBase: MemberMeta = meta !== undefined && meta.memberId === hexId(this.id)
      ? meta
      : { clusterToken: cfg.initialClusterToken, clusterId: hexId(this.clusterId), memberId: hexId(this.id), name: cfg.name, version: 1 };
    const saveMeta = (inc: number): Promise<void> => writeMeta(cfg.dataDir, { ...metaBase, incarnation: inc }, this.fs);
    await saveMeta(incarnation);
    this.ids = new RequestIds(incarnation, saveMeta);
    this.appliedIndex = this.kv.appliedIndex;
    this.synced = { term: recovered.hardState.term, vote: recovered.hardState.vote };
    this.term = recovered.hardState.term;
    this.commitIndex = recovered.hardState.commit;
    this.lastSnapshotIndex = snapshot?.meta.index ?? 0;
    this.markedIndex = this.lastSnapshotIndex;

    const hooks = {
      onMessage: (from: number, payload: Uint8Array) => this.onPeerPayload(from, payload),
      // Who may speak for which member ID: the membership, plus members whose addition is
      // appended but not applied yet (they must connect for that entry to commit).
      directory: () => {
        const list: PeerRecord[] = this.membership.list();
        for (const [id, url] of [...this.appendedPeers, ...this.learnedPeers]) if (!list.some((m) => m.id === id)) list.push({ id, name: "", peerURLs: [url] });
        return list;
      },
      isRemovedPeer: (id: number) => this.membership.isRemoved(id),
      onRemovedFromCluster: (by: number) => this.onRemovedByPeer(by),
    };
    this.transport = this.env.network?.(hooks) ?? new PeerTransport({
      ...hooks,
      selfId: this.id,
      clusterId: cfg.initialClusterToken,
      listen: { host: cfg.listenPeer.host, port: cfg.listenPeer.port },
      tls: this.peerTls,
      logger: this.log.child({ component: "transport" }),
      metrics: this.metrics,
      policy: { allowedCn: cfg.peerCertAllowedCn, allowedHostnames: cfg.peerCertAllowedHostname },
      // A snapshot is the store (bounded by the quota) plus the membership, serialized.
      maxSnapshotBytes: 2 * cfg.quotaBackendBytes + 64 * 1024 * 1024,
      memberList: () => this.clusterView(),
    });
    await this.transport.start();
    this.syncPeers();
    this.learnPeersAppended(recovered.entries);

    this.registerRpc();
    this.tickTimer = this.clock.setInterval(() => {
      this.raft.tick();
      this.schedule();
      if (cfg.autoPromoteLearners) this.promoteCaughtUpLearners();
      this.learnMembersIfCutOff();
    }, cfg.heartbeatIntervalMs);
    this.leaseTimer = this.clock.setInterval(() => {
      this.revokeExpiredLeases().catch((e: unknown) => this.log.warn({ err: String(e) }, "lease expiry pass failed"));
    }, 500);
    if (cfg.corruptCheckTimeMs > 0) {
      let running = false;
      this.corruptTimer = this.clock.setInterval(() => {
        if (running) return;
        running = true;
        this.periodicCorruptCheck()
          .catch((e: unknown) => this.log.warn({ err: e instanceof Error ? e.message : String(e) }, "corruption check failed"))
          .finally(() => (running = false));
      }, cfg.corruptCheckTimeMs);
    }
    this.schedule();
    void this.publishSelf();
    if (cfg.initialCorruptCheck) {
      try {
        await this.initialCorruptCheck(recovered.hardState.commit);
      } catch (e) {
        await this.stop().catch(() => undefined);
        throw e;
      }
    }
  }

  private kvOptions(): { quotaBytes: number; minLeaseTTL: number } {
    // etcd's minimum lease TTL: one and a half election timeouts, in whole seconds.
    return { quotaBytes: this.cfg.quotaBackendBytes, minLeaseTTL: Math.ceil((1.5 * this.cfg.electionTimeoutMs) / 1000) };
  }

  private newKv(): KvStore {
    return new KvStore(this.kvOptions());
  }

  private bootstrapMembership(): Membership {
    return Membership.bootstrap(this.cfg.initialCluster, this.cfg.initialClusterToken);
  }

  /**
   * What a member joining the cluster is told (see discoverSelf): the registry, plus members
   * whose addition is appended but not applied yet (a one-voter cluster commits the entry adding
   * a second voter only with the new member's vote, so it must learn its ID before that).
   */
  private clusterView(): ClusterView | undefined {
    if (this.raft === undefined) return undefined;
    const members = this.membership.list();
    for (const [id, url] of this.appendedPeers) {
      if (!members.some((m) => m.id === id)) members.push({ id, name: "", peerURLs: [url], clientURLs: [], isLearner: false });
    }
    return { id: this.id, clusterId: this.clusterId, members, appliedIndex: this.appliedIndex, removed: this.membership.toState().removed };
  }

  /**
   * A member started with --initial-cluster-state=existing and an empty data dir asks the other
   * members of --initial-cluster for the member list and finds itself by its peer URLs, as etcd's
   * GetClusterFromRemotePeers: `member add` chose its ID (with the time mixed in), so it cannot
   * derive it. Retried while the addition has not reached the members asked. With `knownId` (a
   * joiner restarting before its log named anyone) it looks itself up by ID instead.
   *
   * Every member named is asked, not only the first that answers: a member behind the others
   * (partitioned, or removed without knowing it yet) may still list an earlier, since removed
   * addition at this URL, and a joiner under that ID is never part of the cluster (member
   * simulator seed 4379). An ID that any answer lists as removed, or as started (named: it was
   * bootstrapped, this data dir is empty), is not taken: both are committed facts, final once
   * applied. Of the rest, the answer of the member that applied the most wins.
   */
  private async discoverSelf(knownId?: number): Promise<ClusterView> {
    const { cfg } = this;
    const self = cfg.initialCluster.find((m) => m.name === cfg.name)!;
    const mine = new Set([self.peerUrl, ...cfg.advertisePeerUrls]);
    const peers = cfg.initialCluster.filter((m) => m.name !== cfg.name);
    if (peers.length === 0) {
      throw new ConfigError(`--initial-cluster-state=existing: --initial-cluster must name at least one running member besides ${cfg.name} to join through`);
    }
    const deadline = this.clock.monotonic() + JOIN_DISCOVERY_MS;
    for (;;) {
      const problems: string[] = [];
      const asked = await Promise.allSettled(peers.map((p) => this.askMembers(p.peerUrl)));
      const answers: Array<{ from: string; view: ClusterView; me: MemberInfo | undefined }> = [];
      asked.forEach((r, i) => {
        const p = peers[i]!;
        if (r.status === "rejected") return void problems.push(r.reason instanceof Error ? r.reason.message : String(r.reason));
        const me = r.value.members.find((m) => (knownId === undefined ? m.peerURLs.some((u) => mine.has(u)) : m.id === knownId));
        answers.push({ from: `${p.name} (${p.peerUrl})`, view: r.value, me });
      });
      // Most applied first; equal ones in --initial-cluster order.
      answers.sort((a, b) => b.view.appliedIndex - a.view.appliedIndex);
      const removed = new Set(answers.flatMap((a) => a.view.removed));
      const started = new Set(answers.filter((a) => a.me !== undefined && a.me.name !== "").map((a) => a.me!.id));
      // A member that has not applied our removal and re-addition yet still lists the old,
      // started member at our URL: believe it only if every member asked says so (seed 2003).
      let bootstrapped: ConfigError | undefined;
      let saidBootstrapped = 0;
      for (const { from, view, me } of answers) {
        if (me === undefined) {
          problems.push(`${from} lists no member with peer URL ${[...mine].join(",")}; add it with 'member add' first`);
          continue;
        }
        if (knownId === undefined && me.name !== "") {
          bootstrapped = new ConfigError(
            `member ${hexId(me.id)} (${me.name}) with peer URL ${me.peerURLs.join(",")} has already been bootstrapped; to join with an empty data dir remove it and add it again`,
          );
          saidBootstrapped++;
          problems.push(`${from}: ${bootstrapped.message}`);
          continue;
        }
        if (knownId === undefined && (removed.has(me.id) || started.has(me.id))) {
          problems.push(`${from} lists member ${hexId(me.id)} at this peer URL, which another member lists as ${removed.has(me.id) ? "removed" : "started"}`);
          continue;
        }
        return { id: me.id, clusterId: view.clusterId, members: view.members, appliedIndex: view.appliedIndex, removed: view.removed };
      }
      if (bootstrapped !== undefined && saidBootstrapped === peers.length) throw bootstrapped;
      if (this.clock.monotonic() > deadline) throw bootstrapped ?? new ConfigError(`cannot learn this member's ID from the cluster: ${problems.join("; ")}`);
      this.log.info({ problems }, "waiting for the cluster to list this member");
      await sleep(this.clock, 500);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.isLeader() && this.membership.voters().length > 1) await this.transferLeadershipAway(this.cfg.electionTimeoutMs);
    this.stopped = true;
    this.clock.clearInterval(this.tickTimer);
    this.clock.clearInterval(this.leaseTimer);
    this.clock.clearInterval(this.corruptTimer);
    for (const [, w] of this.waiters) {
      this.clock.clearTimeout(w.timer);
      w.reject(Errors.stopped());
    }
    this.waiters.clear();
    await this.transport.stop();
    await this.waitIdle();
    await this.wal.close();
  }

  private async waitIdle(): Promise<void> {
    while (this.processing || this.snapshotting) await sleep(this.clock, 5);
  }

  // -------------------------------------------------------------------------------------------
  // the ready loop

  private schedule(): void {
    if (this.stopped || this.fatal) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    this.clock.setImmediate(() => {
      this.runReady().catch((e: unknown) => this.die(e));
    });
  }

  private async runReady(): Promise<void> {
    try {
      do {
        this.again = false;
        while (!this.stopped && this.raft.hasReady()) {
          // Compaction must not happen while a Ready is outstanding: do it between batches.
          if (this.pendingCompact) {
            this.raft.compact(this.pendingCompact);
            this.pendingCompact = undefined;
          }
          const rd = this.raft.ready();
          await this.handleReady(rd);
        }
      } while (this.again && !this.stopped);
    } finally {
      this.processing = false;
    }
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.hardState) {
      this.term = rd.hardState.term;
      this.commitIndex = rd.hardState.commit;
    }
    if (rd.softState) {
      this.role = rd.softState.role;
      this.onSoftState(rd.softState.lead);
    }
    if (rd.entries.length > 0) this.learnPeersAppended(rd.entries);
    // A leader's appends and heartbeats may leave before its own fsync: followers persist in
    // parallel with it, and the core counts the leader's copy only after advance() (see Ready).
    // Not while this Ready's term or vote is not on disk yet (a single voter elected itself).
    const early = this.role === "leader" && maySendBeforePersist(rd, this.synced);
    const deferred: Message[] = [];
    for (const m of rd.messages) {
      if (early && (m.type === "app" || m.type === "heartbeat" || m.type === "snap")) this.sendRaft(m);
      else deferred.push(m);
    }
    if (rd.snapshot) await this.installSnapshot(rd.snapshot);
    // Committed entries are already durable on a quorum, so applying them need not wait for
    // this member's own fsync below (etcd applies in parallel with its WAL write too); the
    // client waiting on a write is answered one fsync earlier.
    if (rd.committedEntries.length > 0) this.applyEntries(rd.committedEntries);
    for (const rs of rd.readStates) this.onReadState(rs.index, Buffer.from(rs.ctx));
    // Term, vote and entries must be on disk before anyone hears of them. A hard state whose
    // only change is the commit index is not worth a disk write of its own (raft re-learns the
    // commit index after a crash): it is saved with the next entries or vote.
    const hs = rd.hardState ?? this.unsavedHardState;
    if (rd.entries.length > 0 || (hs !== undefined && (hs.term !== this.synced.term || hs.vote !== this.synced.vote))) {
      const t0 = process.hrtime.bigint();
      await this.wal.save(hs, rd.entries);
      this.metrics.walFsyncDuration.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      if (hs) this.synced = { term: hs.term, vote: hs.vote };
      this.unsavedHardState = undefined;
    } else {
      this.unsavedHardState = hs;
    }
    for (const m of deferred) this.sendRaft(m);
    this.raft.advance(rd);
    this.maybeSnapshot();
  }

  private die(e: unknown): void {
    this.fatal = e instanceof Error ? e : new Error(String(e));
    this.log.fatal({ err: this.fatal }, "member stopped: storage or state-machine failure");
    this.emit("fatal", this.fatal);
  }

  private sendRaft(m: Message): void {
    const body = encodeMessage(m);
    const out = new Uint8Array(body.length + 1);
    out[0] = TAG_RAFT;
    out.set(body, 1);
    if (m.type === "snap") {
      // Snapshots take the transport's own lane; if delivery fails the leader probes again later.
      this.transport.sendSnapshot(m.to, out).catch((e: unknown) => this.log.warn({ to: hexId(m.to), err: String(e) }, "snapshot not delivered"));
    } else {
      this.transport.send(m.to, out);
    }
  }

  private onPeerPayload(from: number, payload: Uint8Array): void {
    if (this.stopped || payload.length === 0) return;
    const tag = payload[0];
    const body = payload.subarray(1);
    if (tag === TAG_RAFT) {
      let msg: Message;
      try {
        msg = decodeMessage(body);
      } catch (e) {
        this.log.warn({ from: hexId(from), err: (e as Error).message }, "dropping malformed raft message");
        return;
      }
      // The connection authenticated `from` (its certificate names that member); a message
      // claiming another sender is forged.
      if (msg.from !== from) {
        this.metrics.peerForgedMessages.inc({ From: hexId(from) });
        this.log.debug({ from: hexId(from), claimed: hexId(msg.from), type: msg.type }, "dropping raft message with a forged sender");
        return;
      }
      if (msg.type === "prop") {
        for (const e of msg.entries) {
          const problem = forwardedEntryProblem(e, from) ?? (e.type === EntryType.ConfChange && this.raft.leaderTerm() !== undefined ? this.staleConfChange(decodeConfChange(e.data)) : undefined);
          if (problem === undefined) continue;
          this.metrics.peerRejectedProposals.inc({ From: hexId(from) });
          this.log.warn({ from: hexId(from), err: problem }, "dropping a forwarded proposal that would not apply");
          return;
        }
      }
      // Decoded entries point into the transport's receive buffer; the log may keep them for a
      // long time, so copy them out rather than pin whole network chunks in memory.
      // (Buffer.from copies; Buffer#slice would only make another view.)
      if (msg.type === "app" || msg.type === "prop") for (const e of msg.entries) e.data = Buffer.from(e.data);
      else if (msg.type === "snap") msg.snapshot.data = Buffer.from(msg.snapshot.data);
      this.raft.step(msg);
      this.schedule();
    } else if (tag === TAG_RPC_REQ || tag === TAG_RPC_RES) {
      this.onRpc(from, tag, body);
    }
  }

  private onSoftState(lead: number): void {
    if (lead === this.leader) return;
    const wasLeader = this.leader === this.id;
    this.leader = lead;
    this.metrics.leaderChanges.inc();
    this.metrics.hasLeader.set(lead === 0 ? 0 : 1);
    this.metrics.isLeader.set(lead === this.id ? 1 : 0);
    this.log.info({ leader: lead === 0 ? "none" : hexId(lead), term: this.term }, "leader changed");
    if (lead === this.id) {
      this.kv.lessor.promote(this.clock.monotonic());
      if (!this.membership.initialized) {
        const state = this.membership.toState();
        this.propose(EntryKind.ClusterInit, Buffer.from(JSON.stringify(state))).catch(() => undefined);
      }
    }
    else if (wasLeader) this.kv.lessor.demote();
    // Reads waiting on a read index from a leader that is gone will not be answered.
    if (lead === 0) this.failReads(Errors.noLeader());
    this.emit("leader", lead);
  }

  // -------------------------------------------------------------------------------------------
  // applying

  private applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      if (this.applyHalt) break;
      if (e.index <= this.appliedIndex) continue;
      try {
        if (e.type === EntryType.ConfChange) this.applyConfChange(e);
        else if (e.data.length > 0) this.applyNormal(e);
        else this.kv.advance(e.index);
      } catch (err) {
        this.haltApply(e, err);
        break;
      }
      this.appliedIndex = e.index;
    }
    this.metrics.proposalsApplied.set(this.appliedIndex);
    this.metrics.proposalsCommitted.set(this.commitIndex);
    this.wakeApplyWaiters();
  }

  private wakeApplyWaiters(): void {
    while (this.applyWaiters.length > 0 && this.applyWaiters[0]!.index <= this.appliedIndex) this.applyWaiters.shift()!.resolve();
  }

  private applyNormal(e: Entry): void {
    const env = decodeEnvelope(e.data);
    let result: unknown;
    let error: Error | undefined;
    if (env.kind === EntryKind.Kv) {
      const cmd = decodeCommand(env.payload);
      const r = this.kv.apply(e.index, cmd);
      if (r.kind === "error") error = r.error;
      else if (r.kind === "ok") result = r.response;
      if (cmd.type === "leaseRevoke") this.revoking.delete(cmd.req.ID);
      // Tokens live in memory only, as etcd's: an Authenticate replayed from our own WAL after a
      // restart does not bring its token back.
      if (cmd.type === "auth" && r.kind === "ok" && !(cmd.req.op === "authenticate" && e.index <= this.replayedUpTo)) {
        this.tokens.onApplied(cmd.req.op === "authenticate" ? cmd.req.name : undefined, (r.response as { result: AuthApplyResult }).result);
      }
    } else if (env.kind === EntryKind.MemberAttr) {
      const attr = JSON.parse(Buffer.from(env.payload).toString("utf8")) as MemberAttr;
      if (attr.clientURLs !== undefined) this.membership.publish(attr.id, attr.name ?? "", attr.clientURLs);
      if (attr.peerURLs !== undefined) {
        this.membership.updatePeerUrls(attr.id, attr.peerURLs);
        this.syncPeers();
      }
      result = this.membership.list();
      this.kv.advance(e.index);
    } else {
      if (!this.membership.initialized) {
        this.membership.adoptFounding(JSON.parse(Buffer.from(env.payload).toString("utf8")) as MembershipState);
        this.clusterId = this.membership.clusterId;
        this.syncPeers();
      }
      this.kv.advance(e.index);
    }
    if (env.origin === this.id) this.settle(env.seq, result, error);
  }

  /** See applyHalt. Entries are validated before they are proposed, so only a peer's bad entry or a bug gets here. */
  private haltApply(e: Entry, err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    this.applyHalt = { index: e.index, reason };
    this.log.error(
      { index: e.index, term: e.term, appliedIndex: this.appliedIndex, err: reason },
      "cannot apply committed entry: this member stops applying and raises a CORRUPT alarm; the rest of the cluster keeps serving",
    );
    for (const [, w] of this.waiters) {
      this.clock.clearTimeout(w.timer);
      w.reject(Errors.corrupt());
    }
    this.waiters.clear();
    this.failReads(Errors.corrupt());
    void this.reportCorrupt();
  }

  /** Gets the CORRUPT alarm for this member committed by a leader that can still apply it. */
  private async reportCorrupt(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.isLeader()) await this.transferLeadershipAway(this.cfg.electionTimeoutMs);
        else if (this.leader !== 0) {
          await this.callLeader("raiseCorruptAlarm", String(this.id));
          return;
        }
      } catch {
        // retried below
      }
      await sleep(this.clock, 500);
    }
  }

  /** The cluster's alarms as applied here, plus this member's own CORRUPT alarm once it stopped applying. */
  alarms(): Array<{ memberID: string; alarm: "NONE" | "NOSPACE" | "CORRUPT" }> {
    if (this.kv === undefined) return [];
    const list = this.kv.alarms();
    const self = String(this.id);
    if (this.applyHalt && !list.some((a) => a.memberID === self && a.alarm === "CORRUPT")) list.push({ memberID: self, alarm: "CORRUPT" });
    return list;
  }

  /** Serializable reads are served locally: refuse them when local state is not trustworthy. */
  checkReadable(): void {
    this.assertServing();
  }

  /** For answers from local bookkeeping (member list, hashes): only a member still starting has none. */
  checkStarted(): void {
    if (this.raft === undefined) throw Errors.noLeader();
  }

  /**
   * The raft core has already adopted this change (configurations take effect when appended);
   * here the member registry follows it. Requests are validated before they are proposed, so a
   * committed change is always applied.
   */
  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const ctx = memberContextOf(cc);
    const cs = this.raft.applyConfChange(cc);
    this.appliedConf = cs;
    const info: MemberContext = { name: ctx.name ?? "", peerURLs: ctx.peerURLs ?? [] };
    switch (cc.type) {
      case "addNode": {
        const cur = this.membership.get(cc.nodeId);
        // The founding members' entries carry no context: keep what --initial-cluster told us.
        if (cur?.isLearner) this.membership.promote(cc.nodeId);
        else if (!cur || ctx.peerURLs !== undefined) this.membership.add(cc.nodeId, info, false);
        break;
      }
      case "addLearner":
        this.membership.add(cc.nodeId, info, true);
        break;
      case "removeNode":
        this.membership.remove(cc.nodeId);
        break;
    }
    this.syncPeers();
    this.kv.advance(e.index);
    this.log.info({ change: cc.type, member: hexId(cc.nodeId), voters: cs.voters.map(hexId), learners: cs.learners.map(hexId) }, "membership changed");
    if (ctx.origin === this.id && ctx.seq !== undefined) this.settle(ctx.seq, this.membership.list(), undefined);
    if (cc.type === "removeNode" && cc.nodeId === this.id) this.markRemoved("applied the change removing it");
  }

  private removedNoticed = false;

  private markRemoved(how: string): void {
    if (this.removedNoticed) return;
    this.removedNoticed = true;
    this.log.warn({ how }, "this member was removed from the cluster; stopping");
    this.clock.setImmediate(() => this.emit("removed"));
  }

  /** A peer that applied our removal refuses us; we may never see that entry committed ourselves. */
  private onRemovedByPeer(by: number): void {
    if (this.stopped) return;
    this.markRemoved(`peer ${hexId(by)} refused it as removed`);
  }

  /**
   * The core adopts a configuration when its entry is appended, not when it is applied: a member
   * being added must be reachable from then on, or the entry that adds it can never commit (a
   * one-voter cluster adding a voter needs the new one's vote to commit the very entry). So the
   * peer named in an appended conf change joins the transport at once; syncPeers keeps it while
   * the core's configuration has it, until the registry catches up on apply.
   */
  private learnPeersAppended(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.type !== EntryType.ConfChange) continue;
      let cc: ConfChange;
      let url: string | undefined;
      try {
        cc = decodeConfChange(e.data);
        if (cc.type === "removeNode" || cc.nodeId === this.id || cc.context.length === 0) continue;
        url = memberContextOf(cc).peerURLs?.[0];
      } catch {
        continue;
      }
      if (url === undefined || this.membership.isRemoved(cc.nodeId) || this.transport.hasPeer(cc.nodeId)) continue;
      this.appendedPeers.set(cc.nodeId, url);
      this.transport.addPeer(cc.nodeId, url);
    }
  }

  /** Peers learned from appended (not yet applied) conf changes; see learnPeersAppended. */
  private readonly appendedPeers = new Map<number, string>();

  /**
   * Members another member listed that this one's registry does not have yet: it fell behind
   * through membership changes (partitioned or down while members were added) and the members
   * it knows no longer lead. The new leader's connection is refused (not in the registry) and its
   * own messages go nowhere, so it would never catch up (member simulator seeds 2166, 10115).
   * Kept as peers until the registry has them or knows them removed.
   */
  private readonly learnedPeers = new Map<number, string>();
  private learningMembers = false;
  /** Monotonic ms since which this member has had no leader it can reach. */
  private cutOffSince: number | undefined;

  /** On each tick: after two election timeouts without a leader it can reach, ask the members it knows for the member list. */
  private learnMembersIfCutOff(): void {
    const reachable = this.leader !== 0 && (this.leader === this.id || this.transport.hasPeer(this.leader));
    if (reachable || this.stopped) {
      this.cutOffSince = undefined;
      return;
    }
    const now = this.clock.monotonic();
    this.cutOffSince ??= now;
    if (now - this.cutOffSince < 2 * this.cfg.electionTimeoutMs || this.learningMembers) return;
    this.learningMembers = true;
    this.cutOffSince = now;
    this.learnMembers()
      .catch((e: unknown) => this.log.debug({ err: e instanceof Error ? e.message : String(e) }, "asking for the member list failed"))
      .finally(() => (this.learningMembers = false));
  }

  /** The member list as the member at `peerUrl` answers it on its peer port (joins and learnMembers). */
  private async askMembers(peerUrl: string): Promise<ClusterView> {
    const { cfg } = this;
    return parseClusterView(
      await (this.env.queryMembers?.(peerUrl) ??
        queryMembers({ url: peerUrl, tls: this.peerTls, clusterId: cfg.initialClusterToken, policy: { allowedCn: cfg.peerCertAllowedCn, allowedHostnames: cfg.peerCertAllowedHostname }, timeoutMs: 5000 })),
    );
  }

  private async learnMembers(): Promise<void> {
    for (const m of this.membership.list()) {
      if (m.id === this.id || m.peerURLs.length === 0) continue;
      let view: ClusterView;
      try {
        view = await this.askMembers(m.peerURLs[0]!);
      } catch {
        continue;
      }
      if (this.stopped || view.clusterId !== this.clusterId) continue;
      // Removed while it could reach nobody (or a joiner that took an ID since removed): nothing
      // will ever connect to it again, and the removal is final.
      if (view.removed.includes(this.id)) return this.markRemoved(`member ${hexId(m.id)} lists it as removed`);
      let learned = 0;
      for (const other of view.members) {
        if (other.id === this.id || other.peerURLs.length === 0 || this.membership.has(other.id) || this.membership.isRemoved(other.id) || this.learnedPeers.has(other.id)) continue;
        this.learnedPeers.set(other.id, other.peerURLs[0]!);
        learned++;
      }
      if (learned > 0) {
        this.log.info({ from: hexId(m.id), members: [...this.learnedPeers.keys()].map(hexId) }, "learned members this member's registry does not have yet");
        this.syncPeers();
      }
      return;
    }
  }

  private syncPeers(): void {
    // A member known only by ID (a founding member replayed from the log before the entry that
    // names it) has no URL to dial yet: it joins the transport once its URL is applied.
    const want = new Map(
      this.membership
        .list()
        .filter((m) => m.id !== this.id && m.peerURLs.length > 0)
        .map((m) => [m.id, m.peerURLs[0]!] as const),
    );
    if (this.appendedPeers.size > 0) {
      const st = this.raft.status();
      const conf = new Set([...st.voters, ...st.learners]);
      for (const [id, url] of this.appendedPeers) {
        if (this.membership.has(id) || this.membership.isRemoved(id) || !conf.has(id)) this.appendedPeers.delete(id);
        else if (!want.has(id)) want.set(id, url);
      }
    }
    for (const [id, url] of this.learnedPeers) {
      if (this.membership.has(id) || this.membership.isRemoved(id)) this.learnedPeers.delete(id);
      else if (!want.has(id)) want.set(id, url);
    }
    for (const id of this.transport.stats().keys()) if (!want.has(id)) this.transport.removePeer(id);
    for (const [id, url] of want) {
      // A URL the transport cannot dial (committed by an older version that did not check it)
      // leaves that member unreachable, as etcd lists such a member unstarted; it is not an
      // apply failure, or every member would stop on the same entry.
      try {
        if (!this.transport.hasPeer(id)) this.transport.addPeer(id, url);
        else if (this.transport.stats().get(id)?.url !== url) this.transport.updatePeer(id, url);
      } catch (e) {
        this.log.warn({ member: hexId(id), url, err: e instanceof Error ? e.message : String(e) }, "member has a peer URL the transport cannot use; it stays unreachable");
      }
    }
  }

  private settle(seq: number, result: unknown, error: Error | undefined): void {
    const w = this.waiters.get(seq);
    if (!w) return;
    this.waiters.delete(seq);
    this.clock.clearTimeout(w.timer);
    if (error) w.reject(error);
    else w.resolve(result);
  }

  // -------------------------------------------------------------------------------------------
  // snapshots

  /**
   * Takes a snapshot every --snapshot-count applied entries. Only the capture of the state
   * machine's view is synchronous (it must be consistent with the applied index); encoding it
   * (in slices, with the event loop free in between: a large store takes seconds, longer than
   * an election timeout), writing the file, the WAL marker and the release of old segments
   * happen in the background while the ready loop keeps committing, and the raft log is
   * compacted by the loop once the file is durable.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.lastSnapshotIndex < this.cfg.snapshotCount) return;
    const index = this.appliedIndex;
    const term = this.raft.logTerm(index);
    if (term === undefined) return;
    const t0 = process.hrtime.bigint();
    // Copies: both may change while the store is being encoded.
    const membership = structuredClone(this.membership.toState());
    const confState = structuredClone(this.appliedConf);
    const data = this.kv.snapshotAsync(this.pause, snapshotPayloadPrefix(membership));
    const captureMs = Number(process.hrtime.bigint() - t0) / 1e6;
    this.snapshotting = true;
    this.lastSnapshotIndex = index;
    data
      .then((payload) => this.persistSnapshot({ meta: { index, term, confState }, data: payload }, captureMs, t0))
      .catch((e: unknown) => {
        // The snapshot file is only a shortcut past the WAL, which still holds every entry: a
        // file that could not be written (EMFILE, ENOSPC, any I/O error) is retried after the
        // next snapshotCount entries, and the member keeps serving. WAL failures stay fatal.
        if (e instanceof SnapshotNotSaved) return void this.log.warn({ index, err: e.message }, "snapshot not saved; the WAL keeps the entries, retrying later");
        this.die(e);
      })
      .finally(() => {
        this.snapshotting = false;
      });
  }

  private async persistSnapshot(snap: Snapshot, captureMs: number, t0: bigint): Promise<void> {
    try {
      await this.snaps.save(snap, this.pause);
    } catch (e) {
      throw new SnapshotNotSaved(e instanceof Error ? e.message : String(e));
    }
    // A newer snapshot may have been installed from the leader meanwhile.
    if (snap.meta.index <= this.markedIndex) return;
    this.markedIndex = snap.meta.index;
    await this.wal.markSnapshot(snap.meta);
    this.pendingCompact = snap;
    this.schedule();
    await this.wal.releaseTo(snap.meta.index);
    const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
    this.metrics.snapshotSaveDuration.observe(totalMs / 1000);
    this.log.info({ index: snap.meta.index, term: snap.meta.term, bytes: snap.data.length, captureMs: Math.round(captureMs), totalMs: Math.round(totalMs) }, "saved snapshot");
  }

  private async installSnapshot(snap: Snapshot): Promise<void> {
    await this.snaps.save(snap, this.pause);
    this.markedIndex = Math.max(this.markedIndex, snap.meta.index);
    this.pendingCompact = undefined;
    await this.wal.markSnapshot(snap.meta);
    this.restoreFromSnapshot(snap);
    this.clusterId = this.membership.clusterId;
    this.appliedIndex = snap.meta.index;
    this.lastSnapshotIndex = snap.meta.index;
    this.syncPeers();
    // Reads waiting for an index the snapshot covers are served from it.
    this.wakeApplyWaiters();
    this.log.info({ index: snap.meta.index, term: snap.meta.term }, "installed snapshot from leader");
  }

  private restoreFromSnapshot(snap: Snapshot | undefined): void {
    if (snap === undefined) {
      this.kv = this.newKv();
      return;
    }
    const p = decodeSnapshotPayload(snap.data);
    // In place when a store exists: watch streams and lease timers hold this object.
    if (this.kv === undefined) this.kv = KvStore.restore(p.kv, this.kvOptions());
    else this.kv.replaceState(p.kv);
    this.membership = Membership.fromState(p.membership);
    // The configuration the next snapshot records starts from this one (an installed snapshot
    // too: keeping the older one put a removed member back into every later snapshot, seed 2008).
    this.appliedConf = snap.meta.confState;
  }

  // -------------------------------------------------------------------------------------------
  // proposals

  /**
   * Replicates a key-value command and resolves with its result once applied here. Every KV
   * entry is validated here, whoever proposes it (client handlers, lease expiry, alarms): what
   * enters the log must be applicable on every member.
   */
  proposeKv(cmd: KvCommand, opts: { leaderOnly?: boolean } = {}): Promise<unknown> {
    let encoded: Buffer;
    try {
      encoded = prepareCommand(cmd, { maxRequestBytes: this.cfg.maxRequestBytes, maxTxnOps: this.cfg.maxTxnOps });
    } catch (e) {
      return Promise.reject(e);
    }
    return this.propose(EntryKind.Kv, encoded, opts);
  }

  /** `leaderOnly`: refuse rather than forward when the core is not the leader at this instant. */
  private propose(kind: EntryKind, payload: Uint8Array, opts: { leaderOnly?: boolean } = {}): Promise<unknown> {
    this.assertServing();
    const seq = this.ids.next();
    const data = encodeEnvelope(kind, this.id, seq, payload);
    return new Promise((resolve, reject) => {
      try {
        if (opts.leaderOnly && this.raft.leaderTerm() === undefined) return reject(Errors.notLeader());
        this.raft.propose(data);
      } catch (e) {
        this.metrics.proposalsFailed.inc();
        return reject(e instanceof NoLeaderError ? Errors.noLeader() : Errors.fromRaft(e));
      }
      const timer = this.clock.setTimeout(() => {
        this.waiters.delete(seq);
        this.metrics.proposalsFailed.inc();
        reject(this.leader === 0 ? Errors.noLeader() : Errors.timeout());
      }, this.requestTimeoutMs);
      this.waiters.set(seq, { resolve, reject, timer });
      this.metrics.proposalsPending.inc();
      this.schedule();
    }).finally(() => this.metrics.proposalsPending.dec());
  }

  /**
   * A conf change that no longer fits the configuration the core has now (appended): a promote
   * of a member that is not a learner any more, or an addition of a removed member. Checked where
   * it is appended, not only where it was requested: a forwarded promote that arrives after the
   * member's removal would add the removed member back as a voter (member simulator seed 12780).
   */
  private staleConfChange(cc: ConfChange): string | undefined {
    if (cc.type === "removeNode") return undefined;
    if (this.membership.isRemoved(cc.nodeId)) return `member ${hexId(cc.nodeId)} was removed`;
    // A promote carries no peer URLs (Member.proposeMemberChange); an added voter does.
    const isPromote = cc.type === "addNode" && cc.context.length > 0 && memberContextOf(cc).peerURLs === undefined;
    if (isPromote && !this.raft.status().learners.includes(cc.nodeId)) return `member ${hexId(cc.nodeId)} is not a learner`;
    return undefined;
  }

  /** Changes the voting configuration (promote = add a learner again as a voter); resolves with the new member list. */
  async proposeMemberChange(type: "addNode" | "addLearner" | "removeNode" | "promote", nodeId: number, ctx: MemberContext | undefined): Promise<MemberInfo[]> {
    this.assertServing();
    this.checkReconfiguration(type, nodeId);
    const seq = this.ids.next();
    const context = Buffer.from(JSON.stringify({ ...(ctx ?? {}), origin: this.id, seq }));
    const cc: ConfChange = { type: type === "promote" ? "addNode" : type, nodeId, context };
    if (this.raft.leaderTerm() !== undefined && this.staleConfChange(cc) !== undefined) throw type === "promote" ? Errors.memberNotLearner() : Errors.memberNotFound();
    return (await new Promise((resolve, reject) => {
      try {
        this.raft.proposeConfChange(cc);
      } catch (e) {
        return reject(e instanceof NoLeaderError ? Errors.noLeader() : Errors.fromRaft(e));
      }
      const timer = this.clock.setTimeout(() => {
        this.waiters.delete(seq);
        reject(Errors.timeout());
      }, this.requestTimeoutMs);
      this.waiters.set(seq, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.schedule();
    })) as MemberInfo[];
  }

  /**
   * etcd's strict reconfiguration check, from this member's view of its peer links: a change is
   * refused with "etcdserver: unhealthy cluster" when the voters left after it could not form a
   * quorum of connected members. Adding a voter (or promoting a learner) needs every current
   * voter connected, since the new one counts toward the quorum before it has caught up; removing
   * a member that is down is always allowed (it is not part of the active quorum).
   */
  private checkReconfiguration(type: "addNode" | "addLearner" | "removeNode" | "promote", nodeId: number): void {
    if (type === "addLearner") return;
    const voters = this.membership.voters();
    const links = this.transport.stats();
    const up = (id: number) => id === this.id || links.get(id)?.connected === true;
    if (type === "removeNode") {
      if (!voters.includes(nodeId)) return;
      if (nodeId !== this.id && !up(nodeId)) return;
      const after = voters.filter((v) => v !== nodeId);
      const active = after.filter(up).length;
      if (after.length > 0 && active < Math.floor(after.length / 2) + 1) throw Errors.unhealthyCluster();
      return;
    }
    if (!voters.every(up)) throw Errors.unhealthyCluster();
  }

  /** Changes a member's peer URLs (not a voting change, so an ordinary replicated entry). */
  async updateMemberPeerUrls(id: number, peerURLs: string[]): Promise<MemberInfo[]> {
    const attr: MemberAttr = { id, peerURLs };
    return (await this.propose(EntryKind.MemberAttr, Buffer.from(JSON.stringify(attr)))) as MemberInfo[];
  }

  /** A learner may be promoted once it has (nearly) all of the leader's log, as etcd requires. */
  async learnerReady(id: number): Promise<boolean> {
    if (!this.isLeader()) return (await this.callLeader("learnerReady", id)) as boolean;
    const st = this.raft.status();
    const pr = st.progress?.get(id);
    if (!pr) return false;
    return pr.match >= st.commit * 0.9;
  }

  /**
   * Learners promote themselves (issue 14): on every heartbeat tick the leader looks at each
   * learner's replication progress; one whose log has matched within LEARNER_CATCHUP_ENTRIES of
   * the leader's last index, in steady replication, for LEARNER_CATCHUP_TICKS consecutive ticks
   * is promoted through the normal conf-change path (one change at a time, etcd's strict
   * reconfiguration check included). A refused or failed promotion is tried again later.
   */
  private promoteCaughtUpLearners(): void {
    if (this.promoting || this.stopped || this.applyHalt || !this.isLeader()) {
      if (!this.isLeader()) this.learnerTicks.clear();
      return;
    }
    const learners = this.membership.learners();
    for (const id of this.learnerTicks.keys()) if (!learners.includes(id)) this.learnerTicks.delete(id);
    if (learners.length === 0) return;
    const st = this.raft.status();
    for (const id of learners) {
      const pr = st.progress?.get(id);
      const caughtUp = pr !== undefined && pr.state === "replicate" && st.lastIndex - pr.match <= LEARNER_CATCHUP_ENTRIES;
      const ticks = caughtUp ? (this.learnerTicks.get(id) ?? 0) + 1 : 0;
      this.learnerTicks.set(id, ticks);
      if (ticks < LEARNER_CATCHUP_TICKS) continue;
      this.promoting = true;
      this.learnerTicks.delete(id);
      this.proposeMemberChange("promote", id, undefined)
        .then(
          () => this.log.info({ member: hexId(id), match: pr!.match, lastIndex: st.lastIndex }, "promoted a caught-up learner to voter"),
          (e: unknown) => this.log.info({ member: hexId(id), err: e instanceof Error ? e.message : String(e) }, "learner promotion not done yet; will retry"),
        )
        .finally(() => (this.promoting = false));
      return;
    }
  }

  /** Consecutive heartbeat ticks each learner has been caught up (leader only). */
  private readonly learnerTicks = new Map<number, number>();
  private promoting = false;

  /** Advertises this member's client URLs to the cluster (etcd's "publish"), retrying until applied. */
  private async publishSelf(): Promise<void> {
    const clientURLs = this.cfg.advertiseClientUrls;
    while (!this.stopped) {
      const me = this.membership.get(this.id);
      if (me && me.name === this.cfg.name && sameList(me.clientURLs, clientURLs)) return;
      if (this.leader !== 0 && me) {
        try {
          const attr: MemberAttr = { id: this.id, name: this.cfg.name, clientURLs };
          await this.propose(EntryKind.MemberAttr, Buffer.from(JSON.stringify(attr)));
          continue;
        } catch {
          // retried below
        }
      }
      await sleep(this.clock, 200);
    }
  }

  // -------------------------------------------------------------------------------------------
  // linearizable reads (ReadIndex, batched: every read that arrives while one read index is in
  // flight shares the next one)

  readBarrier(): Promise<void> {
    this.assertServing();
    return new Promise((resolve, reject) => {
      if (this.leader === 0) return reject(Errors.noLeader());
      if (this.currentRead === undefined) {
        this.currentRead = { ctx: Buffer.alloc(0), waiters: [{ resolve, reject }] };
        this.issueRead(this.currentRead);
      } else {
        this.nextRead ??= { ctx: Buffer.alloc(0), waiters: [] };
        this.nextRead.waiters.push({ resolve, reject });
      }
    });
  }

  private issueRead(batch: ReadBatch): void {
    const ctx = Buffer.alloc(16);
    ctx.writeDoubleLE(this.id, 0);
    ctx.writeDoubleLE(this.ids.next(), 8);
    batch.ctx = ctx;
    this.readsInFlight.set(ctx.toString("hex"), batch);
    batch.timer = this.clock.setTimeout(() => this.finishRead(batch, this.leader === 0 ? Errors.noLeader() : Errors.timeout()), this.requestTimeoutMs);
    try {
      this.raft.readIndex(ctx);
    } catch (e) {
      this.finishRead(batch, e instanceof NoLeaderError ? Errors.noLeader() : Errors.fromRaft(e));
      return;
    }
    this.schedule();
  }

  private onReadState(index: number, ctx: Buffer): void {
    const batch = this.readsInFlight.get(ctx.toString("hex"));
    if (!batch) return;
    if (index <= this.appliedIndex) this.finishRead(batch, undefined);
    else this.waitApplied(index).then(() => this.finishRead(batch, undefined));
  }

  private waitApplied(index: number): Promise<void> {
    if (index <= this.appliedIndex) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { index, resolve };
      const at = this.applyWaiters.findIndex((x) => x.index > index);
      if (at === -1) this.applyWaiters.push(w);
      else this.applyWaiters.splice(at, 0, w);
    });
  }

  private finishRead(batch: ReadBatch, error: Error | undefined): void {
    if (!this.readsInFlight.delete(batch.ctx.toString("hex"))) return;
    this.clock.clearTimeout(batch.timer);
    for (const w of batch.waiters) error ? w.reject(error) : w.resolve();
    if (batch === this.currentRead) {
      this.currentRead = this.nextRead;
      this.nextRead = undefined;
      if (this.currentRead) this.issueRead(this.currentRead);
    }
  }

  private failReads(error: Error): void {
    for (const b of [...this.readsInFlight.values()]) this.finishRead(b, error);
    if (this.nextRead) {
      for (const w of this.nextRead.waiters) w.reject(error);
      this.nextRead = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // leases: expiry and keep-alive are the leader's; followers ask the leader over the peer link

  /**
   * Expired leases are revoked by the leader only, and only once a quorum has confirmed it still
   * leads (etcd 15247/16822): a member that silently lost leadership — its core already a
   * follower while a slow fsync is awaited, or partitioned away — has a stale lease clock. The
   * revoke is proposed only while the core itself leads in the confirmed term, so it is never
   * forwarded to another leader.
   */
  private async revokeExpiredLeases(): Promise<void> {
    if (!this.isLeader() || this.stopped || this.confirmingLeases) return;
    // Under a CORRUPT alarm every revoke would be refused: do not fill the log with retries.
    if (this.kv.alarms().some((a) => a.alarm === "CORRUPT")) return;
    const lessor = this.kv.lessor;
    const candidates = lessor.expired(this.clock.monotonic()).filter((id) => !this.revoking.has(id));
    if (candidates.length === 0) return;
    this.confirmingLeases = true;
    try {
      const term = await this.confirmLeadership();
      if (term === undefined) return;
      // Expired still, now: a keep-alive answered while leadership was being confirmed moved the
      // deadline (compared by time, not by value: a renewal can land on the very deadline a retry
      // mark would have had, seed 143).
      const now = this.clock.monotonic();
      for (const id of candidates) {
        const l = lessor.get(id);
        if (l === undefined || !lessor.isExpired(l, now) || this.revoking.has(id)) continue;
        if (this.raft.leaderTerm() !== term) return;
        this.revoking.add(id);
        this.proposeKv({ type: "leaseRevoke", req: { ID: id } }, { leaderOnly: true }).catch(() => this.revoking.delete(id));
      }
    } finally {
      this.confirmingLeases = false;
    }
  }

  private confirmingLeases = false;

  /**
   * Resolves with the term in which a quorum has just confirmed this member's leadership (a read
   * index round), or undefined if it does not lead or could not confirm it.
   */
  private async confirmLeadership(): Promise<number | undefined> {
    const term = this.raft.leaderTerm();
    if (term === undefined) return undefined;
    try {
      await this.readBarrier();
    } catch {
      return undefined;
    }
    return this.raft.leaderTerm() === term ? term : undefined;
  }

  /** Renews a lease on the leader and returns its TTL (seconds). */
  async leaseKeepAlive(id: string): Promise<number> {
    if (this.isLeader()) return this.renewAsLeader(id);
    return (await this.callLeader("leaseRenew", id)) as number;
  }

  /**
   * A keep-alive is answered only by a leader a quorum has just confirmed, never from a stale clock.
   * It takes effect where it arrives when this leader has applied everything committed by then
   * (a read index at arrival): a revoke committed while leadership is being confirmed comes after
   * it, so the keep-alive is still answered with the lease's TTL, as etcd 3.4 answers it (its renew
   * does not wait for consensus). Looking the lease up only after the confirmation answered TTL 0
   * to nearly every keep-alive sent just before a revoke (the etcd3 suite's "tears down if the
   * lease gets revoked"; etcd: TTL in 19 of 20).
   */
  private async renewAsLeader(id: string): Promise<number> {
    const onArrival = this.renewOnArrival(id);
    const term = await this.confirmLeadership();
    if (term === undefined) throw this.leader === 0 ? Errors.noLeader() : Errors.notLeader();
    try {
      return this.kv.lessor.renew(id, this.clock.monotonic());
    } catch (e) {
      if (onArrival !== undefined && this.kv.lessor.get(id) === undefined) return onArrival;
      throw e;
    }
  }

  /**
   * The arrival half of renewAsLeader: renews a live lease now if the state machine holds every
   * committed entry, so no expiry revoke is proposed while leadership is confirmed (the answer
   * renews it again, from when it is given). Undefined when the state may be behind, or the lease
   * is unknown, expired or being revoked.
   */
  private renewOnArrival(id: string): number | undefined {
    if (this.appliedIndex < this.raft.committed() || this.revoking.has(id)) return undefined;
    const now = this.clock.monotonic();
    const l = this.kv.lessor.get(id);
    if (l === undefined || (l.expiry !== undefined && l.expiry <= now)) return undefined;
    try {
      return this.kv.lessor.renew(id, now);
    } catch {
      return undefined;
    }
  }

  /** Remaining TTL (seconds) as the leader sees it; -1 when the lease does not exist. */
  async leaseRemaining(id: string): Promise<number> {
    if (this.isLeader()) return this.kv.timeToLive(id, false, this.clock.monotonic()).TTL;
    return (await this.callLeader("leaseRemaining", id)) as number;
  }

  private registerRpc(): void {
    // A member asked as the leader answers as the leader or not at all (no forwarding chains).
    this.rpcHandlers.set("leaseRenew", async (id) => this.renewAsLeader(String(id)));
    this.rpcHandlers.set("leaseRemaining", async (id) => this.leaseRemaining(String(id)));
    this.rpcHandlers.set("learnerReady", async (id) => this.learnerReady(Number(id)));
    // A member that cannot apply an entry reports itself; the alarm is committed by a member that can.
    this.rpcHandlers.set("hashKV", async (rev) => {
      this.assertServing();
      return this.localHash(Number(rev));
    });
    this.rpcHandlers.set("raiseCorruptAlarm", async (id) => {
      await this.proposeKv({ type: "alarm", req: { action: "ACTIVATE", memberID: String(id), alarm: "CORRUPT" } });
      return true;
    });
  }

  private callLeader(method: string, body: unknown): Promise<unknown> {
    const leader = this.leader;
    if (leader === 0) return Promise.reject(Errors.noLeader());
    return this.callPeer(leader, method, body);
  }

  private callPeer(peer: number, method: string, body: unknown): Promise<unknown> {
    const leader = peer;
    const seq = this.ids.next();
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.rpcPending.delete(seq);
        reject(Errors.timeout());
      }, this.requestTimeoutMs);
      this.rpcPending.set(seq, { resolve, reject, timer });
      this.transport.send(leader, Buffer.concat([Buffer.from([TAG_RPC_REQ]), Buffer.from(JSON.stringify({ seq, method, body }))]));
    });
  }

  private onRpc(from: number, tag: number, body: Uint8Array): void {
    let msg: { seq: number; method?: string; body?: unknown; ok?: boolean; error?: { code: number; message: string } };
    try {
      msg = JSON.parse(Buffer.from(body).toString("utf8")) as typeof msg;
    } catch {
      return;
    }
    if (tag === TAG_RPC_RES) {
      const w = this.rpcPending.get(msg.seq);
      if (!w) return;
      this.rpcPending.delete(msg.seq);
      this.clock.clearTimeout(w.timer);
      if (msg.ok) w.resolve(msg.body);
      else w.reject(new EtcdError(msg.error?.code ?? 2, msg.error?.message ?? "etcdserver: unknown error"));
      return;
    }
    const handler = this.rpcHandlers.get(msg.method ?? "");
    const reply = (payload: object) =>
      this.transport.send(from, Buffer.concat([Buffer.from([TAG_RPC_RES]), Buffer.from(JSON.stringify({ seq: msg.seq, ...payload }))]));
    if (!handler) return reply({ ok: false, error: { code: 12, message: `unknown member call ${String(msg.method)}` } });
    handler(msg.body).then(
      (res) => reply({ ok: true, body: res }),
      (e: unknown) => {
        const err = Errors.toEtcd(e);
        reply({ ok: false, error: { code: err.code, message: err.message } });
      },
    );
  }

  // -------------------------------------------------------------------------------------------
  // leadership and status

  // -------------------------------------------------------------------------------------------
  // corruption checks (etcd's --experimental-initial-corrupt-check / --experimental-corrupt-check-time)

  /** This member's KV hash, computed in steps with the event loop free between them. */
  private async localHash(rev = 0): Promise<KvHash> {
    const h = await this.kv.hashKVAsync(rev, this.pause);
    // The revision the hash covers: the store's when it started (it may have moved on since).
    return { hash: h.hash, compactRevision: h.compact_revision, revision: rev > 0 ? rev : h.header.revision };
  }

  private hashPeers(): HashPeers {
    return {
      local: () => this.localHash(),
      peers: () => this.membership.list().map((m) => m.id).filter((id) => id !== this.id),
      peerHash: async (id, revision) => (await this.callPeer(id, "hashKV", revision)) as KvHash,
    };
  }

  /**
   * Before serving: once the local log is applied, compare with every peer that can answer and
   * refuse to start on a difference (etcd: "found data inconsistency with peers").
   */
  private async initialCorruptCheck(commitAtStart: number): Promise<void> {
    const deadline = this.clock.monotonic() + this.requestTimeoutMs;
    while (this.appliedIndex < commitAtStart && !this.applyHalt && this.clock.monotonic() < deadline) await sleep(this.clock, 20);
    // Peers need a moment to connect after a restart.
    let result = await findMismatchedPeers(this.hashPeers());
    while (result.checked.length < this.membership.list().length - 1 && result.mismatched.length === 0 && this.clock.monotonic() < deadline) {
      await sleep(this.clock, 200);
      result = await findMismatchedPeers(this.hashPeers());
    }
    if (result.mismatched.length > 0) {
      throw new ConfigError(
        `${hexId(this.id)} found data inconsistency with peers ${result.mismatched.map(hexId).join(", ")} (hash ${result.local.hash} at revision ${result.local.revision}); not starting`,
      );
    }
    this.log.info({ revision: result.local.revision, peersChecked: result.checked.map(hexId) }, "initial corruption check passed");
  }

  /** The leader's periodic check: a follower whose data differs gets a CORRUPT alarm. */
  private async periodicCorruptCheck(): Promise<void> {
    if (!this.isLeader() || this.stopped || this.applyHalt) return;
    const { local, mismatched } = await findMismatchedPeers(this.hashPeers());
    for (const id of mismatched) {
      if (this.kv.alarms().some((a) => a.memberID === String(id) && a.alarm === "CORRUPT")) continue;
      this.log.error({ member: hexId(id), revision: local.revision, hash: local.hash }, "member's data differs from the leader's at the same revision: raising CORRUPT");
      await this.proposeKv({ type: "alarm", req: { action: "ACTIVATE", memberID: String(id), alarm: "CORRUPT" } }).catch(() => undefined);
    }
  }

  /** The applied revision, for response headers (0 while the member is still starting). */
  currentRevision(): number {
    return this.kv === undefined ? 0 : this.kv.revision;
  }

  /** The current raft term, for response headers. */
  currentTerm(): number {
    return this.term;
  }

  /** Decided by the core, not by the last Ready handled (which lags while an fsync is awaited). */
  isLeader(): boolean {
    return this.raft !== undefined && this.raft.leaderTerm() !== undefined;
  }

  leaderId(): number {
    return this.leader;
  }

  async moveLeader(target: number): Promise<void> {
    if (!this.isLeader()) throw Errors.notLeader();
    if (!this.membership.has(target) || this.membership.get(target)!.isLearner) throw Errors.badLeaderTransferee();
    this.raft.transferLeadership(target);
    this.schedule();
    const deadline = this.clock.monotonic() + this.requestTimeoutMs;
    while (this.leader !== target) {
      if (this.clock.monotonic() > deadline) throw Errors.timeoutLeaderTransfer();
      await sleep(this.clock, 20);
    }
  }

  private async transferLeadershipAway(waitMs: number): Promise<void> {
    const st = this.raft.status();
    const candidates = [...(st.progress ?? new Map()).entries()]
      .map(([id, p]) => ({ id, match: p.match }))
      .filter((p) => p.id !== this.id && this.membership.voters().includes(p.id))
      .sort((a, b) => b.match - a.match);
    const to = candidates[0];
    if (!to) return;
    this.log.info({ to: hexId(to.id) }, "transferring leadership before shutdown");
    this.raft.transferLeadership(to.id);
    this.schedule();
    const deadline = this.clock.monotonic() + waitMs;
    // Wait for the successor itself, not just for this member to step down: between the two
    // (lead = none) a proposal here has no leader to go to.
    while ((this.leader === this.id || this.leader === 0) && this.clock.monotonic() < deadline) await sleep(this.clock, 10);
  }

  status(): MemberStatusInfo {
    // The side HTTP port answers /status while start() is still opening the WAL: report an
    // empty member rather than crash the process on a raft node that does not exist yet.
    if (this.raft === undefined) {
      return { id: this.id, name: this.cfg.name, clusterId: 0, leader: 0, term: 0, commitIndex: 0, appliedIndex: 0, isLeader: false, isLearner: false, revision: 0, dbSize: 0 };
    }
    const st = this.raft.status();
    return {
      id: this.id,
      name: this.cfg.name,
      clusterId: this.clusterId,
      leader: this.leader,
      term: st.term,
      commitIndex: st.commit,
      appliedIndex: this.appliedIndex,
      isLeader: this.isLeader(),
      isLearner: this.membership.get(this.id)?.isLearner ?? false,
      revision: this.kv.revision,
      dbSize: this.kv.dbSize(),
    };
  }


  private assertServing(): void {
    // The client ports open before start() has read the data dir: until then there is no leader.
    if (this.raft === undefined) throw Errors.noLeader();
    if (this.fatal) throw Errors.stopped();
    if (this.stopped) throw Errors.stopped();
    if (this.applyHalt) throw Errors.corrupt();
  }
}

/**
 * When a learner counts as caught up (see promoteCaughtUpLearners): its log matches the leader's
 * within this many entries, in steady replication, for this many consecutive heartbeat ticks.
 */
export const LEARNER_CATCHUP_ENTRIES = 100;
export const LEARNER_CATCHUP_TICKS = 10;

/** How long a joining member keeps asking the cluster for its ID before giving up. */
const JOIN_DISCOVERY_MS = 60_000;

/** The member list as one member sees it, for a member joining the cluster. */
interface ClusterView {
  /** The answering member (in an answer) or the joining member (once found). */
  id: number;
  clusterId: number;
  members: MemberInfo[];
  /** How far the answering member has applied the log (0 from a member that does not say). */
  appliedIndex: number;
  /** Members it has applied the removal of: their IDs are never used again. */
  removed: number[];
}

function parseClusterView(v: unknown): ClusterView {
  const o = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  const isId = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x > 0;
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((u) => typeof u === "string");
  if (!isId(o.id) || typeof o.clusterId !== "number" || !Array.isArray(o.members)) throw new Error("malformed member list");
  const members = o.members.map((m: unknown): MemberInfo => {
    const r = (typeof m === "object" && m !== null ? m : {}) as Record<string, unknown>;
    if (!isId(r.id) || typeof r.name !== "string" || !isStrings(r.peerURLs) || !isStrings(r.clientURLs) || typeof r.isLearner !== "boolean") {
      throw new Error("malformed member in member list");
    }
    return { id: r.id, name: r.name, peerURLs: r.peerURLs, clientURLs: r.clientURLs, isLearner: r.isLearner };
  });
  // Optional: members of an older version answer without them.
  const appliedIndex = typeof o.appliedIndex === "number" && Number.isSafeInteger(o.appliedIndex) && o.appliedIndex >= 0 ? o.appliedIndex : 0;
  const removed = Array.isArray(o.removed) ? o.removed.filter(isId) : [];
  return { id: o.id, clusterId: o.clusterId, members, appliedIndex, removed };
}

/** The request ID this member gave `e` when it proposed it, or 0 if another member proposed it. */
function requestIdOf(e: Entry, self: number): number {
  try {
    if (e.type === EntryType.ConfChange) {
      const ctx = memberContextOf(decodeConfChange(e.data));
      return ctx.origin === self && typeof ctx.seq === "number" ? ctx.seq : 0;
    }
    if (e.data.length === 0) return 0;
    const env = decodeEnvelope(e.data);
    return env.origin === self ? env.seq : 0;
  } catch {
    return 0;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function encodeSnapshotPayload(p: SnapshotPayload): Uint8Array {
  const head = snapshotPayloadPrefix(p.membership);
  const out = Buffer.allocUnsafe(head.length + p.kv.length);
  head.copy(out, 0);
  out.set(p.kv, head.length);
  return out;
}

/** What a snapshot payload holds before the kv snapshot: the membership, length-prefixed. */
function snapshotPayloadPrefix(membership: MembershipState): Buffer {
  const ms = Buffer.from(JSON.stringify(membership), "utf8");
  const head = Buffer.allocUnsafe(4 + ms.length);
  head.writeUInt32LE(ms.length, 0);
  ms.copy(head, 4);
  return head;
}

function decodeSnapshotPayload(data: Uint8Array): SnapshotPayload {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const n = b.readUInt32LE(0);
  return { membership: JSON.parse(b.subarray(4, 4 + n).toString("utf8")) as MembershipState, kv: b.subarray(4 + n) };
}

/** The periodic snapshot file could not be written; nothing else changed (see maybeSnapshot). */
class SnapshotNotSaved extends Error {}
