// The receiving side of one accepted peer connection: the handshake check, then frames turned
// back into whole messages (ordered lane and snapshot lane reassembled separately), and pongs.
import type { TLSSocket } from "node:tls";
import type { Logger } from "../obs/logger";
import { memberLabel, type Metrics } from "../obs/metrics";
import { FrameParser, FrameType, encodeFrame } from "./frame";
import { PROTOCOL_VERSION, REMOVED_MARKER, checkHello, decodeHello, decodeMembersQuery, type Hello } from "./handshake";
import type { LogLimiter } from "./log-limiter";
import { checkClaim, checkPolicy, socketPeerIdentity, type PeerCertIdentity, type PeerCertPolicy, type PeerRecord } from "./peer-identity";

/**
 * What a refused dialer is told. The reason goes to this member's log only: the other end may be
 * anyone holding a certificate, and member IDs or the cluster token are not theirs to learn.
 */
export const REJECT_TEXT = "peer connection refused";
/** The one refusal with a meaning for the dialer: it must stop (see REMOVED_MARKER). */
export const REMOVED_TEXT = `this member ${REMOVED_MARKER}`;

export type RejectClass = "identity" | "handshake" | "idle" | "oversize" | "stalled" | "frame";

export interface InboundOptions {
  selfId: number;
  clusterId: string;
  logger: Logger;
  rejections: LogLimiter;
  metrics?: Metrics;
  /** Largest ordered message reassembled from pieces. */
  maxMessageBytes: number;
  /** Largest snapshot one transfer may carry; beyond it the connection is dropped. */
  maxSnapshotBytes: number;
  /** A message or snapshot in pieces with no new piece for this long is dropped with its buffers. */
  stallTimeoutMs: number;
  /** The dialer must identify itself within this time after TLS. */
  handshakeTimeoutMs: number;
  /** A connection on which nothing arrives for this long is closed (dialers ping every second). */
  idleTimeoutMs: number;
  policy: PeerCertPolicy;
  /** The members as the membership knows them, to match certificates against claimed IDs. */
  directory: () => readonly PeerRecord[];
  isKnownPeer: (id: number) => boolean;
  /** Members removed from the cluster are refused with REMOVED_MARKER, so they stop. */
  isRemovedPeer?: (id: number) => boolean;
  /** The member list a joining member asks for (FrameType.MembersQuery); no answer without it. */
  memberList?: () => unknown;
  /** Called once the handshake is accepted; the transport keeps one connection per peer. */
  onIdentified: (conn: InboundConnection, from: number) => void;
  onMessage: (from: number, payload: Uint8Array) => void;
}

class OversizeError extends Error {}

const PIECE_OVERHEAD = 128;

/** Pieces of a message in flight; concatenated once when the last piece arrives. */
class Reassembly {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly what: string,
  ) {}

  get active(): boolean {
    return this.parts.length > 0;
  }

  add(part: Buffer): void {
    // Each piece is charged a fixed overhead too, so a flood of tiny pieces (one object each)
    // meets the limit as surely as a few large ones.
    this.bytes += part.length + PIECE_OVERHEAD;
    if (this.bytes > this.limit) {
      this.clear();
      throw new OversizeError(`${this.what} exceeds the limit of ${this.limit} bytes`);
    }
    // A piece that is a view into a larger network chunk would pin the whole chunk: copy it.
    this.parts.push(part.length === part.buffer.byteLength ? part : Buffer.from(part));
  }

  finish(last: Buffer): Buffer {
    this.add(last);
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.clear();
    return out;
  }

  clear(): void {
    this.parts = [];
    this.bytes = 0;
  }
}

export class InboundConnection {
  private from: number | undefined;
  private readonly identity: PeerCertIdentity | undefined;
  private readonly parser: FrameParser;
  private readonly ordered: Reassembly;
  private readonly snapshot: Reassembly;
  private readonly handshakeTimer: NodeJS.Timeout;
  private stallTimer: NodeJS.Timeout | undefined;
  private fromLabel = "";
  private closed = false;

  constructor(
    readonly socket: TLSSocket,
    private readonly o: InboundOptions,
  ) {
    this.ordered = new Reassembly(o.maxMessageBytes, "message");
    this.snapshot = new Reassembly(o.maxSnapshotBytes, "snapshot");
    this.parser = new FrameParser((type, body) => this.onFrame(type, body));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    this.handshakeTimer = setTimeout(() => this.refuse("handshake", "no handshake in time"), o.handshakeTimeoutMs);
    socket.setTimeout(o.idleTimeoutMs, () => this.drop("idle", `nothing received for ${o.idleTimeoutMs} ms`));
    socket.on("data", (chunk: Buffer) => {
      if (this.closed) return;
      if (this.from !== undefined) this.o.metrics?.peerReceivedBytes.inc({ From: this.fromLabel }, chunk.length);
      try {
        this.parser.push(chunk);
      } catch (err) {
        if (err instanceof OversizeError) this.drop("oversize", err.message);
        else this.drop("frame", `bad frame: ${(err as Error).message}`);
      }
    });
    socket.on("error", () => {
      // 'close' follows; the dialing side logs connection problems.
    });
    socket.on("close", () => this.release());
    // Who the certificate says this is, decided before a single frame is read: a certificate
    // that is not a member's peer certificate is refused without waiting for a handshake.
    const identity = socketPeerIdentity(socket);
    if (typeof identity === "string") {
      this.identity = undefined;
      this.refuse("identity", identity);
      return;
    }
    this.identity = identity;
    const policy = checkPolicy(identity, o.policy);
    if (policy !== undefined) this.refuse("identity", policy);
  }

