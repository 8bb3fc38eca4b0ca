/** Messages between the load generator's coordinator and its workers (process or thread). */
import type { TlsFiles } from "./tls-files";

export type OpKind = "put" | "range-linearizable" | "range-serializable";
export type ClientKind = "h2" | "grpc-js";

export interface WorkerConfig {
  workerIndex: number;
  endpoints: string[];
  tls: TlsFiles;
  client: ClientKind;
  /** Connections this worker opens, assigned to endpoints round-robin. */
  channels: number;
  /** Closed-loop clients in this worker, spread over its channels. */
  concurrency: number;
  op: OpKind;
  /** Keys are drawn from benchKey(0 .. keySpace-1). */
  keySpace: number;
  /** Timed run: measure completions in [warmup, warmup+duration). */
  warmupMs: number;
  durationMs: number;
  /**
   * Fill run instead of a timed one: put every key in [fillFrom, fillTo) exactly once, then
   * stop. Used to load the key space before measuring memory and reads.
   */
  fill?: { from: number; to: number };
}

export interface WorkerResult {
  ops: number;
  errors: number;
  firstError?: string;
  /** Histogram bucket counts (see Histogram), latency in µs. */
  hist: number[];
  /** CPU this worker's process used inside the measured window (fork mode only). */
  cpuMicros: number;
  /** Wall time of the measured window. */
  elapsedMs: number;
}

export type ToWorker = { t: "config"; config: WorkerConfig } | { t: "go" };
export type FromWorker = { t: "ready" } | { t: "result"; result: WorkerResult } | { t: "failed"; message: string };
