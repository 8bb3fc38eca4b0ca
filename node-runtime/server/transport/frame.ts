// The peer wire format: every frame is a 4-byte big-endian body length, a 1-byte type and the
// body. Raft messages travel as MSG frames; anything larger than one chunk is cut into PART
// frames closed by a PART_END, so a large payload never occupies the socket (or the event loop)
// for long. Snapshots use their own PART/END pair so they can interleave with ordinary traffic.

export const HEADER_BYTES = 5;
/** Payloads above this size are split; also the largest body a receiver accepts in one frame. */
export const CHUNK_BYTES = 1 << 20;
/** Handshake and ping bodies are tiny; leave room above a full chunk for nothing else. */
export const MAX_FRAME_BODY = CHUNK_BYTES;

export const enum FrameType {
  /** One whole message. */
  Msg = 1,
  /** A piece of an ordered message; more follow. */
  Part = 2,
  /** The last piece of an ordered message. */
  PartEnd = 3,
  /** A piece of a snapshot message (separate lane, may interleave with ordered frames). */
  SnapPart = 4,
  SnapEnd = 5,
  /** Body: 8 opaque bytes echoed back in the pong. */
  Ping = 6,
  Pong = 7,
  /** Dialer → acceptor, body: JSON handshake. */
  Hello = 8,
  /** Acceptor → dialer: handshake accepted (empty body). */
  HelloOk = 9,
  /** Acceptor → dialer: handshake refused, body: UTF-8 reason. The connection closes. */
  Reject = 10,
  /**
   * Dialer → acceptor instead of a Hello, body: JSON {version, clusterId}. A member joining an
   * existing cluster does not know its own ID yet (`member add` chose it): it asks a member for
   * the member list, as etcd's GetClusterFromRemotePeers does over the peer URLs.
   */
  MembersQuery = 11,
  /** Acceptor → dialer: the answer to a MembersQuery, body: JSON. The connection closes. */
  MembersReply = 12,
}

export class FrameError extends Error {
  override name = "FrameError";
}

export function writeHeader(target: Buffer, offset: number, type: FrameType, bodyLength: number): void {
  target.writeUInt32BE(bodyLength, offset);
  target[offset + 4] = type;
}

/** A complete small frame (handshake, ping) in one buffer. */
export function encodeFrame(type: FrameType, body: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeHeader(out, 0, type, body.length);
  out.set(body, HEADER_BYTES);
  return out;
}

/**
 * Incremental decoder for a byte stream of frames. Chunks are kept as received and copied at
 * most once: a frame that lies within one chunk is handed out as a view of it; a frame spread
 * over several chunks is assembled into one new buffer when its last byte arrives. Work per
 * chunk is therefore linear in its size, whatever the split.
 */
export class FrameParser {
  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private offset = 0;
  private buffered = 0;
  private readonly scratch = Buffer.allocUnsafe(HEADER_BYTES);

  constructor(
    private readonly onFrame: (type: number, body: Buffer) => void,
    private readonly maxBody: number = MAX_FRAME_BODY,
  ) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= HEADER_BYTES) {
      const header = this.peekHeader();
      const length = header.readUInt32BE(0);
      if (length > this.maxBody) throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxBody}`);
      if (this.buffered < HEADER_BYTES + length) return;
      const type = header[4]!;
      this.skip(HEADER_BYTES);
      const body = this.take(length);
      // A callback that ends the connection calls reset(), which empties the buffer and so
      // ends this loop too.
      this.onFrame(type, body);
    }
  }

  /** Drops buffered bytes; later pushes start a fresh stream. */
  reset(): void {
    this.chunks = [];
    this.offset = 0;
    this.buffered = 0;
  }

  private peekHeader(): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= HEADER_BYTES) return first.subarray(this.offset, this.offset + HEADER_BYTES);
    this.copyOut(this.scratch, HEADER_BYTES, false);
    return this.scratch;
  }

  private skip(n: number): void {
    while (n > 0) {
      const first = this.chunks[0]!;
      const avail = first.length - this.offset;
      if (avail > n) {
        this.offset += n;
        this.buffered -= n;
        return;
      }
      n -= avail;
      this.buffered -= avail;
      this.chunks.shift();
      this.offset = 0;
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.skip(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    this.copyOut(out, n, true);
    return out;
  }

  /** Copies n bytes from the front into target; consumes them when `consume` is set. */
  private copyOut(target: Buffer, n: number, consume: boolean): void {
    let written = 0;
    let index = 0;
    let offset = this.offset;
    while (written < n) {
      const chunk = this.chunks[index]!;
      const count = Math.min(chunk.length - offset, n - written);
      chunk.copy(target, written, offset, offset + count);
      written += count;
      offset += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) {
      // Only whole chunks are removed, once: splicing `index` chunks keeps this linear.
      this.chunks.splice(0, index);
      this.offset = offset;
      this.buffered -= n;
    }
  }
}
