/** Public surface of the storage layer: WAL, snapshot files, data-dir metadata. */
export { crc32c } from "./crc32c";
export { writeFileAtomic, fsyncDir } from "./durable-fs";
export { nodeFs, type StorageFile, type StorageFs } from "./fs";
export { SnapshotCorruptionError, WalCorruptionError, WalUnavailableError } from "./errors";
export { LogOrderError } from "./log-tracker";
export { readMeta, writeMeta, MEMBER_META_FILE, type MemberMeta } from "./member-meta";
export { storagePaths } from "./paths";
export { DEFAULT_SNAPSHOTS_KEPT, SnapshotStore, type SnapshotStoreOptions } from "./snapshot-store";
export type { StorageLogger } from "./logger";
export { DEFAULT_SEGMENT_BYTES, WriteAheadLog, type WalOptions, type WalRecovered } from "./wal";
