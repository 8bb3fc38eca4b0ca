/**
 * The part of a bidirectional gRPC stream that our stream handlers (Watch, LeaseKeepAlive) use.
 * A grpc-js ServerDuplexStream satisfies it; the HTTP/JSON gateway provides the same over a
 * chunked HTTP response, so one handler serves both transports.
 *
 * Flow control follows Node's streams: write() returns false once the outgoing buffer is full
 * and "drain" says when it has room again; pause()/resume() stop and restart the incoming
 * requests (so a client that does not read its answers is not read either, as in etcd).
 */
export interface MessageStream<Req, Res> {
  write(msg: Res): boolean;
  end(): unknown;
  /** Ends the stream with an error; `code` (a gRPC status) and `details` travel with it. */
  destroy(err?: Error): unknown;
  pause(): unknown;
  resume(): unknown;
  on(event: "data", listener: (req: Req) => void): unknown;
  on(event: "end" | "cancelled" | "close" | "drain", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
}
