/**
 * The benchmark rows and the order they run in on one cluster. Order matters for fairness:
 * memory is measured right after loading exactly `fillKeys` keys (before the put rows add
 * a throughput-dependent amount of history), reads hit keys that exist, and the leader is
 * killed last because it disturbs the cluster.
 */
import type { BenchCluster } from "./cluster";
import { measureFailover } from "./failover";
import { fillKeys, runLoad, type LoadOptions, type LoadResult, type WorkerMode } from "./loadgen";
import type { ClientKind, OpKind } from "./protocol";

export interface BenchConfig {
  warmupMs: number;
  durationMs: number;
  putConcurrency: number[];
  rangeConcurrency: number;
  fillKeys: number;
  fillConcurrency: number;
  failoverTrials: number;
  workers: number;
  channelsPerWorker: number;
  mode: WorkerMode;
  client: ClientKind;
}

export type Better = "higher" | "lower";

export interface RowDef {
  id: string;
  label: string;
  unit: "ops/s" | "ms" | "MiB";
  better: Better;
}

/** One measured value, or why there is none. */
export type Cell = { value: number } | { error: string };

export interface TargetRun {
  label: string;
  /** Set when the cluster never came up; every cell then carries it. */
  startError?: string;
  cells: Record<string, Cell>;
  /** Raw results for the JSON file: load runs, failover trials, RSS per member. */
  details: Record<string, unknown>;
}

const OPS: Array<{ op: OpKind; name: string }> = [
  { op: "range-linearizable", name: "linearizable range" },
  { op: "range-serializable", name: "serializable range" },
];

export function rowDefs(cfg: BenchConfig): RowDef[] {
  const rows: RowDef[] = [];
  const load = (prefix: string, name: string): void => {
    rows.push({ id: `${prefix}.tput`, label: `${name}: throughput`, unit: "ops/s", better: "higher" });
    rows.push({ id: `${prefix}.p50`, label: `${name}: p50 latency`, unit: "ms", better: "lower" });
    rows.push({ id: `${prefix}.p99`, label: `${name}: p99 latency`, unit: "ms", better: "lower" });
  };
  for (const c of cfg.putConcurrency) load(`put.c${c}`, `put, ${c} client${c === 1 ? "" : "s"}`);
  for (const { op, name } of OPS) load(`${op}.c${cfg.rangeConcurrency}`, `${name}, ${cfg.rangeConcurrency} clients`);
  rows.push({ id: "failover.ms", label: "kill -9 leader → next successful write", unit: "ms", better: "lower" });
  rows.push({ id: "rss.sum", label: `RSS after ${cfg.fillKeys} keys, sum of 3 members`, unit: "MiB", better: "lower" });
  rows.push({ id: "rss.max", label: `RSS after ${cfg.fillKeys} keys, largest member`, unit: "MiB", better: "lower" });
  return rows;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export type Progress = (line: string) => void;

/** Runs every row against a running cluster. A failing row is recorded and the rest go on. */
export async function runRows(cluster: BenchCluster, cfg: BenchConfig, progress: Progress): Promise<TargetRun> {
  const run: TargetRun = { label: cluster.label, cells: {}, details: {} };
  const fail = (ids: string[], err: unknown): void => {
    progress(`  ${ids[0]}: ${errorText(err)}`);
    for (const id of ids) run.cells[id] = { error: errorText(err) };
  };
  // Leader first: the 1-client row then measures the commit path without a forwarding hop,
  // the same way for both servers, and wider rows spread over all members.
  const endpointsNow = async (): Promise<string[]> => {
    const leader = await cluster.leader();
    return [leader, ...cluster.members.map((m) => m.name).filter((n) => n !== leader)].map((n) => cluster.clientUrl(n));
  };
  const base = async (): Promise<Omit<LoadOptions, "op" | "concurrency">> => ({
    endpoints: await endpointsNow(),
    tls: cluster.tls,
    workers: cfg.workers,
    channelsPerWorker: cfg.channelsPerWorker,
    mode: cfg.mode,
    client: cfg.client,
    keySpace: cfg.fillKeys,
    warmupMs: cfg.warmupMs,
    durationMs: cfg.durationMs,
  });

  try {
    const rate = await fillKeys({ ...(await base()), concurrency: cfg.fillConcurrency }, cfg.fillKeys);
    progress(`  loaded ${cfg.fillKeys} keys at ${Math.round(rate)} puts/s`);
    const rss = cluster.rssKiB();
    const mib = Object.values(rss).map((k) => k / 1024);
    run.cells["rss.sum"] = { value: mib.reduce((a, b) => a + b, 0) };
    run.cells["rss.max"] = { value: Math.max(...mib) };
    run.details["rssKiB"] = rss;
  } catch (err) {
    fail(["rss.sum", "rss.max"], err);
  }

  const loadRow = async (prefix: string, op: OpKind, concurrency: number): Promise<void> => {
    try {
      const r: LoadResult = await runLoad({ ...(await base()), op, concurrency });
      run.details[prefix] = r;
      if (r.ops === 0) throw new Error(`no successful request (${r.errors} errors; first: ${r.firstError ?? "none"})`);
      run.cells[`${prefix}.tput`] = { value: r.opsPerSec };
      run.cells[`${prefix}.p50`] = { value: r.p50Ms };
      run.cells[`${prefix}.p99`] = { value: r.p99Ms };
      const errs = r.errors > 0 ? `, ${r.errors} errors (${r.firstError ?? ""})` : "";
      progress(
        `  ${prefix}: ${Math.round(r.opsPerSec)} ops/s p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms, ` +
          `client ${Number.isNaN(r.clientCpuMicrosPerOp) ? "?" : r.clientCpuMicrosPerOp.toFixed(0)} µs cpu/op${errs}`,
      );
    } catch (err) {
      fail([`${prefix}.tput`, `${prefix}.p50`, `${prefix}.p99`], err);
    }
  };
  for (const c of cfg.putConcurrency) await loadRow(`put.c${c}`, "put", c);
  for (const { op } of OPS) await loadRow(`${op}.c${cfg.rangeConcurrency}`, op, cfg.rangeConcurrency);

  if (cfg.failoverTrials === 0) return run;
  try {
    const trials: Array<{ killedLeader: string; recoveryMs: number }> = [];
    for (let i = 0; i < cfg.failoverTrials; i++) {
      const t = await measureFailover(cluster);
      trials.push(t);
      progress(`  failover trial ${i + 1}: killed ${t.killedLeader}, next write after ${t.recoveryMs.toFixed(0)} ms`);
      await cluster.restart(t.killedLeader);
    }
    run.details["failover"] = trials;
    run.cells["failover.ms"] = { value: median(trials.map((t) => t.recoveryMs)) };
  } catch (err) {
    fail(["failover.ms"], err);
  }
  return run;
}
