// The receiving side of one accepted peer connection: the handshake check, then frames turned
// back into whole messages (ordered lane and snapshot lane reassembled separately), and pongs.
import type { TLSSocket } from "node:tls";
import type { Logger } from "../obs/logger";
import { memberLabel, type Metrics } from "../obs/metrics";
import { FrameParser, FrameType, encodeFrame } from "./frame";
import { checkHello, decodeHello, type Hello } from "./handshake";
import type { LogLimiter } from "./log-limiter";

const HANDSHAKE_TIMEOUT_MS = 5000;

export interface InboundOptions {
  selfId: number;
  clusterId: string;
  logger: Logger;
  rejections: LogLimiter;
  metrics?: Metrics;
  maxMessageBytes: number;
  isKnownPeer: (id: number) => boolean;
  /** Members removed from the cluster are refused with REMOVED_MARKER, so they stop. */
  isRemovedPeer?: (id: number) => boolean;
  /** Called once the handshake is accepted; the transport keeps one connection per peer. */
  onIdentified: (conn: InboundConnection, from: number) => void;
  onMessage: (from: number, payload: Uint8Array) => void;
}

/** Pieces of a message in flight; concatenated once when the last piece arrives. */
class Reassembly {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  add(part: Buffer): void {
    this.bytes += part.length;
    if (this.bytes > this.limit) throw new Error(`message exceeds the limit of ${this.limit} bytes`);
    this.parts.push(part);
  }

  finish(last: Buffer): Buffer {
    this.add(last);
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    return out;
  }
}

export class InboundConnection {
  private from: number | undefined;
  private readonly parser: FrameParser;
  private readonly ordered: Reassembly;
  private readonly snapshot: Reassembly;
  private readonly handshakeTimer: NodeJS.Timeout;
  private fromLabel = "";

  constructor(
    readonly socket: TLSSocket,
    private readonly o: InboundOptions,
  ) {
    this.ordered = new Reassembly(o.maxMessageBytes);
    this.snapshot = new Reassembly(o.maxMessageBytes);
    this.parser = new FrameParser((type, body) => this.onFrame(type, body));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    this.handshakeTimer = setTimeout(() => this.refuse("no handshake within 5 s"), HANDSHAKE_TIMEOUT_MS);
    socket.on("data", (chunk: Buffer) => {
      if (this.from !== undefined) this.o.metrics?.peerReceivedBytes.inc({ From: this.fromLabel }, chunk.length);
      try {
        this.parser.push(chunk);
      } catch (err) {
        this.o.logger.warn({ peer: this.fromLabel || undefined, err: (err as Error).message }, "closing peer connection: bad frame");
        this.close();
      }
    });
    socket.on("error", () => {
      // 'close' follows; the dialing side logs connection problems.
    });
    socket.on("close", () => {
      clearTimeout(this.handshakeTimer);
      this.parser.reset();
    });
  }

  get peerId(): number | undefined {
    return this.from;
  }

  close(): void {
    this.parser.reset();
    this.socket.destroy();
  }

  private onFrame(type: number, body: Buffer): void {
    const from = this.from;
    if (from === undefined) {
      if (type !== FrameType.Hello) return this.refuse(`expected a handshake, got frame type ${type}`);
      const hello = decodeHello(body);
      if (typeof hello === "string") return this.refuse(hello);
      return this.accept(hello);
    }
    switch (type) {
      case FrameType.Msg:
        return this.deliver(from, body);
      case FrameType.Part:
        return this.ordered.add(body);
      case FrameType.PartEnd:
        return this.deliver(from, this.ordered.finish(body));
      case FrameType.SnapPart:
        return this.snapshot.add(body);
      case FrameType.SnapEnd:
        return this.deliver(from, this.snapshot.finish(body));
      case FrameType.Ping:
        this.socket.write(encodeFrame(FrameType.Pong, body));
        return;
      default:
        throw new Error(`unexpected frame type ${type}`);
    }
  }

  private accept(hello: Hello): void {
    const problem = checkHello(hello, { id: this.o.selfId, clusterId: this.o.clusterId, isKnownPeer: this.o.isKnownPeer, ...(this.o.isRemovedPeer ? { isRemovedPeer: this.o.isRemovedPeer } : {}) });
    if (problem) return this.refuse(problem, hello.from);
    clearTimeout(this.handshakeTimer);
    this.from = hello.from;
    this.fromLabel = memberLabel(hello.from);
    this.socket.write(encodeFrame(FrameType.HelloOk));
    this.o.onIdentified(this, hello.from);
  }

  private refuse(reason: string, claimed?: number): void {
    const remote = this.socket.remoteAddress ?? "unknown";
    this.o.rejections.warn(
      `handshake ${remote} ${reason}`,
      { remote: `${remote}:${this.socket.remotePort}`, claimedPeer: claimed?.toString(16), reason },
      "rejected peer connection",
    );
    this.parser.reset();
    this.socket.end(encodeFrame(FrameType.Reject, Buffer.from(reason, "utf8")));
    // end() waits for the peer; a silent one must not hold the socket.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private deliver(from: number, payload: Buffer): void {
    try {
      this.o.onMessage(from, payload);
    } catch (err) {
      this.o.logger.error({ peer: this.fromLabel, err: (err as Error).message }, "peer message handler failed");
    }
  }
}
