/**
 * A client's GOAWAY does not end its connection here: the server keeps serving every stream the
 * client opens until the client closes the connection itself.
 *
 * Why: a grpc-js client that closes a channel while a call is starting (the `etcd3` package does
 * this whenever one of its own streams ends CANCELLED: it takes that for a failed host and closes
 * every channel to it) sends GOAWAY(NO_ERROR), and nghttp2 puts that frame ahead of the HEADERS
 * of a stream opened in the same tick. Node's HTTP/2 server answers a GOAWAY(NO_ERROR) by closing
 * the session (lib/internal/http2/core.js, onGoawayData → session.close()), i.e. with its own
 * GOAWAY naming the last stream it had seen, which refuses the stream whose HEADERS follow; the
 * client's transparent retry then lands on the channel it just closed and the call fails with
 * `14 UNAVAILABLE` ("No connection established" in grpc-js 1.8, "Channel closed before call
 * started" in 1.14). etcd 3.4's server answers a client's GOAWAY the same way (Go's x/net/http2
 * starts a graceful shutdown; checked with a raw HTTP/2 client), but there the race is lost far
 * less often (measured with the etcd3 client: 1 of 60 calls against 9 of 60 on raftkv; the etcd3
 * suite's election tests failed in 14 of 26 runs on raftkv, 0 of 18 on etcd): it answers a
 * request and the watch response that makes the client close its channels from different
 * goroutines, while raftkv answered both in one write, which the client reads in one tick.
 * Serving those streams removes the race instead of making it rarer. RFC 9113 §6.8 lets the sender of a GOAWAY keep opening
 * streams; only the receiver must stop, and the server never opens streams.
 *
 * A GOAWAY with an error code still ends the session at once (Node's default), as does the
 * socket closing; our own shutdown (grpc-js drain/tryShutdown) closes sessions as before.
 */
import type * as grpc from "@grpc/grpc-js";
import * as http2 from "node:http2";

/** Keeps `session` open when its client sends GOAWAY(NO_ERROR). */
export function serveAfterClientGoaway(session: http2.ServerHttp2Session): void {
  session.on("goaway", (code: number) => {
    if (code !== http2.constants.NGHTTP2_NO_ERROR) return;
    // Node calls session.close() synchronously right after emitting 'goaway': that one call is
    // skipped. Any later close (our shutdown) goes through, even if Node stops making that call.
    const close = session.close;
    session.close = function skipCloseAfterClientGoaway(): void {
      session.close = close;
    };
    queueMicrotask(() => {
      session.close = close;
    });
  });
}

/**
 * The HTTP/2 servers a grpc-js Server made so far (its injectors' among them). grpc-js does not
 * expose them; `Server.http2Servers` is checked here so that an upgrade that renames it fails at
 * start (and in tests) instead of silently bringing the refused streams back.
 */
export function grpcHttp2Servers(server: grpc.Server): http2.Http2Server[] {
  const m = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(m instanceof Map)) throw new Error("@grpc/grpc-js: Server.http2Servers is not a Map any more; see node-runtime/server/api/client-goaway.ts");
  return [...(m as Map<http2.Http2Server, unknown>).keys()];
}
