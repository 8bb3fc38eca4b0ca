// The sending side towards one peer: a persistent TLS connection that this member dials, a
// bounded queue of ordered messages, a snapshot lane, a writer that coalesces everything queued
// during one event-loop turn into one socket write, reconnection with backoff and an RTT probe.
import { connect, type TLSSocket } from "node:tls";
import { parsePeerUrl } from "../../../components/topology";
import type { Logger } from "../obs/logger";
import { memberLabel, type Metrics } from "../obs/metrics";
import type { ReloadingTls } from "../tls/reloading";
import { CHUNK_BYTES, FrameParser, FrameType, HEADER_BYTES, encodeFrame, writeHeader } from "./frame";
import { PROTOCOL_VERSION, REMOVED_MARKER, encodeHello } from "./handshake";
import { SendQueue } from "./send-queue";

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1000;
/** Upper bound of bytes handed to the socket per flush; later messages wait for 'drain'. */
const BATCH_BYTES = 256 * 1024;

export interface PeerStats {
  url: string;
  connected: boolean;
  /** Bytes waiting in this member: ordered queue, a partly sent large message, snapshots. */
  queuedBytes: number;
  queuedMessages: number;
  /** Messages completely handed to the socket. */
  sentFrames: number;
  sentBytes: number;
  /** Messages discarded: oldest ones when the queue overflowed, or a large one cut by a lost connection. */
  droppedFrames: number;
  /** Last measured round trip, once a ping was answered. */
  rttMs?: number;
}

export interface PeerLinkOptions {
  selfId: number;
  clusterId: string;
  peerId: number;
  url: string;
  tls: ReloadingTls;
  logger: Logger;
  metrics?: Metrics;
  maxQueueBytes: number;
  pingIntervalMs: number;
  peerTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** Why the certificate the dialed side presented is not the peer we meant, or undefined. */
  verifyPeer: (socket: TLSSocket) => string | undefined;
  onUnreachable: () => void;
  /** The peer refused us because we were removed from the cluster. */
  onRemoved?: () => void;
}

interface PendingSnapshot {
  payload: Uint8Array;
  offset: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

type LinkState = "idle" | "dialing" | "connected" | "backoff" | "stopped";

export class PeerLink {
  private state: LinkState = "idle";
  private url: string;
  private socket: TLSSocket | undefined;
  private readonly queue: SendQueue;
  /** An ordered message larger than one chunk, being written piece by piece. */
  private inline: { payload: Uint8Array; offset: number } | undefined;
  private readonly snapshots: PendingSnapshot[] = [];
  private waitingDrain = false;
  private flushScheduled = false;
  private backoffMs = MIN_BACKOFF_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingSentAt: bigint | undefined;
  /** Reason last logged for being down; undefined while up (or never tried). */
  private downReason: string | undefined;
  private everConnected = false;
  private rejection: string | undefined;
  private readonly log: Logger;
  private readonly label: string;
  private sentFrames = 0;
  private sentBytes = 0;
  private droppedFrames = 0;
  private rttMs: number | undefined;

  constructor(private readonly o: PeerLinkOptions) {
    this.url = o.url;
    this.queue = new SendQueue(o.maxQueueBytes);
    this.label = memberLabel(o.peerId);
    this.log = o.logger.child({ peer: this.label });
  }

  start(): void {
    if (this.state === "idle") this.dial();
  }

  /** Changes the address; an open connection to the old one is closed and redialed. */
  setUrl(url: string): void {
    if (url === this.url) return;
    this.url = url;
    this.log.info({ url }, "peer URL updated");
    if (this.socket) this.socket.destroy();
    else if (this.state === "backoff") this.redialSoon(0);
  }

  send(payload: Uint8Array): void {
    if (this.state === "stopped") return;
    const dropped = this.queue.push(payload);
    if (dropped > 0) this.countDropped(dropped);
    this.scheduleFlush();
  }

  sendSnapshot(payload: Uint8Array): Promise<void> {
    if (this.state !== "connected") {
      return Promise.reject(new Error(`cannot send snapshot to peer ${this.label}: not connected`));
    }
    return new Promise((resolve, reject) => {
      this.snapshots.push({ payload, offset: 0, resolve, reject });
      this.scheduleFlush();
    });
  }

  stats(): PeerStats {
    let queuedBytes = this.queue.bytes;
    if (this.inline) queuedBytes += this.inline.payload.length - this.inline.offset;
    for (const s of this.snapshots) queuedBytes += s.payload.length - s.offset;
    return {
      url: this.url,
      connected: this.state === "connected",
      queuedBytes,
      queuedMessages: this.queue.length + (this.inline ? 1 : 0) + this.snapshots.length,
      sentFrames: this.sentFrames,
      sentBytes: this.sentBytes,
      droppedFrames: this.droppedFrames,
      ...(this.rttMs === undefined ? {} : { rttMs: this.rttMs }),
    };
  }

