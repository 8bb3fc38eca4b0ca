/**
 * Everything a Member reaches outside itself: time, randomness, the disk and the peer network.
 * Production passes nothing and gets today's code paths (node's timers and clock, node:fs, the
 * TLS PeerTransport); the whole-member simulator (test/raft/sim/member) passes a simulated clock,
 * disk and network, so one seed replays one run of the real member exactly.
 */
import type { StorageFs } from "../storage";
import type { PeerRecord } from "./transport";

/** An opaque timer handle (node's Timeout in production). */
export type TimerHandle = object;

export interface Clock {
  /**
   * The wall clock (ms). It may be set off between members and stepped at any time (the
   * simulator does both), so nothing a member decides may depend on it: request IDs use a saved
   * incarnation, deadlines the monotonic clock.
   */
  now(): number;
  /**
   * Milliseconds from an arbitrary origin that never jump, whatever the wall clock does (NTP or
   * an operator stepping it): lease deadlines and timeouts. Only its rate is trusted.
   */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(t: TimerHandle | undefined): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(t: TimerHandle | undefined): void;
  /** Runs fn after the I/O and timer callbacks already queued (the ready loop's turn). */
  setImmediate(fn: () => void): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout | undefined),
  setImmediate: (fn) => void setImmediate(fn),
};

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((r) => clock.setTimeout(r, ms));
}

/** What the member gives its peer network: where messages go and who may speak for whom. */
export interface PeerNetworkHooks {
  onMessage: (from: number, payload: Uint8Array) => void;
  /** The members as the membership knows them (plus ones appended but not yet applied). */
  directory: () => readonly PeerRecord[];
  isRemovedPeer: (id: number) => boolean;
  onRemovedFromCluster: (byPeer: number) => void;
}

/**
 * The member's view of its peer links (PeerTransport implements it): messages to one peer arrive
 * in order or not at all; snapshots travel in their own lane and may fail.
 */
export interface PeerNetwork {
  start(): Promise<void>;
  stop(): Promise<void>;
  send(to: number, payload: Uint8Array): void;
  sendSnapshot(to: number, payload: Uint8Array): Promise<void>;
  addPeer(id: number, url: string): void;
  updatePeer(id: number, url: string): void;
  removePeer(id: number): void;
  hasPeer(id: number): boolean;
  stats(): ReadonlyMap<number, { url: string; connected: boolean }>;
}

export interface MemberEnv {
  clock: Clock;
  /** Election timeout jitter. */
  random: () => number;
  fs: StorageFs;
  /** Default: the TLS PeerTransport on --listen-peer-urls with the peer certificate. */
  network?: (hooks: PeerNetworkHooks) => PeerNetwork;
  /**
   * A joining member's question to a member of --initial-cluster: its member list, as it answers
   * on its peer port. Default: the TLS members query (transport/members-query.ts).
   */
  queryMembers?: (peerUrl: string) => Promise<unknown>;
  /**
   * Log entries kept behind a snapshot for slow followers (etcd's 5000). The simulator lowers it
   * so that short runs also send and install snapshots.
   */
  catchUpEntries?: number;
}
