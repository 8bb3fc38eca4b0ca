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