  stop(): void {
    this.state = "stopped";
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.socket?.destroy();
    this.failSnapshots(new Error(`peer ${this.label} removed or transport stopped`));
    this.queue.clear();
    this.inline = undefined;
    this.o.metrics?.peerActive.remove({ To: this.label });
  }

  private dial(): void {
    this.state = "dialing";
    this.rejection = undefined;
    const { host, port } = parsePeerUrl(this.url);
    const socket = connect({ host, port, ...this.o.tls.current().options });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    this.handshakeTimer = setTimeout(() => socket.destroy(new Error("peer handshake timed out")), this.o.handshakeTimeoutMs);
    let failure: Error | undefined;
    const parser = new FrameParser((type, body) => this.onFrame(socket, type, body));
    socket.once("secureConnect", () => {
      // Say nothing (not even our ID) to a server that is not the member we meant to reach.
      const problem = this.o.verifyPeer(socket);
      if (problem !== undefined) {
        socket.destroy(new Error(`peer certificate refused: ${problem}`));
        return;
      }
      socket.write(
        encodeFrame(
          FrameType.Hello,
          encodeHello({ version: PROTOCOL_VERSION, clusterId: this.o.clusterId, from: this.o.selfId, to: this.o.peerId }),
        ),
      );
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on("drain", () => {
      this.waitingDrain = false;
      this.flush();
    });
    socket.on("error", (err) => {
      failure ??= err;
    });
    socket.on("close", () => {
      parser.reset();
      this.onClose(socket, failure);
    });
  }

  private onFrame(socket: TLSSocket, type: number, body: Buffer): void {
    if (this.state === "dialing") {
      if (type === FrameType.HelloOk) return this.onConnected(socket);
      if (type === FrameType.Reject) {
        this.rejection = body.toString("utf8");
        socket.destroy(new Error(`peer refused the connection: ${this.rejection}`));
        if (this.rejection.includes(REMOVED_MARKER)) this.o.onRemoved?.();
        return;
      }
    } else if (this.state === "connected" && type === FrameType.Pong && body.length === 8) {
      const sent = body.readBigUInt64BE(0);
      if (sent !== this.pingSentAt) return;
      this.pingSentAt = undefined;
      const seconds = Number(process.hrtime.bigint() - sent) / 1e9;
      this.rttMs = seconds * 1000;
      this.o.metrics?.peerRoundTrip.observe({ To: this.label }, seconds);
      return;
    }
    socket.destroy(new Error(`unexpected frame type ${type} from peer`));
  }

  private onConnected(socket: TLSSocket): void {
    this.state = "connected";
    clearTimeout(this.handshakeTimer);
    this.backoffMs = MIN_BACKOFF_MS;
    if (this.downReason !== undefined || !this.everConnected) {
      this.log.info({ url: this.url }, "peer connected");
    }
    this.downReason = undefined;
    this.everConnected = true;
    this.o.metrics?.peerActive.set({ To: this.label }, 1);
    this.pingTimer = setInterval(() => this.ping(socket), this.o.pingIntervalMs);
    this.pingTimer.unref();
    this.ping(socket);
    this.scheduleFlush();
  }

  private onClose(socket: TLSSocket, failure: Error | undefined): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    clearTimeout(this.handshakeTimer);
    this.waitingDrain = false;
    this.pingSentAt = undefined;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    const wasConnected = this.state === "connected";
    if (this.inline) {
      // The receiver discards a partial message; the sender can only count it lost.
      this.inline = undefined;
      this.countDropped(1);
      this.o.metrics?.peerSentFailures.inc({ To: this.label });
    }
    this.failSnapshots(new Error(`connection to peer ${this.label} lost during snapshot`));
    if (this.state === "stopped") return;
    this.o.metrics?.peerActive.set({ To: this.label }, 0);
    const reason = failure?.message ?? "connection closed by peer";
    if (wasConnected) {
      this.log.warn({ url: this.url, reason }, "lost connection to peer");
      this.downReason = reason;
    } else if (this.downReason !== reason) {
      // Logged when the peer first proves unreachable and when the cause changes, not per attempt.
      this.log.warn({ url: this.url, reason, rejected: this.rejection !== undefined }, "cannot connect to peer");
      this.downReason = reason;
    } else {
      this.log.debug({ url: this.url, reason }, "peer still unreachable");
    }
    this.o.onUnreachable();
    this.redialSoon(wasConnected ? 0 : this.backoffMs);
    if (!wasConnected) this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }

  private redialSoon(delayMs: number): void {
    this.state = "backoff";
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === "backoff") this.dial();
    }, delayMs);
  }

  private ping(socket: TLSSocket): void {
    if (this.pingSentAt !== undefined) {
      const waitedMs = Number(process.hrtime.bigint() - this.pingSentAt) / 1e6;
      if (waitedMs > this.o.peerTimeoutMs) {
        socket.destroy(new Error(`no answer to ping for ${Math.round(waitedMs)} ms`));
      }
      return;
    }
    const body = Buffer.allocUnsafe(8);
    this.pingSentAt = process.hrtime.bigint();
    body.writeBigUInt64BE(this.pingSentAt, 0);
    socket.write(encodeFrame(FrameType.Ping, body));
  }

  private failSnapshots(err: Error): void {
    for (const s of this.snapshots.splice(0)) s.reject(err);
  }

  private countDropped(n: number): void {
    this.droppedFrames += n;
    this.o.metrics?.peerDroppedMessages.inc({ To: this.label }, n);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.waitingDrain || this.state !== "connected") return;
    this.flushScheduled = true;
    // One write per event-loop turn: everything sent during this turn (a whole raft Ready batch)
    // shares one TLS record stream write and one syscall.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const socket = this.socket;
    if (!socket || this.state !== "connected" || this.waitingDrain) return;
    let writable = true;
    let written = 0;
    socket.cork();
    // Ordered lane: small messages coalesced, a large one a chunk at a time.
    while (written < BATCH_BYTES) {
      if (this.inline) {
        writable = this.writeChunk(socket, this.inline, FrameType.Part, FrameType.PartEnd) && writable;
        written += CHUNK_BYTES;
        if (this.inline.offset < this.inline.payload.length) break;
        this.inline = undefined;
        this.sentFrames++;
        continue;
      }
      const next = this.queue.peek();
      if (!next) break;
      if (next.length > CHUNK_BYTES) {
        this.queue.shift();
        this.inline = { payload: next, offset: 0 };
        continue;
      }
      const n = this.writeBatch(socket, BATCH_BYTES - written);
      writable = n.writable && writable;
      written += n.bytes;
    }
    // Snapshot lane: one chunk per flush, so ordered traffic (heartbeats) never waits behind
    // more than one chunk of a snapshot.
    const snap = this.snapshots[0];
    if (snap) {
      writable = this.writeChunk(socket, snap, FrameType.SnapPart, FrameType.SnapEnd) && writable;
      if (snap.offset >= snap.payload.length) {
        this.snapshots.shift();
        this.sentFrames++;
        snap.resolve();
      }
    }
    socket.uncork();
    if (!writable) this.waitingDrain = true;
    else if (this.queue.length > 0 || this.inline || this.snapshots.length > 0) this.scheduleFlush();
  }

  /** Copies as many whole small messages as fit into one buffer and writes it. */
  private writeBatch(socket: TLSSocket, budget: number): { bytes: number; writable: boolean } {
    let count = 0;
    let total = 0;
    const items: Uint8Array[] = [];
    for (let p = this.queue.peek(); p && p.length <= CHUNK_BYTES; p = this.queue.peek()) {
      const size = HEADER_BYTES + p.length;
      if (count > 0 && total + size > budget) break;
      items.push(this.queue.shift()!);
      total += size;
      count++;
    }
    const buf = Buffer.allocUnsafe(total);
    let at = 0;
    for (const p of items) {
      writeHeader(buf, at, FrameType.Msg, p.length);
      buf.set(p, at + HEADER_BYTES);
      at += HEADER_BYTES + p.length;
    }
    this.sentFrames += count;
    this.accountSent(total);
    return { bytes: total, writable: socket.write(buf) };
  }

  /** Writes the next piece of a large payload without copying it. */
  private writeChunk(socket: TLSSocket, s: { payload: Uint8Array; offset: number }, part: FrameType, end: FrameType): boolean {
    const n = Math.min(CHUNK_BYTES, s.payload.length - s.offset);
    const last = s.offset + n >= s.payload.length;
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(header, 0, last ? end : part, n);
    socket.write(header);
    const ok = socket.write(s.payload.subarray(s.offset, s.offset + n));
    s.offset += n;
    this.accountSent(HEADER_BYTES + n);
    return ok;
  }

  private accountSent(bytes: number): void {
    this.sentBytes += bytes;
    this.o.metrics?.peerSentBytes.inc({ To: this.label }, bytes);
  }
}
