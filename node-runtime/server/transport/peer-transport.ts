// The raft peer transport of one member: a TLS server for connections other members dial to us
// (they carry their messages to us) and one PeerLink per other member (carrying ours to them).
// Mutual TLS: both directions present a certificate signed by the peer CA, and each side checks
// that the certificate is a member's peer certificate naming the member it speaks for (the
// dialer: the member it meant to reach; the acceptor: the member ID claimed in the handshake).
// A client certificate, or a peer certificate of member A claiming to be member B, is refused.
//
// Ordering and loss: messages given to send() for one peer arrive in order or not at all; the
// oldest are dropped when the per-peer queue is full or lost with a broken connection, which raft
// tolerates. Snapshots (sendSnapshot) travel in their own lane on the same connection, interleaved
// chunk by chunk with ordered traffic, so they may overtake or be overtaken by ordinary messages.
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import { createServer, type TLSSocket } from "node:tls";
import { parsePeerUrl, urlHost } from "../../../components/topology";
import type { Logger } from "../obs/logger";
import type { Metrics } from "../obs/metrics";
import { onFirstBytes, PendingHandshakes } from "../tls/pending-handshakes";
import type { ReloadingTls } from "../tls/reloading";
import { InboundConnection } from "./inbound";
import { LogLimiter } from "./log-limiter";
import { PeerLink, type PeerStats } from "./peer-link";
import { checkClaim, checkPolicy, socketPeerIdentity, type PeerCertPolicy, type PeerRecord } from "./peer-identity";

export type { PeerStats } from "./peer-link";
export type { PeerCertPolicy, PeerRecord } from "./peer-identity";

export interface PeerTransportOptions {
  selfId: number;
  clusterId: string | number | bigint;
  listen: { host: string; port: number };
  tls: ReloadingTls;
  logger: Logger;
  metrics?: Metrics;
  onMessage: (from: number, payload: Uint8Array) => void;
  /** The members as the membership knows them: whose certificate may speak for which ID. */
  directory: () => readonly PeerRecord[];
  /** --peer-cert-allowed-cn / --peer-cert-allowed-hostname. */
  policy?: PeerCertPolicy;
  /** Called when a peer's connection breaks or a dial fails (raft: ReportUnreachable). */
  onPeerUnreachable?: (id: number) => void;
  /** Whether a member ID was removed from the cluster (its connections are refused as removed). */
  isRemovedPeer?: (id: number) => boolean;
  /** Answers a joining member's member list query (see FrameType.MembersQuery). */
  memberList?: () => unknown;
  /** Called when a peer refuses us because this member was removed from the cluster. */
  onRemovedFromCluster?: (byPeer: number) => void;
  /** Bound of the ordered queue per peer (default 16 MiB). */
  maxQueueBytes?: number;
  /** Largest reassembled ordered message accepted (default 1 GiB). */
  maxMessageBytes?: number;
  /** Largest snapshot accepted in one transfer (default 1 GiB). */
  maxSnapshotBytes?: number;
  /** A message or snapshot in pieces that makes no progress this long is dropped (default 30 s). */
  stallTimeoutMs?: number;
  /** TLS and peer handshake must complete within this (default 5 s). */
  handshakeTimeoutMs?: number;
  /** An accepted connection with nothing received this long is closed (default 30 s). */
  idleTimeoutMs?: number;
  /** Connections on the peer port at once, identified or not (default 128). */
  maxConnections?: number;
  /** Connections not yet identified (TLS and peer handshake) at once; the oldest is closed to admit a new one (default 32). */
  maxPendingHandshakes?: number;
  /** The same, from one remote address (default 16). */
  maxPendingPerAddress?: number;
  /** RTT probe period (default 1000 ms). */
  pingIntervalMs?: number;
  /** A connection whose ping stays unanswered this long is closed and redialed (default 5000 ms). */
  peerTimeoutMs?: number;
}

