/**
 * Running out of file descriptors (EMFILE, ENFILE) is a passing condition, not a storage
 * failure: connections close, descriptors come back. The WAL retries the calls that need a
 * new descriptor (opening a segment, fsyncing the directory) with backoff instead of failing
 * the write and with it the member; writes wait meanwhile, as on a slow disk.
 */
import type { StorageLogger } from "./logger";

const FIRST_DELAY_MS = 10;
const MAX_DELAY_MS = 1000;
/** A waiting WAL says so at most this often. */
const REPORT_EVERY_MS = 10_000;

export function isFdExhaustion(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/** Runs fn, retrying for as long as it fails only because no descriptor is free. */
export async function retryOnFdExhaustion<T>(what: string, fn: () => Promise<T>, logger: StorageLogger): Promise<T> {
  let delay = FIRST_DELAY_MS;
  let reported = 0;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isFdExhaustion(err)) throw err;
      const now = Date.now();
      if (now - reported >= REPORT_EVERY_MS) {
        reported = now;
        logger("out of file descriptors; WAL write waits and retries", { what, code: (err as { code: string }).code });
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
}
