/**
 * The workload process, started inside a worker's network namespace (so it reaches the load
 * balancer the way a worker does): a background writer and a linearizable reader through the
 * NLB with the worker's client certificate, using the `etcd3` npm client.
 *
 * What counts as a failed request: a call that fails after the client's own retry policy, which
 * is etcd3's default (up to 3 attempts on recoverable gRPC errors) with a short backoff, and no
 * per-host circuit breaker (there is one endpoint, the NLB: a breaker would turn one failure into
 * five seconds of refusals). Every call has a 5 s deadline, as etcdctl's command timeout.
 *
 * Writer: puts wl/<run>/<seq> = <seq>, one at a time; every acknowledged seq is kept.
 * Both loops pause PACE_MS between requests: the cluster, the lab and Pulumi share two cores,
 * and an unpaced client would mostly measure its own CPU use.
 * Reader: reads, linearizably, the key of the last acknowledged write as seen just before the
 * read was sent; not finding that value is a linearizability violation ("stale").
 *
 * Config: a JSON file (argv[2], removed once read: it holds the key). SIGUSR1 prints the counts
 * so far as one JSON line on stdout; SIGTERM stops, prints the final counts (with every
 * acknowledged seq) and exits.
 */
import { readFileSync, rmSync } from "node:fs";
import { Etcd3 } from "etcd3";
import { ExponentialBackoff, handleWhen, noop, retry } from "cockatiel";
import { isRecoverableError } from "etcd3/lib/errors";

export interface WorkloadConfig {
  /** Address the client dials (the NLB's address as the worker resolves its DNS name). */
  address: string;
  port: number;
  /** The NLB's DNS name: the TLS server name the members' certificates carry. */
  serverName: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  prefix: string;
}

export interface WorkloadCounts {
  writes: { ok: number; failed: number };
  reads: { ok: number; failed: number; stale: number };
  /** A few distinct error messages, for the report. */
  errors: string[];
  lastAcked: number;
}

export interface WorkloadFinal extends WorkloadCounts {
  acked: number[];
}

const DEADLINE_MS = 5000;
const PACE_MS = 20;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const cfgPath = process.argv[2]!;
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8")) as WorkloadConfig;
  rmSync(cfgPath, { force: true });
  process.env["NODE_NO_WARNINGS"] = "1";
  const client = new Etcd3({
    hosts: `https://${cfg.address}:${cfg.port}`,
    credentials: { rootCertificate: Buffer.from(cfg.caPem), certChain: Buffer.from(cfg.certPem), privateKey: Buffer.from(cfg.keyPem) },
    grpcOptions: { "grpc.ssl_target_name_override": cfg.serverName, "grpc.default_authority": cfg.serverName },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + DEADLINE_MS }),
    faultHandling: {
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 3, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) }),
    },
  });

  const counts: WorkloadCounts = { writes: { ok: 0, failed: 0 }, reads: { ok: 0, failed: 0, stale: 0 }, errors: [], lastAcked: 0 };
  const acked: number[] = [];
  const note = (what: string, e: unknown) => {
    // The wall-clock time lets a report line up a failure with the plan's steps and the load balancer's log.
    const msg = `${new Date().toISOString().slice(11, 23)} ${what}: ${(e as Error).message ?? String(e)}`.slice(0, 300);
    if (counts.errors.length < 10 && !counts.errors.includes(msg)) counts.errors.push(msg);
  };
  let stopping = false;
  const key = (seq: number) => `${cfg.prefix}${String(seq).padStart(8, "0")}`;

  const writer = (async () => {
    for (let seq = 1; !stopping; seq++) {
      try {
        await client.put(key(seq)).value(String(seq));
        counts.writes.ok++;
        acked.push(seq);
        counts.lastAcked = seq;
        await pause(PACE_MS);
      } catch (e) {
        counts.writes.failed++;
        note(`put ${key(seq)}`, e);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();

  const reader = (async () => {
    while (!stopping) {
      const seq = counts.lastAcked;
      if (seq === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      try {
        const v = await client.get(key(seq)).string();
        await pause(PACE_MS);
        if (v === String(seq)) counts.reads.ok++;
        else {
          counts.reads.stale++;
          note(`get ${key(seq)}`, new Error(`stale read: got ${JSON.stringify(v)} after the write was acknowledged`));
        }
      } catch (e) {
        counts.reads.failed++;
        note(`get ${key(seq)}`, e);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();

  process.on("SIGUSR1", () => process.stdout.write(`${JSON.stringify(counts)}\n`));
  process.on("SIGTERM", () => {
    stopping = true;
    void Promise.all([writer, reader]).then(() => {
      const final: WorkloadFinal = { ...counts, acked };
      process.stdout.write(`${JSON.stringify(final)}\n`, () => {
        client.close();
        process.exit(0);
      });
    });
  });
  process.stdout.write("started\n");
}

void main().catch((e: unknown) => {
  process.stderr.write(`workload: ${(e as Error).message}\n`);
  process.exit(1);
});
