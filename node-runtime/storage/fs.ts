/**
 * The file-system calls storage makes, as an interface. Production uses `nodeFs` (node:fs/promises
 * itself: the WAL's hot path is the same `FileHandle.write` as before); the whole-member simulator
 * (test/raft/sim/member) passes a simulated disk that loses unsynced data and tears writes on a
 * crash. Only what the WAL, snapshot store and member metadata need, with node's semantics.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";

export interface StorageFile {
  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(len: number): Promise<void>;
  close(): Promise<void>;
}

export interface StorageFs {
  /** `flags` as node's numeric O_* flags or its string shorthands ("r", "wx"). */
  open(path: string, flags: number | string, mode?: number): Promise<StorageFile>;
  readFile(path: string): Promise<Buffer>;
  readdir(dir: string): Promise<string[]>;
  /** As node's recursive mkdir: the first directory created, or undefined if it existed. */
  mkdir(dir: string, opts: { recursive: true; mode: number }): Promise<string | undefined>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  stat(path: string): Promise<{ mode: number }>;
  chmod(path: string, mode: number): Promise<void>;
  /** A token for temp-file names that no earlier process left behind. */
  tempToken(): string;
}

export const nodeFs: StorageFs = {
  open: (path, flags, mode) => open(path, flags, mode),
  readFile: (path) => readFile(path),
  readdir: (dir) => readdir(dir),
  mkdir: (dir, opts) => mkdir(dir, opts),
  unlink: (path) => unlink(path),
  rename: (from, to) => rename(from, to),
  stat: (path) => stat(path),
  chmod: (path, mode) => chmod(path, mode),
  tempToken: () => `${process.pid}.${randomBytes(4).toString("hex")}`,
};
