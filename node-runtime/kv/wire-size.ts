/**
 * Encoded sizes of the etcd API's messages, computed without encoding: the watch server splits
 * fragments by them and the store refuses a response that could not be sent (etcd's gRPC send
 * limit) before building it.
 *
 * They count what our encoder writes: protobufjs (through proto-loader) writes every field present
 * on the object, zeros included, where etcd's Go encoder omits zeros; our responses carry all six
 * KeyValue fields, so a key-value costs a few bytes more than in etcd.
 */

/** gRPC's send limit on our server, as etcd's (math.MaxInt32): no response may be larger. */
export const MAX_RESPONSE_BYTES = 2 ** 31 - 1;

/** Bytes of a varint holding `v` (int64/uint64; negative int64 take ten bytes). */
export function varintSize(v: number | bigint | string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 2 ** 28) return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : 4;
  let n = typeof v === 'bigint' ? v : BigInt(v);
  if (n < 0n) return 10;
  let size = 1;
  while (n >= 0x80n) {
    n >>= 7n;
    size++;
  }
  return size;
}

/** A varint field with a one-byte tag (every field of these messages has a number below 16). */
export function intField(v: number | string): number {
  return 1 + varintSize(v === '' ? 0 : v);
}

/** A length-delimited field (bytes, string, message) of `len` bytes with a one-byte tag. */
export function lenField(len: number): number {
  return 1 + varintSize(len) + len;
}

/** A KeyValue message of these lengths and numbers, as we encode it (all six fields). */
export function keyValueSize(keyLen: number, create: number, mod: number, version: number, valueLen: number, lease: string): number {
  return lenField(keyLen) + intField(create) + intField(mod) + intField(version) + lenField(valueLen) + intField(lease);
}
