/**
 * Hand-encoded etcd requests in gRPC framing. The load generator sends the same few message
 * shapes millions of times, so it builds their bytes once instead of paying protobufjs per
 * call. Field numbers are etcd's (etcdserverpb.PutRequest / RangeRequest).
 */

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function bytesField(field: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...varint(value.length)]), value]);
}

/** PutRequest{key=1, value=2}. */
export function encodePut(key: Buffer, value: Buffer): Buffer {
  return Buffer.concat([bytesField(1, key), bytesField(2, value)]);
}

/** RangeRequest{key=1, serializable=7}: a single-key get. */
export function encodeRange(key: Buffer, serializable: boolean): Buffer {
  const parts = [bytesField(1, key)];
  if (serializable) parts.push(Buffer.from([(7 << 3) | 0, 1]));
  return Buffer.concat(parts);
}

/** A gRPC length-prefixed message: flag byte 0 (uncompressed), big-endian u32 length, body. */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export const KEY_BYTES = 8;
export const VALUE_BYTES = 256;

/** Key i of the benchmark key space as exactly 8 bytes: "k" and 7 zero-padded digits. */
export function benchKey(i: number): Buffer {
  if (!Number.isInteger(i) || i < 0 || i > 9_999_999) throw new RangeError(`key index ${i} outside 0..9999999`);
  return Buffer.from(`k${String(i).padStart(KEY_BYTES - 1, "0")}`, "latin1");
}

/** A 256-byte value; its content does not matter to either server, only its size. */
export function benchValue(): Buffer {
  return Buffer.alloc(VALUE_BYTES, 0x76);
}

export const PUT_PATH = "/etcdserverpb.KV/Put";
export const RANGE_PATH = "/etcdserverpb.KV/Range";
