/**
 * One load-generator worker: opens its channels, waits for "go", runs closed-loop clients and
 * reports a histogram. Runs as a forked process or as a worker thread; the coordinator picks.
 * Everything on the hot path is pre-built: frames come from a pool, the callback records one
 * timestamp pair and issues the next request.
 */
import { performance } from "node:perf_hooks";
import { parentPort } from "node:worker_threads";
import { openGrpcJsChannel } from "./grpcjs-channel";
import { openH2Channel, type UnaryChannel } from "./h2-channel";
import { Histogram } from "./histogram";
import type { FromWorker, ToWorker, WorkerConfig, WorkerResult } from "./protocol";
import { readTls } from "./tls-files";
import { benchKey, benchValue, encodePut, encodeRange, grpcFrame, PUT_PATH, RANGE_PATH } from "./wire";

const POOL_SIZE = 4096;
/** After an error a client pauses, so a down server is not hammered in a tight loop. */
const ERROR_BACKOFF_MS = 10;

function send(msg: FromWorker): void {
  if (parentPort) parentPort.postMessage(msg);
  else process.send!(msg);
}

function onMessage(handler: (msg: ToWorker) => void): void {
  if (parentPort) parentPort.on("message", handler);
  else process.on("message", (m) => handler(m as ToWorker));
}

/** xorshift32: deterministic per worker, so runs are repeatable. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

function framePool(cfg: WorkerConfig): Buffer[] {
  const rand = rng(0x9e3779b9 ^ (cfg.workerIndex + 1));
  const value = benchValue();
  return Array.from({ length: POOL_SIZE }, () => {
    const key = benchKey(Math.floor(rand() * cfg.keySpace));
    return grpcFrame(cfg.op === "put" ? encodePut(key, value) : encodeRange(key, cfg.op === "range-serializable"));
  });
}

async function openChannels(cfg: WorkerConfig): Promise<UnaryChannel[]> {
  const tls = readTls(cfg.tls);
  const open = cfg.client === "grpc-js" ? openGrpcJsChannel : openH2Channel;
  return Promise.all(
    Array.from({ length: cfg.channels }, (_, i) => open(cfg.endpoints[(cfg.workerIndex + i) % cfg.endpoints.length]!, tls)),
  );
}

function runTimed(cfg: WorkerConfig, channels: UnaryChannel[]): Promise<WorkerResult> {
  const pool = framePool(cfg);
  const path = cfg.op === "put" ? PUT_PATH : RANGE_PATH;
  const hist = new Histogram();
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  let stopped = false;
  let inflight = 0;
  let onDrained: (() => void) | undefined;
  const measureStart = performance.now() + cfg.warmupMs;
  const measureEnd = measureStart + cfg.durationMs;

  const issue = (ch: UnaryChannel): void => {
    if (stopped) {
      if (--inflight === 0) onDrained?.();
      return;
    }
    const frame = pool[next++ & (POOL_SIZE - 1)]!;
    const t0 = performance.now();
    ch.call(path, frame, (err) => {
      const t1 = performance.now();
      if (t1 >= measureStart && t1 < measureEnd) {
        if (err) {
          errors++;
          firstError ??= err.message;
        } else {
          ops++;
          hist.recordMicros((t1 - t0) * 1000);
        }
      }
      if (err) setTimeout(issue, ERROR_BACKOFF_MS, ch);
      else issue(ch);
    });
  };

  return new Promise((resolve) => {
    let cpuAtStart = process.cpuUsage();
    setTimeout(() => (cpuAtStart = process.cpuUsage()), cfg.warmupMs);
    setTimeout(() => {
      stopped = true;
      // Taken now, so the tail of in-flight requests (not counted) does not inflate it.
      const cpu = process.cpuUsage(cpuAtStart);
      const result: WorkerResult = {
        ops,
        errors,
        firstError,
        hist: hist.toJSON(),
        cpuMicros: cpu.user + cpu.system,
        elapsedMs: cfg.durationMs,
      };
      // Wait for in-flight requests so channels close cleanly, but not forever.
      const giveUp = setTimeout(() => resolve(result), 10_000);
      onDrained = () => {
        clearTimeout(giveUp);
        resolve(result);
      };
      if (inflight === 0) onDrained();
    }, cfg.warmupMs + cfg.durationMs);
    for (let i = 0; i < cfg.concurrency; i++) {
      inflight++;
      issue(channels[i % channels.length]!);
    }
  });
}

/** Puts every key of [from, to) once, `concurrency` at a time. Errors are retried. */
function runFill(cfg: WorkerConfig, channels: UnaryChannel[], from: number, to: number): Promise<WorkerResult> {
  const value = benchValue();
  const hist = new Histogram();
  let next = from;
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  let active = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  return new Promise((resolve) => {
    const put = (ch: UnaryChannel, key: number): void => {
      const started = performance.now();
      ch.call(PUT_PATH, grpcFrame(encodePut(benchKey(key), value)), (err) => {
        if (err) {
          errors++;
          firstError ??= err.message;
          if (errors > 1000) return done();
          setTimeout(put, ERROR_BACKOFF_MS, ch, key);
          return;
        }
        ops++;
        hist.recordMicros((performance.now() - started) * 1000);
        take(ch);
      });
    };
    const take = (ch: UnaryChannel): void => {
      if (next < to) put(ch, next++);
      else if (--active === 0) done();
    };
    const done = (): void => {
      const cpu = process.cpuUsage(cpu0);
      resolve({ ops, errors, firstError, hist: hist.toJSON(), cpuMicros: cpu.user + cpu.system, elapsedMs: performance.now() - t0 });
    };
    const n = Math.max(1, Math.min(cfg.concurrency, to - from));
    active = n;
    for (let i = 0; i < n; i++) take(channels[i % channels.length]!);
  });
}

let config: WorkerConfig | undefined;
let channels: UnaryChannel[] = [];

onMessage((msg) => {
  if (msg.t === "config") {
    config = msg.config;
    openChannels(config).then(
      (chs) => {
        channels = chs;
        send({ t: "ready" });
      },
      (err: Error) => send({ t: "failed", message: `cannot connect: ${err.message}` }),
    );
  } else if (msg.t === "go" && config) {
    const cfg = config;
    const run = cfg.fill ? runFill(cfg, channels, cfg.fill.from, cfg.fill.to) : runTimed(cfg, channels);
    run.then(
      (result) => {
        for (const ch of channels) ch.close();
        send({ t: "result", result });
      },
      (err: Error) => send({ t: "failed", message: err.message }),
    );
  }
});
