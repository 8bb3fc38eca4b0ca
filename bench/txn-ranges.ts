/**
 * One Txn of 128 Range ops, each reading the whole keyspace (issue 15): what the member answers,
 * how far its memory grows and how long a put loop stalls meanwhile, for raftkv (3 members, the
 * dist bundle) and etcd 3.4.23 (one member) on the same data. Not part of npm test.
 *
 *   node --import tsx bench/txn-ranges.ts [--mib 20] [--only raftkv|etcd]
 *
 * Prints one line per server; bench/results/abuse.md quotes the figures.
 */
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { performance } from "node:perf_hooks";
import type { ClientCertPaths } from "../node-runtime/pki";
import { loadEtcdGrpc } from "../node-runtime/server/proto";
import { rssMiB, RssSampler, StallProbe } from "../test/abuse/support";
import { RawMember } from "../test/server/cluster/clients";
import { intFlag, stringFlag } from "../test/helpers/int-flag";
import { forEachServer } from "./lib/servers";
const MIB = intFlag("mib") ?? 20;
const ONLY = stringFlag("only");
const VALUE = Buffer.alloc(100 * 1024, "r");
const OPS = 128;

interface Result {
  server: string;
  answer: string;
  seconds: number;
  rssBefore: number[];
  rssPeak: number[];
  stallMs: number;
  probeErrors: number;
}

async function load(kv: RawMember): Promise<void> {
  const keys = Math.ceil((MIB * 1024 * 1024) / VALUE.length);
  for (let i = 0; i < keys; i += 10) {
    const puts = Array.from({ length: Math.min(10, keys - i) }, (_, j) => ({ request_put: { key: Buffer.from(`big/${String(i + j).padStart(6, "0")}`), value: VALUE } }));
    await kv.call("KV", "Txn", { compare: [], success: puts, failure: [] }, 60_000);
  }
}

/** The Txn through a client that takes any size back, so what fails is the server's answer. */
async function txn(address: string, creds: grpc.ChannelCredentials): Promise<string> {
  const { clients } = loadEtcdGrpc();
  const client = new clients.KV(address, creds, { "grpc.max_receive_message_length": -1 });
  const all = { request_range: { key: Buffer.from([0]), range_end: Buffer.from([0]) } };
  try {
    return await new Promise<string>((resolve) => {
      (client as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void>)["Txn"]!.call(
        client,
        { compare: [], success: Array.from({ length: OPS }, () => all), failure: [] },
        new grpc.Metadata(),
        { deadline: Date.now() + 600_000 },
        (err, res) => {
          if (err) resolve(`${grpc.status[err.code]}: ${err.details}`);
          else resolve(`OK, ${(res as { responses: unknown[] }).responses.length} responses`);
        },
      );
    });
  } finally {
    client.close();
  }
}

/**
 * The Txn from a child process: receiving and decoding a GiB answer stops the client's own event
 * loop for seconds, which the put probe (in this process) must not count as the server's stall.
 */
function txnFromChild(address: string, files: ClientCertPaths): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", __filename, "--txn-client", address, files.ca, files.key, files.cert], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`txn client exited with ${code}: ${out}`))));
  });
}

async function measure(server: string, address: string, files: ClientCertPaths, pids: number[], probeKv: RawMember): Promise<Result> {
  const rssBefore = pids.map(rssMiB);
  const sampler = new RssSampler(pids, 20);
  const probe = new StallProbe(() => probeKv.put("probe", "x", 60_000));
  const t0 = performance.now();
  const answer = await txnFromChild(address, files);
  const seconds = (performance.now() - t0) / 1000;
  await probe.stop();
  const peak = sampler.stop();
  return { server, answer: answer.slice(0, 160), seconds, rssBefore, rssPeak: pids.map((p) => peak.get(p) ?? 0), stallMs: probe.longestMs, probeErrors: probe.errors.length };
}

function print(r: Result): void {
  const f = (xs: number[]) => xs.map((x) => x.toFixed(0)).join("/");
  process.stdout.write(
    `${r.server}: ${MIB} MiB, ${OPS} full ranges: ${r.answer} in ${r.seconds.toFixed(1)} s; RSS before ${f(r.rssBefore)} MiB, peak ${f(r.rssPeak)} MiB; longest put ${r.stallMs.toFixed(0)} ms, ${r.probeErrors} failed\n`,
  );
}

async function main(): Promise<void> {
  process.env["NODE_NO_WARNINGS"] = "1";
  await forEachServer(ONLY, async (s) => {
    const kv = new RawMember(s.address, s.creds);
    try {
      await load(kv);
      print(await measure(s.kind === "etcd" ? "etcd 3.4.23" : "raftkv (leader/followers)", s.address, s.files, s.pids, kv));
    } finally {
      kv.close();
    }
  });
}

const childArgs = stringFlag("txn-client") !== undefined ? process.argv.slice(process.argv.indexOf("--txn-client") + 1) : undefined;
const run = childArgs
  ? async (): Promise<void> => {
      const [address, ca, key, cert] = childArgs as [string, string, string, string];
      process.stdout.write(`${await txn(address, grpc.credentials.createSsl(fs.readFileSync(ca), fs.readFileSync(key), fs.readFileSync(cert)))}\n`);
    }
  : main;

run().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
