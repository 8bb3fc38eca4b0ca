/**
 * Responses a handler has already encoded. grpc-js encodes a unary answer with the method's
 * serializer in one synchronous call after the handler returns; an answer of a GiB or more (a
 * read-only Txn of many full ranges) must instead be written in steps with the event loop free in
 * between (kv/read-encoder.ts), and is then handed to grpc-js as its bytes.
 *
 * grpc-js then copies every message into a new buffer behind its 5-byte frame prefix, in one
 * synchronous step: for 1.3 GB that was 5 s on this loaded machine (the copy first-touches a fresh
 * allocation). A pre-encoded answer is therefore written with those 5 bytes left in front, and
 * sendWithoutCopy() lets grpc-js send such a buffer as its frame, as it is.
 */
import type * as grpc from "@grpc/grpc-js";
// Not part of grpc-js's index: the class whose serializeMessage frames every response.
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors";

/** Bytes to leave in front of a pre-encoded message: gRPC's frame prefix (compressed flag, length). */
export const FRAME_PREFIX_BYTES = 5;

/** An answer's protobuf bytes, sent as they are. */
export class PreEncoded {
  /** `framed`: FRAME_PREFIX_BYTES bytes (filled in here), then the message. */
  constructor(readonly framed: Buffer) {
    framed[0] = 0;
    framed.writeUInt32BE(framed.length - FRAME_PREFIX_BYTES, 1);
  }

  /** The message alone. */
  get bytes(): Buffer {
    return this.framed.subarray(FRAME_PREFIX_BYTES);
  }
}

/** `def` with serializers that send a PreEncoded's bytes as they are (anything else as before). */
export function acceptPreEncoded(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(def).map(([name, method]) => {
      const serialize = method.responseSerialize;
      return [name, { ...method, responseSerialize: (value: unknown) => (value instanceof PreEncoded ? value.bytes : serialize(value)) }];
    }),
  );
}

type FrameMessage = (this: unknown, value: unknown) => Buffer;
let installed = false;

/**
 * Makes grpc-js (the version pinned in package-lock, 1.14) send a PreEncoded's framed buffer
 * without copying it; every other message is framed as before. Returns false when this grpc-js has
 * no such method to wrap: PreEncoded answers are then still correct (acceptPreEncoded's serializer
 * hands over the bytes) but copied once more. test/server/pre-encoded.test.ts checks it applies.
 */
export function sendWithoutCopy(): boolean {
  if (installed) return true;
  const proto = BaseServerInterceptingCall.prototype as unknown as { serializeMessage?: FrameMessage };
  const frame = proto.serializeMessage;
  if (typeof frame !== "function") return false;
  proto.serializeMessage = function (this: unknown, value: unknown): Buffer {
    return value instanceof PreEncoded ? value.framed : frame.call(this, value);
  };
  installed = true;
  return true;
}
