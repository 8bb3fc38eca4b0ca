/** A tiny lossless in-memory cluster for rule-by-rule unit tests (the chaos lives in sim/). */
import { RaftNode, type RaftConfig } from "../../node-runtime/raft/raft";
import type { Entry, Message, NodeId, Ready } from "../../node-runtime/raft/types";

export function cfg(id: NodeId, over: Partial<RaftConfig> = {}): RaftConfig {
  let x = id * 7919;
  return {
    id,
    electionTick: 10,
    heartbeatTick: 1,
    random: () => ((x = (x * 48271) % 2147483647) / 2147483647),
    preVote: false,
    checkQuorum: false,
    maxSizePerMsg: 1 << 20,
    maxInflightMsgs: 256,
    ...over,
  };
}

export class Cluster {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly reads = new Map<NodeId, { index: number; ctx: string }[]>();
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true;
  readonly sent: Message[] = [];

  constructor(ids: NodeId[], over: Partial<RaftConfig> = {}, learners: NodeId[] = []) {
    for (const id of [...ids, ...learners]) {
      this.nodes.set(id, new RaftNode(cfg(id, over), { voters: ids, learners }));
      this.applied.set(id, []);
      this.reads.set(id, []);
    }
  }

  node(id: NodeId): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Handle every Ready and deliver messages until nothing moves. */
  settle(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const inbox: Message[] = [];
      for (const [id, n] of this.nodes) {
        while (n.hasReady()) {
          const rd: Ready = n.ready();
          this.applied.get(id)!.push(...rd.committedEntries);
          for (const r of rd.readStates) this.reads.get(id)!.push({ index: r.index, ctx: new TextDecoder().decode(r.ctx) });
          inbox.push(...rd.messages);
          n.advance(rd);
        }
      }
      if (inbox.length === 0) return;
      for (const m of inbox) {
        this.sent.push(m);
        if (this.filter(m)) this.nodes.get(m.to)?.step(m);
      }
    }
    throw new Error("cluster did not settle");
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).tick();
  }

  /** Make `id` campaign now and settle. */
  elect(id: NodeId): void {
    const n = this.node(id);
    for (let i = 0; i < 100 && n.status().role !== "leader"; i++) {
      n.tick();
      this.settle();
    }
    if (n.status().role !== "leader") throw new Error(`${id} did not become leader`);
  }

  isolate(id: NodeId): void {
    this.filter = (m) => m.from !== id && m.to !== id;
  }

  heal(): void {
    this.filter = () => true;
  }

  userData(id: NodeId): string[] {
    return this.applied.get(id)!.filter((e) => e.type === 0 && e.data.length > 0).map((e) => new TextDecoder().decode(e.data));
  }
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Drain one node's Ready (advancing it) and return its messages. */
export function drain(n: RaftNode): Message[] {
  const out: Message[] = [];
  while (n.hasReady()) {
    const rd = n.ready();
    out.push(...rd.messages);
    n.advance(rd);
  }
  return out;
}
