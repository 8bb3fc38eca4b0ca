/**
 * Tools of the abuse suite: a member's resident memory, a probe that measures how long the
 * cluster stops answering while an attack runs, and raw gRPC watch streams a test can stop
 * reading (what a slow or hostile client does).
 */
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { loadEtcdGrpc } from "../../node-runtime/server/proto";
import { sleep } from "../server/harness/cluster";

/** Resident set size of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** Samples the RSS of some processes every few ms until stopped; keeps the peak of each. */
export class RssSampler {
  readonly peak = new Map<number, number>();
  private timer: NodeJS.Timeout;
  constructor(readonly pids: number[], everyMs = 50) {
    const sample = () => {
      for (const pid of pids) {
        try {
          const v = rssMiB(pid);
          if (v > (this.peak.get(pid) ?? 0)) this.peak.set(pid, v);
        } catch {
          // the process is gone: the attack's assertions will say so
        }
      }
    };
    sample();
    this.timer = setInterval(sample, everyMs);
  }
  stop(): Map<number, number> {
    clearInterval(this.timer);
    return this.peak;
  }
}

/**
 * Runs `op` back to back until stopped and records the longest time one call took: the
 * cluster's stall as a client sees it. Failed calls count with their duration and are kept.
 */
export class StallProbe {
  longestMs = 0;
  calls = 0;
  readonly errors: string[] = [];
  private stopping = false;
  private readonly loop: Promise<void>;
  constructor(op: () => Promise<unknown>, pauseMs = 20) {
    this.loop = (async () => {
      while (!this.stopping) {
        const t0 = performance.now();
        try {
          await op();
        } catch (e) {
          this.errors.push(e instanceof Error ? e.message : String(e));
        }
        this.longestMs = Math.max(this.longestMs, performance.now() - t0);
        this.calls++;
        await sleep(pauseMs);
      }
    })();
  }
  async stop(): Promise<this> {
    this.stopping = true;
    await this.loop;
    return this;
  }
}

export interface WatchResponse {
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  header: { revision: string };
  events: Array<{ type: string; kv: { key: Buffer; mod_revision: string; value: Buffer } }>;
}

/** A raw Watch stream; reading can be stopped (pause) to play a client that never reads. */
export class RawWatch {
  readonly responses: WatchResponse[] = [];
  private readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<object, WatchResponse>;
  ended = false;
  error: Error | undefined;

  constructor(address: string, creds: grpc.ChannelCredentials, opts: { paused?: boolean } = {}) {
    const { clients } = loadEtcdGrpc();
    this.client = new clients.Watch(address, creds);
    const md = new grpc.Metadata();
    md.set("hasleader", "true");
    const method = (this.client as unknown as { Watch: (md: grpc.Metadata) => grpc.ClientDuplexStream<object, WatchResponse> }).Watch;
    this.call = method.call(this.client, md);
    this.call.on("data", (r: WatchResponse) => this.responses.push(r));
    this.call.on("end", () => (this.ended = true));
    this.call.on("error", (e: Error) => (this.error = e));
    if (opts.paused) this.call.pause();
  }

  create(req: { key: string | Buffer; range_end?: string | Buffer; start_revision?: number | string; watch_id?: string; prev_kv?: boolean }): void {
    const buf = (v: string | Buffer) => (typeof v === "string" ? Buffer.from(v, "latin1") : v);
    this.call.write({
      create_request: {
        key: buf(req.key),
        ...(req.range_end !== undefined ? { range_end: buf(req.range_end) } : {}),
        start_revision: String(req.start_revision ?? 0),
        watch_id: req.watch_id ?? "0",
        prev_kv: req.prev_kv ?? false,
      },
    });
  }

  cancel(id: string): void {
    this.call.write({ cancel_request: { watch_id: id } });
  }

  /** Waits until `pred` holds on the responses so far. */
  async until(what: string, pred: (rs: WatchResponse[]) => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.responses)) {
      if (this.error) throw new Error(`watch stream failed while waiting for ${what}: ${this.error.message}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${this.responses.length} responses)`);
      await sleep(50);
    }
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}
