/**
 * `npm run bench`: measures a 3-member etcd 3.4 cluster and a 3-member raftkv cluster one
 * after the other in the same session (they never run at the same time, the box has only
 * two cores), then writes bench/results/latest.md and latest.json and prints the table.
 *
 *   npm run bench                 full run (about 2 minutes per server)
 *   npm run bench -- --quick      short rows, 2,000 keys: checks the harness end to end
 *   npm run bench -- --only etcd  one server
 *   npm run bench -- --baseline REF   also measures raftkv built from git REF (before/after)
 * Durations also come from BENCH_WARMUP_MS / BENCH_DURATION_MS; see --help.
 */
import { Command, Option } from "commander";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cleanupNow, trackDir } from "./lib/cleanup";
import { etcdSpec, raftkvSpec, startCluster, type ServerSpec } from "./lib/cluster";
import { BASELINE, buildReport, machineInfo, renderMarkdown, type BaselineInfo } from "./lib/report";
import { rowDefs, runRows, type BenchConfig, type TargetRun } from "./lib/scenarios";

const ROOT = path.resolve(__dirname, "..");

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got ${v}`);
  return n;
}

function list(v: string): number[] {
  return v.split(",").map(int);
}

interface CliOptions {
  quick: boolean;
  warmupMs?: number;
  durationMs?: number;
  putClients: number[];
  rangeClients: number;
  keys?: number;
  failoverTrials?: number;
  workers: number;
  channels: number;
  mode: "fork" | "thread";
  client: "h2" | "grpc-js";
  only?: "etcd" | "raftkv";
  build: boolean;
  baseline?: string;
  out: string;
}

function parse(argv: string[]): CliOptions {
  const envInt = (name: string): number | undefined => (process.env[name] ? int(process.env[name]!) : undefined);
  return new Command("bench")
    .option("--quick", "short rows and a small key space (smoke run)", false)
    .option("--warmup-ms <ms>", "warm-up per load row (env BENCH_WARMUP_MS; default 1000, quick 200)", int, envInt("BENCH_WARMUP_MS"))
    .option("--duration-ms <ms>", "measured time per load row (env BENCH_DURATION_MS; default 5000, quick 1000)", int, envInt("BENCH_DURATION_MS"))
    .option("--put-clients <list>", "concurrency of the put rows", list, [1, 16, 64, 256])
    .option("--range-clients <n>", "concurrency of the range rows", int, 64)
    .option("--keys <n>", "keys loaded before the memory and read rows (default 100000, quick 2000)", int)
    .option("--failover-trials <n>", "leader kills; the median is reported (default 3, quick 1)", int)
    .option("--workers <n>", "load-generator workers", int, 1)
    .option("--channels <n>", "connections per worker", int, 3)
    .addOption(new Option("--mode <mode>", "workers as processes or threads").choices(["fork", "thread"]).default("fork"))
    .addOption(new Option("--client <kind>", "gRPC client implementation").choices(["h2", "grpc-js"]).default("h2"))
    .addOption(new Option("--only <server>", "measure one server").choices(["etcd", "raftkv"]))
    .option("--no-build", "do not run scripts/build.mjs before starting raftkv")
    .option("--baseline <ref>", "also measure raftkv built from this git commit, branch or tag (before/after a change)")
    .option("--out <dir>", "where latest.md and latest.json go", path.join(ROOT, "bench", "results"))
    .parse(argv)
    .opts<CliOptions>();
}

function configFrom(o: CliOptions): BenchConfig {
  return {
    warmupMs: o.warmupMs ?? (o.quick ? 200 : 1000),
    durationMs: o.durationMs ?? (o.quick ? 1000 : 5000),
    putConcurrency: o.putClients,
    rangeConcurrency: o.rangeClients,
    fillKeys: o.keys ?? (o.quick ? 2000 : 100_000),
    fillConcurrency: 256,
    failoverTrials: o.failoverTrials ?? (o.quick ? 1 : 3),
    workers: o.workers,
    channelsPerWorker: o.channels,
    mode: o.mode,
    client: o.client,
  };
}

/** Runs a command to completion; its last lines of output become the error when it fails. */
function run(what: string, command: string, args: string[], cwd: string): string {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || r.error?.message || `exit ${String(r.status)}`).trim().split("\n").slice(-3).join(" ");
    throw new Error(`${what} failed: ${why}`);
  }
  return r.stdout;
}

function buildRaftkv(root: string): void {
  run("build", process.execPath, [path.join(root, "scripts", "build.mjs")], root);
}

/**
 * Checks out `ref` (git archive, no work tree touched) into a temp dir that shares this
 * checkout's node_modules, and returns that dir; its own build script writes the bundle there
 * right before the baseline is measured.
 */
function baselineTree(ref: string): { info: BaselineInfo; root: string } {
  let commit: string;
  try {
    commit = run("git rev-parse", "git", ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], ROOT).trim();
  } catch {
    throw new Error(`--baseline ${ref}: not a commit in ${ROOT}`);
  }
  const root = mkdtempSync(path.join(os.tmpdir(), "raftkv-bench-baseline-"));
  trackDir(root);
  const tar = path.join(root, "src.tar");
  run("git archive", "git", ["archive", "--format=tar", "-o", tar, commit], ROOT);
  run("tar", "tar", ["-xf", tar, "-C", root], root);
  symlinkSync(path.join(ROOT, "node_modules"), path.join(root, "node_modules"), "dir");
  return { info: { ref, commit }, root };
}

async function measure(spec: ServerSpec, cfg: BenchConfig, prepare: () => void): Promise<TargetRun> {
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  log(`${spec.label}: starting 3 members`);
  let cluster;
  try {
    prepare();
    cluster = await startCluster(spec);
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ").trim();
    log(`${spec.label}: failed to start (${reason})`);
    return { label: spec.label, startError: reason, cells: {}, details: {} };
  }
  try {
    return await runRows(cluster, cfg, log);
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv);
  const cfg = configFrom(o);
  const etcd = etcdSpec();
  const machine = machineInfo(etcd.command);
  const baseline = o.baseline !== undefined && o.only !== "etcd" ? baselineTree(o.baseline) : undefined;
  const runs: Record<string, TargetRun> = {};
  if (o.only !== "raftkv") runs["etcd"] = await measure(etcd, cfg, () => undefined);
  if (baseline !== undefined) {
    const spec = { ...raftkvSpec(path.join(baseline.root, "dist", "raftkv.cjs")), label: "raftkv-baseline" };
    runs[BASELINE] = await measure(spec, cfg, () => buildRaftkv(baseline.root));
  }
  if (o.only !== "etcd") {
    runs["raftkv"] = await measure(raftkvSpec(path.join(ROOT, "dist", "raftkv.cjs")), cfg, () => (o.build ? buildRaftkv(ROOT) : undefined));
  }
  const report = buildReport(rowDefs(cfg), runs, cfg, machine, baseline?.info);
  const md = renderMarkdown(report);
  mkdirSync(o.out, { recursive: true });
  writeFileSync(path.join(o.out, "latest.md"), md);
  writeFileSync(path.join(o.out, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${md}\nwritten: ${path.join(o.out, "latest.md")}, latest.json\n`);
}

main().then(
  () => {
    cleanupNow();
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanupNow();
    process.exit(1);
  },
);
