/**
 * The part of a bidirectional gRPC stream that our stream handlers (Watch, LeaseKeepAlive) use.
 * A grpc-js ServerDuplexStream satisfies it; the HTTP/JSON gateway provides the same over a
 * chunked HTTP response, so one handler serves both transports.
 */
export interface MessageStream<Req, Res> {
  write(msg: Res): unknown;
  end(): unknown;
  /** Ends the stream with an error; `code` (a gRPC status) and `details` travel with it. */
  destroy(err?: Error): unknown;
  on(event: "data", listener: (req: Req) => void): unknown;
  on(event: "end" | "cancelled" | "close", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
}
