import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "../../../node-runtime/raft/types";
import { WriteAheadLog, type WalOptions } from "../../../node-runtime/storage";
import { payloadFor } from "./payload";

export function entries(first: number, n: number, term: number, size?: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({ index: first + i, term, type: 0, data: payloadFor(first + i, term, size) }));
}

export function indexTerms(es: readonly Entry[]): Array<[number, number]> {
  return es.map((e) => [e.index, e.term]);
}

/** A temp directory removed after the test, whatever happens. */
export function useTempDir(): { readonly path: string } {
  const holder = { path: "" };
  beforeEach(async () => {
    holder.path = await mkdtemp(join(tmpdir(), "raftkv-storage-"));
  });
  afterEach(async () => {
    await rm(holder.path, { recursive: true, force: true });
  });
  return holder;
}

export async function openWal(dir: string, opts: WalOptions = {}) {
  const logs: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
  const res = await WriteAheadLog.open(dir, { ...opts, logger: (msg, fields) => logs.push({ msg, fields }) });
  return { ...res, logs };
}

/** Opens, hands the WAL to `fn`, and always closes it. */
export async function withWal<T>(dir: string, opts: WalOptions, fn: (wal: WriteAheadLog) => Promise<T>): Promise<T> {
  const { wal } = await openWal(dir, opts);
  try {
    return await fn(wal);
  } finally {
    await wal.close();
  }
}
