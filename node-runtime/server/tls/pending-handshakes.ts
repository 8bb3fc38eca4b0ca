/**
 * Connections that have not finished their handshake yet, on one listening port.
 *
 * Anyone who can reach the port can open them, and until they finish the handshake they have
 * proved nothing, so what they may hold is bounded three ways:
 *
 * - an absolute deadline from accept (not an idle timeout: a client trickling one byte of its
 *   ClientHello at a time must not keep its slot), enforced by one sweeper over the sockets in
 *   accept order, so a busy event loop delays closing them but never skips it;
 * - a cap per port: at the cap the oldest pending connection is closed to make room, so a
 *   flood cannot lock genuine clients out, it only shortens everyone's time to handshake;
 * - a cap per remote address, the same way: one host flooding closes its own oldest first.
 *
 * The TLS state (an OpenSSL object per connection) is created only when the first bytes arrive
 * (see `onFirstBytes`), so a connection that never sends anything costs a bare socket.
 *
 * Sockets are keyed by remote address and port, which the TLS socket wrapping a raw socket
 * shares with it: either may be passed to `done`.
 */
import type * as net from "node:net";

export interface PendingLimits {
  /** From accept to a finished handshake, at most (ms). */
  deadlineMs: number;
  /** Pending connections on the port at once; the oldest is closed to admit a new one. */
  maxPending: number;
  /** Pending connections from one remote address at once; that address's oldest is closed. */
  maxPendingPerAddress: number;
}

export type EvictReason = "deadline" | "port-cap" | "address-cap";

interface Entry {
  socket: net.Socket;
  address: string;
  acceptedAt: number;
}

export class PendingHandshakes {
  /** In accept order (a Map iterates in insertion order): the first entry is the oldest. */
  private readonly pending = new Map<string, Entry>();
  private readonly byAddress = new Map<string, Set<string>>();
  private readonly sweeper: NodeJS.Timeout;
  /** Connections closed because of a limit, by reason (for tests, logs and metrics). */
  readonly evicted: Record<EvictReason, number> = { deadline: 0, "port-cap": 0, "address-cap": 0 };

  constructor(
    private readonly limits: PendingLimits,
    private readonly onEvict: (reason: EvictReason, address: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, Math.floor(limits.deadlineMs / 4))));
    this.sweeper.unref();
  }

  get size(): number {
    return this.pending.size;
  }

  /** Starts the clock for a newly accepted socket, closing older pending ones if over a cap. */
  admit(socket: net.Socket): void {
    const key = keyOf(socket);
    const address = socket.remoteAddress;
    if (key === undefined || address === undefined) return void socket.destroy();
    this.sweep();
    const mine = this.byAddress.get(address) ?? new Set<string>();
    while (mine.size >= this.limits.maxPendingPerAddress) this.evict(first(mine)!, "address-cap");
    while (this.pending.size >= this.limits.maxPending) this.evict(first(this.pending.keys())!, "port-cap");
    this.pending.set(key, { socket, address, acceptedAt: this.now() });
    mine.add(key);
    this.byAddress.set(address, mine);
    socket.once("close", () => this.forget(key));
  }

  /** The handshake finished: the connection is no longer counted or timed here. */
  done(socket: net.Socket): void {
    const key = keyOf(socket);
    if (key !== undefined) this.forget(key);
  }

  /** Stops the sweeper and closes every pending connection. */
  close(): void {
    clearInterval(this.sweeper);
    for (const e of [...this.pending.values()]) e.socket.destroy();
    this.pending.clear();
    this.byAddress.clear();
  }

  /** Closes every connection past its deadline (the oldest come first; stops at the first young one). */
  sweep(): void {
    const cutoff = this.now() - this.limits.deadlineMs;
    for (const [key, e] of this.pending) {
      if (e.acceptedAt > cutoff) break;
      this.evict(key, "deadline");
    }
  }

  private evict(key: string, reason: EvictReason): void {
    const e = this.pending.get(key);
    if (!e) return;
    this.forget(key);
    this.evicted[reason]++;
    this.onEvict(reason, e.address);
    e.socket.destroy();
  }

  private forget(key: string): void {
    const e = this.pending.get(key);
    if (!e) return;
    this.pending.delete(key);
    const mine = this.byAddress.get(e.address);
    mine?.delete(key);
    if (mine?.size === 0) this.byAddress.delete(e.address);
  }
}

function first<T>(it: Iterable<T>): T | undefined {
  for (const x of it) return x;
  return undefined;
}

function keyOf(socket: net.Socket): string | undefined {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined || remotePort === undefined ? undefined : `${remoteAddress}|${remotePort}`;
}

/**
 * Calls `then` once the socket has bytes to read (leaving them unread, for the TLS layer to
 * take), or closes it if it ends first. Until then the connection holds no TLS state.
 */
export function onFirstBytes(socket: net.Socket, then: () => void): void {
  const onReadable = () => {
    socket.off("readable", onReadable);
    if (socket.readableLength === 0) return void socket.destroy();
    then();
  };
  socket.on("readable", onReadable);
}
