/**
 * The few file operations durability depends on, in one place: complete writes, directory
 * fsync (a new, renamed or deleted name is only durable once its directory is synced), and
 * the temp-file + fsync + rename + dir-fsync sequence for whole-file replacement.
 */
import { basename, dirname, join } from "node:path";
import { nodeFs, type StorageFile, type StorageFs } from "./fs";

export const TEMP_SUFFIX = ".tmp";

/** Writes all of `buf` at `position`; a regular-file write may legally be short. */
export async function writeFully(fh: StorageFile, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += bytesWritten;
  }
}

export async function fsyncDir(dir: string, fs: StorageFs = nodeFs): Promise<void> {
  const fh = await fs.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` with `chunks` so that after a crash the file holds either the old or the new
 * content, never a mix. The temp name ends in TEMP_SUFFIX so readers can skip leftovers.
 */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[], fs: StorageFs = nodeFs): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${fs.tempToken()}${TEMP_SUFFIX}`);
  const fh = await fs.open(tmp, "wx", 0o600);
  let renamed = false;
  try {
    let pos = 0;
    for (const c of chunks) {
      await writeFully(fh, c, pos);
      pos += c.length;
    }
    await fh.sync();
    await fh.close();
    await fs.rename(tmp, path);
    renamed = true;
    await fsyncDir(dir, fs);
  } finally {
    if (!renamed) {
      await fh.close().catch(() => undefined);
      await fs.unlink(tmp).catch(() => undefined);
    }
  }
}
