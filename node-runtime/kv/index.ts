/** The key-value state machine: what the server applies from the raft log and reads from. */
export * from './types';
export * from './errors';
export { encodeCommand, decodeCommand } from './codec';
export { KvStore, DEFAULT_OPTIONS, isReadOnlyTxn, isSerializableTxn } from './store';
export type { KvStoreOptions, KvApplyResult, ResponseOf } from './store';
export { Lessor, MAX_LEASE_TTL, EXPIRED_RETRY_MS } from './lessor';
export type { WatchOptions, WatchListener, WatchHandle, WatchFilter } from './watch';
export { prepareCommand, validateCommand, validatePut, validateRange, validateDelete, validateTxn, DEFAULT_LIMITS } from './validate';
export type { Limits } from './validate';
