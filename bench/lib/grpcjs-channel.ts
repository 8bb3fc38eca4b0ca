/**
 * The same unary channel on @grpc/grpc-js, kept to measure what the library costs a client
 * (`--client grpc-js`). Requests are pre-encoded messages; responses are not decoded.
 */
import * as grpc from "@grpc/grpc-js";
import type { TlsMaterial } from "./tls-files";
import type { UnaryCallback, UnaryChannel } from "./h2-channel";

const identity = (b: Buffer): Buffer => b;

export async function openGrpcJsChannel(endpoint: string, tls: TlsMaterial): Promise<UnaryChannel> {
  const target = endpoint.replace(/^https:\/\//, "");
  // A local subchannel pool gives every channel its own connection; grpc-js would otherwise
  // share one TCP connection among all clients with the same target and options.
  const client = new grpc.Client(target, grpc.credentials.createSsl(tls.ca, tls.key, tls.cert), {
    "grpc.use_local_subchannel_pool": 1,
    // See h2-channel.ts: check the certificate's localhost name, not an IP as SNI.
    "grpc.ssl_target_name_override": "localhost",
  });
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
  return {
    call(path: string, frame: Buffer, cb: UnaryCallback, deadlineMs?: number): void {
      // grpc-js adds the 5-byte gRPC prefix itself.
      const message = frame.subarray(5);
      const opts: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
      client.makeUnaryRequest(path, identity, identity, message, opts, (err) => cb(err ?? undefined));
    },
    close(): void {
      client.close();
    },
  };
}