export class PeerTransport {
  private readonly links = new Map<number, PeerLink>();
  private readonly inbound = new Map<number, InboundConnection>();
  private readonly sockets = new Set<Socket>();
  private pending: PendingHandshakes | undefined;
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
    const handshakeTimeoutMs = this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const tlsServer = createServer({
      ...this.o.tls.current().options,
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: handshakeTimeoutMs,
    });
    // Until a dialer has identified itself (TLS, then the hello) it is anyone: a deadline from
    // accept for TLS and hello together, and caps with the oldest closed first (PendingHandshakes).
    const pending = new PendingHandshakes(
      {
        deadlineMs: handshakeTimeoutMs,
        maxPending: this.o.maxPendingHandshakes ?? DEFAULT_MAX_PENDING,
        maxPendingPerAddress: this.o.maxPendingPerAddress ?? DEFAULT_MAX_PENDING_PER_ADDRESS,
      },
      (reason, address) => {
        this.o.metrics?.peerRejectedConnections.inc({ reason: reason === "deadline" ? "handshake" : "limit" });
        this.rejections.warn(`pending ${reason} ${address}`, { remote: address, reason }, "closed peer connection that did not identify itself");
      },
    );
    this.pending = pending;
    // The port is a plain TCP server: TLS state is created once a connection sends its first bytes.
    const server = createTcpServer({ noDelay: true }, (raw) => {
      if (this.stopped) return void raw.destroy();
      this.sockets.add(raw);
      raw.once("close", () => this.sockets.delete(raw));
      raw.on("error", () => undefined);
      pending.admit(raw);
      onFirstBytes(raw, () => tlsServer.emit("connection", raw));
    });
    // Beyond the cap node:net closes new sockets at once ('drop'); members hold one each way.
    server.maxConnections = this.o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    server.on("drop", (data) => {
      this.o.metrics?.peerRejectedConnections.inc({ reason: "limit" });
      this.rejections.warn(`limit ${data?.remoteAddress ?? ""}`, { remote: data?.remoteAddress, limit: server.maxConnections }, "rejected peer connection: too many connections");
    });
    tlsServer.on("secureConnection", (socket) => this.accept(socket));
    tlsServer.on("tlsClientError", (err, socket) => {
      this.o.metrics?.peerRejectedConnections.inc({ reason: "tls" });
      // With rejectUnauthorized node:tls destroys a socket whose client certificate fails
      // verification and reports only "socket hang up"; the verification result says why. The
      // socket is gone by now, so its address may be unknown.
      const reason = socket.authorizationError
        ? `client certificate rejected: ${String(socket.authorizationError)}`
        : err.message;
      const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : undefined;
      this.rejections.warn(`tls ${socket.remoteAddress ?? ""} ${reason}`, { remote, reason }, "rejected peer connection: TLS handshake failed");
      // With a listener on this event node:tls leaves the socket open (a handshake timeout
      // included): without this a silent connection would hold its slot forever.
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot listen on https://${urlHost(host)}:${port} for peers: ${describeListenError(err)}`));
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
    this.unsubscribeTls = this.o.tls.onChange((m) => tlsServer.setSecureContext(m.options));
    this.log.info({ url: `https://${urlHost(host)}:${this.port}` }, "listening for peers");
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
      handshakeTimeoutMs: this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      verifyPeer: (socket) => this.verifyDialed(id, socket),
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
    this.pending?.close();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Why the member we dialed as `id` is not who answered, or undefined. Its certificate must be a
   * member's peer certificate that may speak for `id`, as on the accepting side.
   */
  private verifyDialed(id: number, socket: TLSSocket): string | undefined {
    const identity = socketPeerIdentity(socket);
    if (typeof identity === "string") return identity;
    return checkPolicy(identity, this.o.policy ?? {}) ?? checkClaim(identity, id, this.o.directory());
  }

  private accept(socket: TLSSocket): void {
    if (this.stopped) return void socket.destroy();
    socket.on("close", () => {
      const id = conn.peerId;
      if (id !== undefined && this.inbound.get(id) === conn) this.inbound.delete(id);
    });
    const conn = new InboundConnection(socket, {
      selfId: this.o.selfId,
      clusterId: this.clusterId,
      logger: this.log,
      rejections: this.rejections,
      ...(this.o.metrics ? { metrics: this.o.metrics } : {}),
      maxMessageBytes: this.o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxSnapshotBytes: this.o.maxSnapshotBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      stallTimeoutMs: this.o.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      handshakeTimeoutMs: this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      idleTimeoutMs: this.o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      policy: this.o.policy ?? {},
      directory: this.o.directory,
      isKnownPeer: (id) => this.links.has(id),
      isRemovedPeer: (id) => this.o.isRemovedPeer?.(id) ?? false,
      ...(this.o.memberList ? { memberList: this.o.memberList } : {}),
      onIdentified: (c, from) => {
        this.pending?.done(c.socket);
        // A peer that redialed leaves its old connection half-open on our side; the newest wins.
        // Only the member itself can open one: its certificate was matched to `from`.
        const old = this.inbound.get(from);
        this.inbound.set(from, c);
        if (old && old !== c) old.close();
      },
      onMessage: this.o.onMessage,
    });
  }
}

const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;
const DEFAULT_STALL_TIMEOUT_MS = 30_000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_CONNECTIONS = 128;
const DEFAULT_MAX_PENDING = 32;
const DEFAULT_MAX_PENDING_PER_ADDRESS = 16;

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
