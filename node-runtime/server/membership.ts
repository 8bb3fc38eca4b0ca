/**
 * The cluster's member registry: names, URLs and learner flags by ID. It is state-machine state —
 * changed only by applying committed conf changes and member-attribute entries — so every member
 * holds the same registry, and it travels inside snapshots.
 */
import type { InitialClusterMember } from "../../components/topology";
import { decodeConfChange } from "../raft/codec";
import { EntryType, type Entry } from "../raft/types";
import { clusterIdFor, memberIdFor } from "./identity";

export interface MemberInfo {
  id: number;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** What a conf change carries in its context: the member as MemberAdd described it. */
export interface MemberContext {
  name: string;
  peerURLs: string[];
}

/** A conf change's context as its proposer wrote it ({} when empty). Throws on malformed JSON. */
export function memberContextOf(cc: { context: Uint8Array }): Partial<MemberContext> & { origin?: number; seq?: number } {
  return cc.context.length > 0 ? (JSON.parse(Buffer.from(cc.context).toString("utf8")) as Partial<MemberContext> & { origin?: number; seq?: number }) : {};
}

export interface MembershipState {
  clusterId: number;
  /** Whether the founding membership has been committed to the log (see EntryKind.ClusterInit). */
  initialized: boolean;
  members: MemberInfo[];
  removed: number[];
}

export class Membership {
  private readonly members = new Map<number, MemberInfo>();
  private readonly removed = new Set<number>();
  initialized = false;

  private constructor(public clusterId: number) {}

  static bootstrap(initial: readonly InitialClusterMember[], token: string): Membership {
    const ids = initial.map((m) => memberIdFor([m.peerUrl], token));
    const ms = new Membership(clusterIdFor(ids, token));
    initial.forEach((m, i) => {
      ms.members.set(ids[i]!, { id: ids[i]!, name: m.name, peerURLs: [m.peerUrl], clientURLs: [], isLearner: false });
    });
    return ms;
  }

  /**
   * The registry a member restarting without a snapshot starts from, before its log (from index
   * 1) is applied again: the founding members (`foundingIds`, from the log's first entries) with
   * the URLs --initial-cluster gives them, so they can reach each other before the entry naming
   * them applies. Anyone else --initial-cluster lists is left to the log: a member added at run
   * time has an ID its URL does not derive, and listing it under a derived one would invent a
   * member that no entry ever removes.
   */
  static restart(initial: readonly InitialClusterMember[], token: string, foundingIds: ReadonlySet<number>, clusterId: number): Membership {
    const boot = Membership.bootstrap(initial, token);
    const ms = new Membership(clusterId);
    for (const m of boot.list()) if (foundingIds.has(m.id)) ms.members.set(m.id, m);
    return ms;
  }

  static fromState(s: MembershipState): Membership {
    const ms = new Membership(s.clusterId);
    for (const m of s.members) ms.members.set(m.id, { ...m, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] });
    for (const id of s.removed) ms.removed.add(id);
    ms.initialized = s.initialized;
    return ms;
  }

  toState(): MembershipState {
    return { clusterId: this.clusterId, initialized: this.initialized, members: this.list(), removed: [...this.removed].sort((a, b) => a - b) };
  }

  /**
   * Adopts the founding membership committed by the first leader (EntryKind.ClusterInit): the
   * cluster ID, and names/URLs of members this registry knows only by ID. Members changed since
   * are left as they are, so the entry can be applied after later changes without undoing them.
   */
  adoptFounding(s: MembershipState): void {
    this.clusterId = s.clusterId;
    for (const f of s.members) {
      const cur = this.members.get(f.id);
      if (cur && cur.peerURLs.length === 0) {
        cur.name = f.name;
        cur.peerURLs = [...f.peerURLs];
      }
    }
    this.initialized = true;
  }

  list(): MemberInfo[] {
    return [...this.members.values()].sort((a, b) => a.id - b.id).map((m) => ({ ...m }));
  }

  get(id: number): MemberInfo | undefined {
    return this.members.get(id);
  }

  has(id: number): boolean {
    return this.members.has(id);
  }

  isRemoved(id: number): boolean {
    return this.removed.has(id);
  }

  voters(): number[] {
    return this.list().filter((m) => !m.isLearner).map((m) => m.id);
  }

  learners(): number[] {
    return this.list().filter((m) => m.isLearner).map((m) => m.id);
  }

  findByPeerUrl(url: string): MemberInfo | undefined {
    return this.list().find((m) => m.peerURLs.includes(url));
  }

  add(id: number, ctx: MemberContext, isLearner: boolean): void {
    this.members.set(id, { id, name: ctx.name, peerURLs: [...ctx.peerURLs], clientURLs: [], isLearner });
  }

  promote(id: number): void {
    const m = this.members.get(id);
    if (m) m.isLearner = false;
  }

  remove(id: number): void {
    this.members.delete(id);
    this.removed.add(id);
  }

  updatePeerUrls(id: number, peerURLs: string[]): void {
    const m = this.members.get(id);
    if (m) m.peerURLs = [...peerURLs];
  }

  publish(id: number, name: string, clientURLs: string[]): void {
    const m = this.members.get(id);
    if (!m) return;
    m.name = name;
    m.clientURLs = [...clientURLs];
  }
}

/**
 * The founding members' IDs from a log that starts at index 1: a new cluster's log opens with one
 * context-less conf change per founding member (see RaftNode's constructor), on every member.
 */
export function foundingMemberIds(entries: readonly Entry[]): Set<number> {
  const ids = new Set<number>();
  for (const [i, e] of entries.entries()) {
    if (e.index !== i + 1 || e.term !== 1 || e.type !== EntryType.ConfChange) break;
    const cc = decodeConfChange(e.data);
    if (cc.context.length > 0 || cc.type === "removeNode") break;
    ids.add(cc.nodeId);
  }
  return ids;
}
