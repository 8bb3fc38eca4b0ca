/**
 * The load generator's coordinator: starts workers (forked processes or worker threads), hands
 * each a share of the clients, starts them together and merges their histograms.
 */
import { fork, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { trackPid, untrackPid } from "./cleanup";
import { Histogram } from "./histogram";
import type { ClientKind, FromWorker, OpKind, ToWorker, WorkerConfig, WorkerResult } from "./protocol";
import type { TlsFiles } from "./tls-files";

export type WorkerMode = "fork" | "thread";

export interface LoadOptions {
  /** Client URLs; workers open their channels round-robin over them. */
  endpoints: string[];
  tls: TlsFiles;
  op: OpKind;
  /** Total closed-loop clients. */
  concurrency: number;
  workers: number;
  /** Connections per worker (capped by that worker's clients). */
  channelsPerWorker: number;
  mode: WorkerMode;
  client: ClientKind;
  keySpace: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  op: OpKind;
  concurrency: number;
  workers: number;
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Client CPU per successful op (fork mode; NaN for threads, which share the coordinator). */
  clientCpuMicrosPerOp: number;
}

const WORKER_FILE = path.join(__dirname, "worker.ts");

interface WorkerHandle {
  send(msg: ToWorker): void;
  onMessage(fn: (msg: FromWorker) => void): void;
  onExit(fn: (why: string) => void): void;
  stop(): Promise<void>;
}

function startWorker(mode: WorkerMode): WorkerHandle {
  if (mode === "thread") {
    // A thread does not inherit tsx's loader hooks from `--import tsx`; register tsx's
    // CommonJS hook inside the thread before loading the TypeScript entry.
    const boot = `require("tsx/cjs/api").register(); require(${JSON.stringify(WORKER_FILE)});`;
    const w = new Worker(boot, { eval: true });
    return {
      send: (m) => w.postMessage(m),
      onMessage: (fn) => w.on("message", fn),
      onExit: (fn) => {
        w.on("error", (e) => fn(e.message));
        w.on("exit", (code) => fn(`thread exited with code ${code}`));
      },
      stop: async () => {
        await w.terminate();
      },
    };
  }
  const child: ChildProcess = fork(WORKER_FILE, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  trackPid(child.pid!);
  return {
    send: (m) => child.send(m),
    onMessage: (fn) => child.on("message", (m) => fn(m as FromWorker)),
    onExit: (fn) => child.on("exit", (code, sig) => fn(`worker process exited (code ${String(code)}, signal ${String(sig)})`)),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      }
      untrackPid(child.pid!);
    },
  };
}

/** Splits n into k near-equal positive parts. */
function split(n: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

interface RunSpec {
  configs: WorkerConfig[];
  mode: WorkerMode;
}

/** Starts the workers, waits until all are connected, says go, and collects their results. */
async function runWorkers(spec: RunSpec): Promise<{ results: WorkerResult[]; coordinatorCpuMicros: number }> {
  const handles = spec.configs.map(() => startWorker(spec.mode));
  try {
    const waitAll = <T>(pick: (m: FromWorker) => T | undefined): Promise<T[]> =>
      Promise.all(
        handles.map(
          (h) =>
            new Promise<T>((resolve, reject) => {
              h.onMessage((m) => {
                if (m.t === "failed") reject(new Error(m.message));
                const v = pick(m);
                if (v !== undefined) resolve(v);
              });
              h.onExit((why) => reject(new Error(why)));
            }),
        ),
      );
    const ready = waitAll((m) => (m.t === "ready" ? true : undefined));
    handles.forEach((h, i) => h.send({ t: "config", config: spec.configs[i]! }));
    await ready;
    const results = waitAll((m) => (m.t === "result" ? m.result : undefined));
    const cpu0 = process.cpuUsage();
    for (const h of handles) h.send({ t: "go" });
    const out = await results;
    const cpu = process.cpuUsage(cpu0);
    return { results: out, coordinatorCpuMicros: cpu.user + cpu.system };
  } finally {
    await Promise.all(handles.map((h) => h.stop()));
  }
}

function baseConfigs(o: LoadOptions, concurrency: number): WorkerConfig[] {
  const workers = Math.max(1, Math.min(o.workers, concurrency));
  return split(concurrency, workers).map((c, i) => ({
    workerIndex: i,
    endpoints: o.endpoints,
    tls: o.tls,
    client: o.client,
    channels: Math.max(1, Math.min(o.channelsPerWorker, c)),
    concurrency: c,
    op: o.op,
    keySpace: o.keySpace,
    warmupMs: o.warmupMs,
    durationMs: o.durationMs,
  }));
}

/** A timed closed-loop run. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const configs = baseConfigs(o, o.concurrency);
  const { results } = await runWorkers({ configs, mode: o.mode });
  const hist = new Histogram();
  let ops = 0;
  let errors = 0;
  let cpu = 0;
  let firstError: string | undefined;
  for (const r of results) {
    hist.merge(new Histogram(r.hist));
    ops += r.ops;
    errors += r.errors;
    cpu += r.cpuMicros;
    firstError ??= r.firstError;
  }
  const seconds = o.durationMs / 1000;
  return {
    op: o.op,
    concurrency: o.concurrency,
    workers: configs.length,
    ops,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    seconds,
    opsPerSec: ops / seconds,
    p50Ms: hist.quantileMicros(0.5) / 1000,
    p99Ms: hist.quantileMicros(0.99) / 1000,
    clientCpuMicrosPerOp: o.mode === "fork" && ops > 0 ? cpu / ops : NaN,
  };
}

/** Puts keys 0..count-1 once each; returns puts/s. Throws if any key could not be written. */
export async function fillKeys(o: Omit<LoadOptions, "op" | "warmupMs" | "durationMs" | "keySpace">, count: number): Promise<number> {
  const configs = baseConfigs({ ...o, op: "put", warmupMs: 0, durationMs: 0, keySpace: count }, o.concurrency);
  const parts = split(count, configs.length);
  let from = 0;
  configs.forEach((c, i) => {
    c.fill = { from, to: from + parts[i]! };
    from += parts[i]!;
  });
  const { results } = await runWorkers({ configs, mode: o.mode });
  const ops = results.reduce((s, r) => s + r.ops, 0);
  if (ops !== count) {
    const why = results.find((r) => r.firstError)?.firstError ?? "unknown";
    throw new Error(`fill wrote ${ops} of ${count} keys (first error: ${why})`);
  }
  return count / (Math.max(...results.map((r) => r.elapsedMs)) / 1000);
}
