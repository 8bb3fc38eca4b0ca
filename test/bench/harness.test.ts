/**
 * Smoke test of the benchmark's load generator against one real etcd member: the
 * hand-encoded requests are accepted and stored, and a short timed run reports a positive
 * rate and ordered percentiles. No timing goals: numbers belong in bench/results.
 */
import * as assert from "node:assert/strict";
import { startReferenceEtcd, ETCDCTL_BIN, type ReferenceEtcd } from "../helpers/etcd-reference";
import { cleanCtlEnv, runCli } from "../helpers/run-cli";
import { fillKeys, runLoad, type LoadOptions } from "../../bench/lib/loadgen";
import { Histogram } from "../../bench/lib/histogram";
import { GrpcStatusError, openH2Channel } from "../../bench/lib/h2-channel";
import { readTls } from "../../bench/lib/tls-files";
import { BASELINE, buildReport, renderMarkdown } from "../../bench/lib/report";
import { rowDefs, type TargetRun } from "../../bench/lib/scenarios";
import { benchKey, encodeRange, grpcFrame, RANGE_PATH } from "../../bench/lib/wire";

describe("bench load generator (against a reference etcd)", function () {
  this.timeout(60_000);
  let etcd: ReferenceEtcd | undefined;

  before(async () => {
    etcd = await startReferenceEtcd({ name: "bench-smoke" });
  });
  after(async () => {
    await etcd?.stop();
  });

  const options = (): Omit<LoadOptions, "op" | "concurrency"> => ({
    endpoints: [etcd!.endpoint],
    tls: etcd!.client,
    workers: 1,
    channelsPerWorker: 2,
    mode: "fork",
    client: "h2",
    keySpace: 200,
    warmupMs: 200,
    durationMs: 1000,
  });

  it("fills the key space with 8-byte keys and 256-byte values that etcd stores", async () => {
    const rate = await fillKeys({ ...options(), concurrency: 16 }, 200);
    assert.ok(rate > 0);
    const keys = await runCli(ETCDCTL_BIN, ["get", "k", "--prefix", "--keys-only", ...etcd!.ctlFlags], cleanCtlEnv());
    assert.equal(keys.code, 0, keys.stderr);
    const listed = keys.stdout.split("\n").filter((l) => l !== "");
    assert.deepEqual(listed, Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(7, "0")}`));
    const one = await runCli(ETCDCTL_BIN, ["get", "k0000199", "--print-value-only", ...etcd!.ctlFlags], cleanCtlEnv());
    assert.equal(one.stdout.trim().length, 256);
  });

  for (const op of ["put", "range-serializable", "range-linearizable"] as const) {
    it(`runs a closed-loop ${op} load and reports throughput and ordered percentiles`, async () => {
      const r = await runLoad({ ...options(), op, concurrency: 8 });
      assert.equal(r.errors, 0, r.firstError);
      assert.ok(r.ops > 0 && r.opsPerSec > 0, `no ops: ${JSON.stringify(r)}`);
      assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms, `p50 ${r.p50Ms} p99 ${r.p99Ms}`);
      assert.ok(r.clientCpuMicrosPerOp > 0);
    });
  }

  it("reports a gRPC error status as an error with its code, and a success as none", async () => {
    const ch = await openH2Channel(etcd!.endpoint, readTls(etcd!.client));
    try {
      const call = (path: string): Promise<Error | undefined> =>
        new Promise((resolve) => ch.call(path, grpcFrame(encodeRange(benchKey(1), true)), resolve, 5000));
      assert.equal(await call(RANGE_PATH), undefined);
      const err = await call("/etcdserverpb.KV/NoSuchMethod");
      assert.ok(err instanceof GrpcStatusError, String(err));
      assert.equal(err.code, 12); // UNIMPLEMENTED
    } finally {
      ch.close();
    }
  });
});

describe("bench latency histogram", () => {
  it("merges and reports quantiles within its 1 % bucket width", () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let us = 1; us <= 1000; us++) (us % 2 ? a : b).recordMicros(us * 100);
    a.merge(new Histogram(b.toJSON()));
    assert.equal(a.total, 1000);
    const p50 = a.quantileMicros(0.5);
    const p99 = a.quantileMicros(0.99);
    assert.ok(Math.abs(p50 - 50_000) / 50_000 < 0.02, `p50 ${p50}`);
    assert.ok(Math.abs(p99 - 99_000) / 99_000 < 0.02, `p99 ${p99}`);
  });
});

describe("bench report with a baseline build", () => {
  const cfg = {
    warmupMs: 1,
    durationMs: 1,
    putConcurrency: [1],
    rangeConcurrency: 64,
    fillKeys: 10,
    fillConcurrency: 1,
    failoverTrials: 1,
    workers: 1,
    channelsPerWorker: 1,
    mode: "fork" as const,
    client: "h2" as const,
  };
  const machine = { cpus: 2, cpuModel: "x", memoryGiB: 1, kernel: "k", node: "v20", etcd: "etcd 3.4.23", loadAverageAtStart: 0 };
  const run = (label: string, tput: number, p50: number): TargetRun => ({
    label,
    cells: { "put.c1.tput": { value: tput }, "put.c1.p50": { value: p50 } },
    details: {},
  });

  it("compares this build with the baseline, ≥ 1.0 meaning at least as good, and names the baseline commit", () => {
    const runs = { etcd: run("etcd", 1000, 1), [BASELINE]: run("raftkv-baseline", 800, 2), raftkv: run("raftkv", 1200, 1.6) };
    const report = buildReport(rowDefs(cfg), runs, cfg, machine, { ref: "main~3", commit: "0123456789abcdef0123" });
    const tput = report.rows.find((r) => r.id === "put.c1.tput")!;
    const p50 = report.rows.find((r) => r.id === "put.c1.p50")!;
    assert.equal(tput.vsBaseline, 1.5); // 1200 / 800
    assert.equal(p50.vsBaseline, 1.25); // 2 / 1.6
    assert.equal(tput.ratio, 1.2);
    const p99 = report.rows.find((r) => r.id === "put.c1.p99")!;
    assert.equal(p99.vsBaseline, undefined);
    const md = renderMarkdown(report);
    assert.match(md, /`main~3` \(0123456789ab\)/);
    assert.match(md, /\| put, 1 client: throughput \| 1,000 ops\/s \| 1,200 ops\/s \| 1\.20 \| 800 ops\/s \| 1\.50 \|/);
  });

  it("leaves the baseline columns out when no baseline was measured", () => {
    const report = buildReport(rowDefs(cfg), { etcd: run("etcd", 1000, 1), raftkv: run("raftkv", 1200, 1.6) }, cfg, machine);
    assert.equal(report.rows[0]!.baseline, undefined);
    assert.doesNotMatch(renderMarkdown(report), /baseline/);
  });
});
