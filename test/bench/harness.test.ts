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
