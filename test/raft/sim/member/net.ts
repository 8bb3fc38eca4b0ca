/**
 * A simulated peer network. Every message is copied (as the TLS transport copies bytes) and
 * delivered after a delay — sometimes longer than an election timeout. Across a partition a
 * message is either dropped or held and delivered after the heal (a peer link's queue survives
 * reconnects), so stale messages, including read-index answers and member-call replies of a
 * crashed incarnation, reach the member's next incarnation. Snapshots fail across a partition.
 * A member refuses messages from a member it knows was removed and tells it so, as the
 * transport's handshake does.
 */
import type { PeerNetwork, PeerNetworkHooks } from "../../../../node-runtime/server/member-env";
import type { Owner, World } from "./world";

export interface NetFaults {
  /** Most messages take 1..maxDelayMs. */
  maxDelayMs: number;
  /** Probability that a message is delayed by 1–3 election timeouts instead. */
  longDelayRate: number;
  dropRate: number;
  /** Probability that a message sent into a partition is held until the heal (else dropped). */
  holdRate: number;
  electionMs: number;
}

interface Endpoint {
  owner: Owner;
  hooks: PeerNetworkHooks;
  peers: Map<number, string>;
}

export class SimNetwork {
  private readonly endpoints = new Map<number, Endpoint>();
  /** from → the members it cannot reach. */
  private readonly cut = new Map<number, Set<number>>();
  private held: Array<{ from: number; to: number; payload: Buffer }> = [];
  faultsOn = true;
  /** Directed scenarios: every snapshot takes this long (a snapshot is large; messages are not). */
  snapshotDelayMs: number | undefined;
  delivered = 0;
  snapshotsSent = 0;
  /** Messages that met a cut link (dropped or held). */
  cutMessages = 0;

  constructor(
    private readonly world: World,
    private readonly faults: NetFaults,
  ) {}

  isCut(a: number, b: number): boolean {
    return this.cut.get(a)?.has(b) === true;
  }

  partition(groups: number[][]): void {
    this.cut.clear();
    for (const g of groups) {
      for (const h of groups) {
        if (g === h) continue;
        for (const a of g) {
          let to = this.cut.get(a);
          if (to === undefined) this.cut.set(a, (to = new Set()));
          for (const b of h) to.add(b);
        }
      }
    }
  }

  /** Removes every cut and delivers what was held. */
  heal(): void {
    this.cut.clear();
    const held = this.held;
    this.held = [];
    for (const h of held) this.transmit(h.from, h.to, h.payload);
  }

  /** The network of one member incarnation. */
  attach(id: number, owner: Owner, hooks: PeerNetworkHooks): PeerNetwork {
    const ep: Endpoint = { owner, hooks, peers: new Map() };
    const net = this;
    return {
      start: async () => {
        net.endpoints.set(id, ep);
      },
      stop: async () => {
        if (net.endpoints.get(id) === ep) net.endpoints.delete(id);
      },
      send: (to, payload) => {
        if (!owner.dead && ep.peers.has(to)) net.transmit(id, to, Buffer.from(payload));
      },
      sendSnapshot: (to, payload) => {
        if (owner.dead || !ep.peers.has(to) || net.isCut(id, to)) return Promise.reject(new Error("not connected"));
        net.snapshotsSent++;
        net.transmit(id, to, Buffer.from(payload), true);
        return Promise.resolve();
      },
      addPeer: (peer, url) => void ep.peers.set(peer, url),
      updatePeer: (peer, url) => void ep.peers.set(peer, url),
      removePeer: (peer) => void ep.peers.delete(peer),
      hasPeer: (peer) => ep.peers.has(peer),
      stats: () => {
        const out = new Map<number, { url: string; connected: boolean }>();
        for (const [peer, url] of ep.peers) {
          const other = net.endpoints.get(peer);
          out.set(peer, { url, connected: other !== undefined && !other.owner.dead && !net.isCut(id, peer) && !net.isCut(peer, id) });
        }
        return out;
      },
    };
  }

  private transmit(from: number, to: number, payload: Buffer, reliable = false): void {
    const { world, faults } = this;
    if (this.faultsOn && !reliable && world.rng.chance(faults.dropRate)) return;
    if (this.isCut(from, to)) {
      this.cutMessages++;
      if (this.faultsOn && world.rng.chance(faults.holdRate)) this.held.push({ from, to, payload });
      return;
    }
    const delay = reliable && this.snapshotDelayMs !== undefined
      ? this.snapshotDelayMs
      : !this.faultsOn
      ? 1
      : world.rng.chance(faults.longDelayRate)
        ? world.rng.int(faults.electionMs, 3 * faults.electionMs)
        : world.rng.int(1, faults.maxDelayMs);
    // Delivered to whichever incarnation of `to` is up then (and reachable then).
    world.schedule(world.now + delay, undefined, () => {
      const ep = this.endpoints.get(to);
      if (ep === undefined || ep.owner.dead || this.isCut(from, to)) return;
      // A member refuses a removed member's connection and says why (transport handshake).
      if (ep.hooks.isRemovedPeer(from)) {
        const sender = this.endpoints.get(from);
        if (sender !== undefined && !sender.owner.dead) world.schedule(world.now + 1, sender.owner, () => sender.hooks.onRemovedFromCluster(to));
        return;
      }
      this.delivered++;
      // A paused member handles it once it runs again.
      if (ep.owner.pausedUntil > world.now) world.schedule(world.now, ep.owner, () => ep.hooks.onMessage(from, payload));
      else ep.hooks.onMessage(from, payload);
    });
  }
}
