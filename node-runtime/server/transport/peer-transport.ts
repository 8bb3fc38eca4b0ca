// The raft peer transport of one member: a TLS server for connections other members dial to us
// (they carry their messages to us) and one PeerLink per other member (carrying ours to them).
// Mutual TLS: both directions present a certificate signed by the peer CA.
//
// Ordering and loss: messages given to send() for one peer arrive in order or not at all; the
// oldest are dropped when the per-peer queue is full or lost with a broken connection, which raft
// tolerates. Snapshots (sendSnapshot) travel in their own lane on the same connection, interleaved
// chunk by chunk with ordered traffic, so they may overtake or be overtaken by ordinary messages.
import { createServer, type Server, type TLSSocket } from "node:tls";
import { parsePeerUrl } from "../../../components/topology";
import type { Logger } from "../obs/logger";
import type { Metrics } from "../obs/metrics";
import type { ReloadingTls } from "../tls/reloading";
import { InboundConnection } from "./inbound";
import { LogLimiter } from "./log-limiter";
import { PeerLink, type PeerStats } from "./peer-link";

export type { PeerStats } from "./peer-link";

export interface PeerTransportOptions {
  selfId: number;
  clusterId: string | number | bigint;
  listen: { host: string; port: number };
  tls: ReloadingTls;
  logger: Logger;
  metrics?: Metrics;
  onMessage: (from: number, payload: Uint8Array) => void;
  /** Called when a peer's connection breaks or a dial fails (raft: ReportUnreachable). */
  onPeerUnreachable?: (id: number) => void;
  /** Whether a member ID was removed from the cluster (its connections are refused as removed). */
  isRemovedPeer?: (id: number) => boolean;
  /** Called when a peer refuses us because this member was removed from the cluster. */
  onRemovedFromCluster?: (byPeer: number) => void;
  /** Bound of the ordered queue per peer (default 16 MiB). */
  maxQueueBytes?: number;
  /** Largest reassembled message accepted (default 1 GiB). */
  maxMessageBytes?: number;
  /** RTT probe period (default 1000 ms). */
  pingIntervalMs?: number;
  /** A connection whose ping stays unanswered this long is closed and redialed (default 5000 ms). */
  peerTimeoutMs?: number;
}

export class PeerTransport {
  private readonly links = new Map<number, PeerLink>();
  private readonly inbound = new Map<number, InboundConnection>();
  private readonly sockets = new Set<TLSSocket>();
  private readonly log: Logger;
  private readonly rejections: LogLimiter;
  private readonly clusterId: string;
  private server: Server | undefined;
  private started = false;
  private stopped = false;
  private unsubscribeTls: (() => void) | undefined;

  constructor(private readonly o: PeerTransportOptions) {
    this.log = o.logger.child({ component: "peer-transport" });
    this.rejections = new LogLimiter(this.log);
    this.clusterId = String(o.clusterId);
  }