  get peerId(): number | undefined {
    return this.from;
  }

  close(): void {
    this.release();
    this.socket.destroy();
  }

  /** Frees everything this connection holds: buffered frames, partial messages, timers. */
  private release(): void {
    this.closed = true;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.parser.reset();
    this.ordered.clear();
    this.snapshot.clear();
  }

  private onFrame(type: number, body: Buffer): void {
    if (this.closed) return;
    const from = this.from;
    if (from === undefined) {
      if (type === FrameType.MembersQuery) return this.answerMembersQuery(body);
      if (type !== FrameType.Hello) return this.refuse("handshake", `expected a handshake, got frame type ${type}`);
      const hello = decodeHello(body);
      if (typeof hello === "string") return this.refuse("handshake", hello);
      return this.accept(hello);
    }
    switch (type) {
      case FrameType.Msg:
        return this.deliver(from, body);
      case FrameType.Part:
        this.ordered.add(body);
        return this.armStallTimer();
      case FrameType.PartEnd:
        return this.deliver(from, this.ordered.finish(body));
      case FrameType.SnapPart:
        this.snapshot.add(body);
        return this.armStallTimer();
      case FrameType.SnapEnd:
        return this.deliver(from, this.snapshot.finish(body));
      case FrameType.Ping:
        this.socket.write(encodeFrame(FrameType.Pong, body));
        return;
      default:
        throw new Error(`unexpected frame type ${type}`);
    }
  }

  /**
   * A message or snapshot in pieces must keep moving; a stalled one would pin its buffers for
   * as long as the connection lives (pings keep it from going idle).
   */
  private armStallTimer(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.snapshot.active || this.ordered.active) this.drop("stalled", `transfer in pieces stalled for ${this.o.stallTimeoutMs} ms`);
    }, this.o.stallTimeoutMs);
  }

  private accept(hello: Hello): void {
    const identity = this.identity;
    if (identity === undefined) return this.refuse("identity", "no peer certificate");
    const problem = checkHello(hello, { id: this.o.selfId, clusterId: this.o.clusterId, isKnownPeer: this.o.isKnownPeer, ...(this.o.isRemovedPeer ? { isRemovedPeer: this.o.isRemovedPeer } : {}) });
    if (problem) {
      // Only a member's own peer certificate learns that it was removed.
      const removed = problem.includes(REMOVED_MARKER);
      return this.refuse("handshake", problem, hello.from, removed ? REMOVED_TEXT : REJECT_TEXT);
    }
    const claim = checkClaim(identity, hello.from, this.o.directory());
    if (claim !== undefined) return this.refuse("identity", claim, hello.from);
    clearTimeout(this.handshakeTimer);
    this.from = hello.from;
    this.fromLabel = memberLabel(hello.from);
    this.socket.write(encodeFrame(FrameType.HelloOk));
    this.o.onIdentified(this, hello.from);
  }

  /**
   * A joining member's question for the member list. Only a peer certificate the local policy
   * accepts (checked on connect) and the cluster token get an answer; the connection then closes.
   */
  private answerMembersQuery(body: Buffer): void {
    if (this.identity === undefined) return this.refuse("identity", "no peer certificate");
    const list = this.o.memberList?.();
    const q = decodeMembersQuery(body);
    if (typeof q === "string") return this.refuse("handshake", q);
    if (q.version !== PROTOCOL_VERSION) return this.refuse("handshake", `unsupported peer protocol version ${q.version} (want ${PROTOCOL_VERSION})`);
    if (q.clusterId !== this.o.clusterId) return this.refuse("handshake", `cluster ID mismatch in a member list query: peer is in cluster ${q.clusterId}`);
    if (list === undefined) return this.refuse("handshake", "member list not available yet");
    clearTimeout(this.handshakeTimer);
    this.release();
    this.socket.end(encodeFrame(FrameType.MembersReply, Buffer.from(JSON.stringify(list), "utf8")));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private refuse(kind: RejectClass, reason: string, claimed?: number, wireText: string = REJECT_TEXT): void {
    if (this.closed) return;
    const remote = this.socket.remoteAddress ?? "unknown";
    this.o.metrics?.peerRejectedConnections.inc({ reason: kind });
    this.o.rejections.warn(
      `handshake ${remote} ${reason}`,
      { remote: `${remote}:${this.socket.remotePort}`, claimedPeer: claimed?.toString(16), certificate: this.identity?.name, reason },
      "rejected peer connection",
    );
    this.release();
    this.socket.end(encodeFrame(FrameType.Reject, Buffer.from(wireText, "utf8")));
    // end() waits for the peer; a silent one must not hold the socket.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Closes an identified (or identifying) connection because of a limit; logged, not answered. */
  private drop(kind: RejectClass, reason: string): void {
    if (this.closed) return;
    if (this.from === undefined) return this.refuse(kind, reason);
    this.o.metrics?.peerRejectedConnections.inc({ reason: kind });
    this.o.logger.warn({ peer: this.fromLabel, reason }, "closing peer connection");
    this.close();
  }

  private deliver(from: number, payload: Buffer): void {
    try {
      this.o.onMessage(from, payload);
    } catch (err) {
      this.o.logger.error({ peer: this.fromLabel, err: (err as Error).message }, "peer message handler failed");
    }
  }
}
