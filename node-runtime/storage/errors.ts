/** Errors a caller may want to tell apart: damage found on disk versus misuse of the API. */

/** A WAL record that is damaged somewhere other than a torn tail, or a WAL that contradicts itself. */
export class WalCorruptionError extends Error {
  override readonly name = "WalCorruptionError";
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`WAL corruption in ${file} at byte offset ${offset}: ${reason}`);
  }
}

/** No snapshot file in the directory could be read back intact. */
export class SnapshotCorruptionError extends Error {
  override readonly name = "SnapshotCorruptionError";
}

/**
 * The WAL stopped accepting writes: it was closed, or a write or fdatasync failed. After a
 * failed fsync the page cache state is unknown (the kernel may have dropped the dirty pages),
 * so retrying on the same file is unsafe; the process must reopen and recover.
 */
export class WalUnavailableError extends Error {
  override readonly name = "WalUnavailableError";
}
