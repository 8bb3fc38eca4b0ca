/**
 * Values shared by the consensus core and the code that persists and ships them (storage,
 * transport). Pure data: no behaviour, no I/O.
 */

/** A member's ID: a positive safe integer (printed as hex, like etcd's 64-bit IDs). 0 means none. */
export type NodeId = number;
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to raft: a state-machine command, an encoded ConfChange, or empty (leader no-op). */
  data: Uint8Array;
}

/** What must be durable before a vote is granted or an append acknowledged. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** What a snapshot covers: everything up to and including `index`, last written in `term`. */
export interface SnapshotMeta {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** The state machine's serialized state at meta.index. */
  data: Uint8Array;
}

/**
 * A membership change, one member at a time. A learner is promoted by `addNode` of a member
 * that is currently a learner (as in etcd); `addLearner` of a current voter is refused.
 */
export type ConfChangeType = "addNode" | "addLearner" | "removeNode";

export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to raft (the server puts the member's name and peer URLs here). */
  context: Uint8Array;
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

export interface SoftState {
  lead: NodeId;
  role: Role;
}

/** A linearizable read point: once this member has applied `index`, reads for `ctx` may be served. */
export interface ReadState {
  index: number;
  ctx: Uint8Array;
}

interface MessageBase {
  from: NodeId;
  to: NodeId;
  term: number;
}

/**
 * Everything members say to each other. `prop` and `readIndex` are forwarded requests and carry
 * term 0: they are not bound to a term.
 */
export type Message =
  /** Append: entries following (index, logTerm); commit is the leader's commit index. */
  | (MessageBase & { type: "app"; index: number; logTerm: number; entries: Entry[]; commit: number })
  /**
   * Append answer. Accepted: index is the last index now known to match. Rejected: index is the
   * rejected `app.index`, and (rejectHint, logTerm) is the follower's best guess of where the
   * logs agree, so the leader can skip a whole term per round trip.
   */
  | (MessageBase & { type: "appResp"; index: number; reject: boolean; rejectHint: number; logTerm: number })
  /** Vote request; `force` marks a campaign started by leadership transfer (bypasses the lease). */
  | (MessageBase & { type: "vote" | "preVote"; index: number; logTerm: number; force: boolean })
  | (MessageBase & { type: "voteResp" | "preVoteResp"; reject: boolean })
  /** readSeq > 0 asks the follower to echo it: a quorum of echoes confirms pending reads. */
  | (MessageBase & { type: "heartbeat"; commit: number; readSeq: number })
  | (MessageBase & { type: "heartbeatResp"; readSeq: number })
  | (MessageBase & { type: "snap"; snapshot: Snapshot })
  | (MessageBase & { type: "timeoutNow" })
  /** Proposals forwarded by a follower to its leader (term 0). */
  | (MessageBase & { type: "prop"; entries: Entry[] })
  /** A read index request forwarded by a follower (term 0). */
  | (MessageBase & { type: "readIndex"; ctx: Uint8Array })
  | (MessageBase & { type: "readIndexResp"; index: number; ctx: Uint8Array });

export type MessageType = Message["type"];

/**
 * A batch of work for the caller; see the contract on `RaftNode.ready()` in raft.ts.
 */
export interface Ready {
  /** Present when leader or role changed since the last Ready. Volatile: never persisted. */
  softState?: SoftState;
  /**
   * Present when term, vote or commit changed: persist it. While it carries a term or vote not
   * yet on disk, no message of this Ready may leave before it is durable (maySendBeforePersist).
   */
  hardState?: HardState;
  /** A snapshot received from the leader: persist it and restore the state machine from it. */
  snapshot?: Snapshot;
  /** Append durably; entries[0].index may be ≤ the stored last index: drop the stored suffix from there. */
  entries: Entry[];
  /** Apply in order, after `entries`/`hardState`/`snapshot` of this Ready are durable. */
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
}
