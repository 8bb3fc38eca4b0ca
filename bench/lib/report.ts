/** Turns the runs of both servers into the ratio table (markdown) and a JSON record. */
import { execFileSync } from "node:child_process";
import * as os from "node:os";
import type { BenchConfig, Cell, RowDef, TargetRun } from "./scenarios";

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  etcd: string;
  /** 1-minute load average when the run started: other work on the box skews results. */
  loadAverageAtStart: number;
}

export function machineInfo(etcdBin: string): MachineInfo {
  let etcd = "unknown";
  try {
    etcd = execFileSync(etcdBin, ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim();
  } catch {
    // reported as unknown
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    etcd,
    loadAverageAtStart: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

export interface ReportRow extends RowDef {
  etcd: Cell;
  raftkv: Cell;
  /** ≥ 1.0 means raftkv at least as good; undefined when either side has no value. */
  ratio?: number;
  /** The same row for an older raftkv build (`--baseline REF`), when one was measured. */
  baseline?: Cell;
  /** ≥ 1.0 means this build at least as good as the baseline build. */
  vsBaseline?: number;
}

/** An older raftkv build measured in the same run: the git ref asked for and its commit. */
export interface BaselineInfo {
  ref: string;
  commit: string;
}

export interface Report {
  date: string;
  machine: MachineInfo;
  config: BenchConfig;
  rows: ReportRow[];
  runs: Record<string, TargetRun>;
  baseline?: BaselineInfo;
}

function value(c: Cell): number | undefined {
  return "value" in c ? c.value : undefined;
}

export function ratioOf(row: RowDef, etcd: Cell, raftkv: Cell): number | undefined {
  const e = value(etcd);
  const r = value(raftkv);
  if (e === undefined || r === undefined || e <= 0 || r <= 0) return undefined;
  return row.better === "higher" ? r / e : e / r;
}

/** The run key of the baseline build in `runs`. */
export const BASELINE = "baseline";

export function buildReport(
  defs: RowDef[],
  runs: Record<string, TargetRun>,
  config: BenchConfig,
  machine: MachineInfo,
  baseline?: BaselineInfo,
): Report {
  const cellOf = (label: string, id: string): Cell => {
    const run = runs[label];
    if (!run) return { error: "not run" };
    if (run.startError !== undefined) return { error: `failed to start (${run.startError})` };
    return run.cells[id] ?? { error: "not measured" };
  };
  const rows = defs.map((d) => {
    const etcd = cellOf("etcd", d.id);
    const raftkv = cellOf("raftkv", d.id);
    const ratio = ratioOf(d, etcd, raftkv);
    const row: ReportRow = { ...d, etcd, raftkv, ...(ratio !== undefined ? { ratio } : {}) };
    if (baseline !== undefined) {
      row.baseline = cellOf(BASELINE, d.id);
      const vs = ratioOf(d, row.baseline, raftkv);
      if (vs !== undefined) row.vsBaseline = vs;
    }
    return row;
  });
  return { date: new Date().toISOString(), machine, config, rows, runs, ...(baseline !== undefined ? { baseline } : {}) };
}

function fmt(c: Cell, unit: string): string {
  if ("error" in c) {
    const one = c.error.replace(/\s+/g, " ").replace(/\|/g, "\\|");
    return one.length > 140 ? `${one.slice(0, 137)}...` : one;
  }
  if (unit === "ops/s") return `${Math.round(c.value).toLocaleString("en-US")} ops/s`;
  if (unit === "ms") return `${c.value < 10 ? c.value.toFixed(2) : c.value.toFixed(0)} ms`;
  return `${c.value.toFixed(1)} MiB`;
}

function ratioText(x: number | undefined): string {
  return x === undefined ? "—" : x.toFixed(2);
}

export function renderMarkdown(r: Report): string {
  const b = r.baseline;
  const m = r.machine;
  const c = r.config;
  const lines = [
    `# raftkv vs etcd — ${r.date}`,
    "",
    `Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.etcd}; ` +
      `load average at start ${m.loadAverageAtStart}.`,
    `Both: 3 members on loopback, mutual TLS on client and peer ports, data on disk (fsync), default ` +
      `heartbeat/election settings, 8-byte keys, 256-byte values. Each load row: ${c.warmupMs} ms warm-up, ` +
      `${c.durationMs} ms measured, closed loop; ${c.workers} ${c.mode} worker(s), ${c.client} client, ` +
      `${c.channelsPerWorker} connection(s) per worker; leader's endpoint first.`,
    "",
    "Ratio: raftkv/etcd for throughput, etcd/raftkv for latency, time and memory — **≥ 1.0 always means raftkv at least as good**.",
    "",
    ...(b === undefined
      ? []
      : [
          `Baseline: raftkv built from \`${b.ref}\` (${b.commit.slice(0, 12)}) in the same run; ` +
            "\"vs baseline\" is this build against it, **≥ 1.0 means this build at least as good**.",
          "",
        ]),
    `| Row | etcd 3.4.23 | raftkv | Ratio (≥ 1.0 = raftkv at least as good) |${b === undefined ? "" : " raftkv baseline | vs baseline |"}`,
    `| --- | ---: | ---: | ---: |${b === undefined ? "" : " ---: | ---: |"}`,
    ...r.rows.map((row) => {
      const main = `| ${row.label} | ${fmt(row.etcd, row.unit)} | ${fmt(row.raftkv, row.unit)} | ${ratioText(row.ratio)} |`;
      return b === undefined || row.baseline === undefined ? main : `${main} ${fmt(row.baseline, row.unit)} | ${ratioText(row.vsBaseline)} |`;
    }),
    "",
  ];
  for (const [label, run] of Object.entries(r.runs)) {
    const name = label === BASELINE && b !== undefined ? `raftkv baseline (${b.ref})` : label;
    if (run.startError !== undefined) lines.push(`${name}: failed to start (${run.startError})`, "");
  }
  return lines.join("\n");
}
