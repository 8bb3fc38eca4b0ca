/**
 * Puts under 300,000 range watchers (issue 15: "range watchers scanned one by one per applied
 * key, 300k watchers: put p50 ×3"): serial put latency before 300k watchers on disjoint ranges
 * are created, while they exist and after they are closed, each put touching one watcher's range (so one event goes out per put), for
 * raftkv (3 members, the dist bundle, watchers and puts on the leader) and etcd 3.4.23 (one
 * member) in the same run, on the same machine. Not part of npm test.
 *
 *   node --import tsx bench/range-watchers.ts [--watchers 300000] [--puts 400] [--only raftkv|etcd]
 *
 * Prints one line per server; bench/results/range-watchers.md quotes the figures.
 */
import * as grpc from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import { loadEtcdGrpc } from "../node-runtime/server/proto";
import { rssMiB } from "../test/abuse/support";
import { RawMember } from "../test/server/cluster/clients";
import { intFlag, stringFlag } from "../test/helpers/int-flag";
import { forEachServer } from "./lib/servers";
const WATCHERS = intFlag("watchers") ?? 300_000;
const PUTS = intFlag("puts") ?? 400;
const ONLY = stringFlag("only");
/** Watchers per Watch stream (raftkv allows 1,000 streams per connection). */
const PER_STREAM = 10_000;

const rangeKey = (i: number): string => `w/${String(i).padStart(7, "0")}`;

interface Latencies {
  p50: number;
  p99: number;
}

interface Result {
  server: string;
  /** Without watchers, before they are created and after they are closed. */
  before: Latencies;
  during: Latencies;
  after: Latencies;
  createSeconds: number;
  rssBefore: number;
  rssAfter: number;
  events: number;
}

/** Serial puts, each into the range of one watcher (spread over all of them). */
async function putLatencies(kv: RawMember, n: number): Promise<Latencies> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${rangeKey(Math.floor((i * WATCHERS) / n))}/probe`;
    const t0 = performance.now();
    await kv.put(key, String(i), 30_000);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(n * 0.5)]!, p99: ms[Math.floor(n * 0.99)]! };
}

/** WATCHERS range watchers, [w/i, w/i\xff) each, over several Watch streams; resolves once all are created. */
async function createWatchers(address: string, creds: grpc.ChannelCredentials): Promise<{ close: () => void; events: () => number }> {
  const { clients } = loadEtcdGrpc();
  const client = new clients.Watch(address, creds);
  const md = new grpc.Metadata();
  md.set("hasleader", "true");
  const open = (client as unknown as { Watch: (md: grpc.Metadata) => grpc.ClientDuplexStream<object, { created: boolean; events: unknown[] }> }).Watch;
  const streams: grpc.ClientDuplexStream<object, { created: boolean; events: unknown[] }>[] = [];
  let created = 0;
  let events = 0;
  let failed: Error | undefined;
  for (let first = 0; first < WATCHERS; first += PER_STREAM) {
    const call = open.call(client, md);
    streams.push(call);
    call.on("data", (r: { created: boolean; events: unknown[] }) => {
      if (r.created) created++;
      events += r.events.length;
    });
    call.on("error", (e: Error) => (failed ??= e));
    for (let i = first; i < Math.min(first + PER_STREAM, WATCHERS); i++) {
      const key = Buffer.from(rangeKey(i), "latin1");
      call.write({ create_request: { key, range_end: Buffer.concat([key, Buffer.from([0xff])]), start_revision: "0", watch_id: "0", prev_kv: false } });
    }
  }
  while (created < WATCHERS) {
    if (failed) throw new Error(`watch stream failed after ${created} watchers: ${failed.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    close: () => {
      for (const s of streams) s.cancel();
      client.close();
    },
    events: () => events,
  };
}

async function measure(server: string, address: string, creds: grpc.ChannelCredentials, pid: number): Promise<Result> {
  const kv = new RawMember(address, creds);
  try {
    await putLatencies(kv, 200); // warm-up: connections, JIT
    const before = await putLatencies(kv, PUTS);
    const rssBefore = rssMiB(pid);
    const t0 = performance.now();
    const watchers = await createWatchers(address, creds);
    const createSeconds = (performance.now() - t0) / 1000;
    let during: Latencies;
    let rssAfter: number;
    let events: number;
    try {
      rssAfter = rssMiB(pid);
      during = await putLatencies(kv, PUTS);
      events = watchers.events();
    } finally {
      watchers.close();
    }
    // Once more without watchers: the load of this shared machine drifts, so the watchers'
    // effect is read against both phases (the one after includes the server's cleanup of the
    // cancelled watchers: etcd's p50 was 10 ms there).
    await new Promise((r) => setTimeout(r, 2000));
    const after = await putLatencies(kv, PUTS);
    return { server, before, during, after, createSeconds, rssBefore, rssAfter, events };
  } finally {
    kv.close();
  }
}

function print(r: Result): void {
  const f = (l: Latencies) => `p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms`;
  process.stdout.write(
    `${r.server}: ${PUTS} serial puts without watchers ${f(r.before)}; with ${WATCHERS} range watchers (created in ${r.createSeconds.toFixed(1)} s, RSS ${r.rssBefore.toFixed(0)} -> ${r.rssAfter.toFixed(0)} MiB) ${f(r.during)}; without them again ${f(r.after)}; p50 with watchers / before x${(r.during.p50 / r.before.p50).toFixed(2)}, / after x${(r.during.p50 / r.after.p50).toFixed(2)}; ${r.events} events delivered\n`,
  );
}

async function main(): Promise<void> {
  process.env["NODE_NO_WARNINGS"] = "1";
  await forEachServer(ONLY, async (s) => {
    const name = s.kind === "etcd" ? "etcd 3.4.23 (1 member)" : "raftkv (3 members, leader)";
    print(await measure(name, s.address, s.creds, s.pids[0]!));
  });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
