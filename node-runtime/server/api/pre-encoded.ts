/**
 * Responses a handler has already encoded. grpc-js encodes a unary answer with the method's
 * serializer in one synchronous call after the handler returns; an answer of a GiB or more (a
 * read-only Txn of many full ranges) must instead be written in steps with the event loop free in
 * between (kv/read-encoder.ts), and is then handed to grpc-js as its bytes.
 */
import type * as grpc from "@grpc/grpc-js";

/** An answer's protobuf bytes, sent as they are. */
export class PreEncoded {
  constructor(readonly bytes: Buffer) {}
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