  /** Listens on the peer port and starts dialing the peers added so far. */
  async start(): Promise<void> {
    if (this.started) throw new Error("peer transport already started");
    this.started = true;
    const { host, port } = this.o.listen;
    const server = createServer({
      ...this.o.tls.current().options,
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on("secureConnection", (socket) => this.accept(socket));
    server.on("tlsClientError", (err, socket) => {
      // With rejectUnauthorized node:tls destroys a socket whose client certificate fails
      // verification and reports only "socket hang up"; the verification result says why. The
      // socket is gone by now, so its address may be unknown.
      const reason = socket.authorizationError
        ? `client certificate rejected: ${String(socket.authorizationError)}`
        : err.message;
      const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : undefined;
      this.rejections.warn(`tls ${socket.remoteAddress ?? ""} ${reason}`, { remote, reason }, "rejected peer connection: TLS handshake failed");
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot listen on https://${host}:${port} for peers: ${describeListenError(err)}`));
      };
      server.once("error", onError);
      server.listen({ host, port }, () => {
        server.off("error", onError);
        resolve();
      });
    });
    server.on("error", (err) => this.log.error({ err: err.message }, "peer listener failed"));
    this.server = server;
    // New connections, accepted or dialed, use reloaded certificates; open ones keep theirs.
    this.unsubscribeTls = this.o.tls.onChange((m) => server.setSecureContext(m.options));
    this.log.info({ url: `https://${host}:${this.port}` }, "listening for peers");
    for (const link of this.links.values()) link.start();
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    const addr = this.server?.address();
    if (!addr || typeof addr === "string") throw new Error("peer transport is not listening");
    return addr.port;
  }

  addPeer(id: number, url: string): void {
    if (id === this.o.selfId) throw new Error(`cannot add this member (${id.toString(16)}) as its own peer`);
    parsePeerUrl(url);
    const existing = this.links.get(id);
    if (existing) return existing.setUrl(url);
    const link = new PeerLink({
      selfId: this.o.selfId,
      clusterId: this.clusterId,
      peerId: id,
      url,
      tls: this.o.tls,
      logger: this.log,
      ...(this.o.metrics ? { metrics: this.o.metrics } : {}),
      maxQueueBytes: this.o.maxQueueBytes ?? 16 * 1024 * 1024,
      pingIntervalMs: this.o.pingIntervalMs ?? 1000,
      peerTimeoutMs: this.o.peerTimeoutMs ?? 5000,
      onUnreachable: () => this.o.onPeerUnreachable?.(id),
      onRemoved: () => this.o.onRemovedFromCluster?.(id),
    });
    this.links.set(id, link);
    if (this.started && !this.stopped) link.start();
  }

  updatePeer(id: number, url: string): void {
    const link = this.links.get(id);
    if (!link) throw new Error(`unknown peer ${id.toString(16)}`);
    parsePeerUrl(url);
    link.setUrl(url);
  }

  /** Forgets a peer: its queue is discarded and both of its connections close. */
  removePeer(id: number): void {
    this.links.get(id)?.stop();
    this.links.delete(id);
    this.inbound.get(id)?.close();
    this.inbound.delete(id);
  }

  hasPeer(id: number): boolean {
    return this.links.has(id);
  }

  /** Queues a message; never blocks. Messages to unknown peers are dropped (raft retries). */
  send(to: number, payload: Uint8Array): void {
    this.links.get(to)?.send(payload);
  }

  /** Streams a snapshot message; resolves once fully handed to the socket, rejects if the
   * peer is not connected or the connection breaks (raft: ReportSnapshot failure). */
  sendSnapshot(to: number, payload: Uint8Array): Promise<void> {
    const link = this.links.get(to);
    if (!link) return Promise.reject(new Error(`unknown peer ${to.toString(16)}`));
    return link.sendSnapshot(payload);
  }

  stats(): Map<number, PeerStats> {
    const out = new Map<number, PeerStats>();
    for (const [id, link] of this.links) out.set(id, link.stats());
    return out;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribeTls?.();
    for (const link of this.links.values()) link.stop();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(socket: TLSSocket): void {
    if (this.stopped) return void socket.destroy();
    this.sockets.add(socket);
    socket.on("close", () => {
      this.sockets.delete(socket);
      const id = conn.peerId;
      if (id !== undefined && this.inbound.get(id) === conn) this.inbound.delete(id);
    });
    const conn = new InboundConnection(socket, {
      selfId: this.o.selfId,
      clusterId: this.clusterId,
      logger: this.log,
      rejections: this.rejections,
      ...(this.o.metrics ? { metrics: this.o.metrics } : {}),
      maxMessageBytes: this.o.maxMessageBytes ?? 1024 * 1024 * 1024,
      isKnownPeer: (id) => this.links.has(id),
      isRemovedPeer: (id) => this.o.isRemovedPeer?.(id) ?? false,
      onIdentified: (c, from) => {
        // A peer that redialed leaves its old connection half-open on our side; the newest wins.
        const old = this.inbound.get(from);
        this.inbound.set(from, c);
        if (old && old !== c) old.close();
      },
      onMessage: this.o.onMessage,
    });
  }
}

function describeListenError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "EADDRINUSE":
      return "address already in use";
    case "EADDRNOTAVAIL":
      return "address not available on this host";
    case "EACCES":
      return "permission denied";
    default:
      return err.message;
  }
}
