// Throughput of the raft peer transport between two members over mutual TLS on loopback, each
// member in its own process as in a real cluster.
//   npx tsx bench/transport.bench.ts [messages=1000000]
// Writes bench/results/transport.md.
import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../node-runtime/server/obs/logger";
import { ReloadingTls } from "../node-runtime/server/tls/reloading";
import { PeerTransport } from "../node-runtime/server/transport";
import { makeCa, makeLeaf, writeMemberFiles, type MemberFiles } from "../test/server/tls/certs";

const SMALL = 300;
/** Member 1 sends, member 2 receives; their certificates name them. */
const DIRECTORY = [
  { id: 1, name: "member-1", peerURLs: [] },
  { id: 2, name: "member-2", peerURLs: [] },
];
const SNAPSHOT = 256 * 1024 * 1024;

type ToParent = { ready: number } | { done: number; bytes: number };

async function receiver(filesJson: string, expected: number, expectedBytes: number): Promise<void> {
  const files = JSON.parse(filesJson) as MemberFiles;
  // Its dialer towards member 1 fails by design (see addPeer below); only errors matter here.
  const logger = createLogger({ level: "error" });
  const tls = new ReloadingTls(files, { logger, watch: false });
  let count = 0;
  let bytes = 0;
  const t = new PeerTransport({
    selfId: 2,
    clusterId: "bench",
    listen: { host: "127.0.0.1", port: 0 },
    tls,
    logger,
    directory: () => DIRECTORY,
    onMessage: (_from, payload) => {
      count++;
      bytes += payload.length;
      if (count === expected || bytes === expectedBytes) {
        process.send!({ done: count, bytes } satisfies ToParent);
        count = 0;
        bytes = 0;
      }
    },
  });
  await t.start();
  t.addPeer(1, "https://127.0.0.1:1"); // accepts member 1; never dialed successfully, never used
  process.send!({ ready: t.port } satisfies ToParent);
}

async function main(): Promise<void> {
  const messages = Number(process.argv[2] ?? 1_000_000);
  const dir = mkdtempSync(join(tmpdir(), "raftkv-bench-"));
  const ca = await makeCa("bench-ca");
  const filesA = writeMemberFiles(join(dir, "a"), await makeLeaf(ca, "member-1", { member: "member-1" }), [ca]);
  const filesB = writeMemberFiles(join(dir, "b"), await makeLeaf(ca, "member-2", { member: "member-2" }), [ca]);
  const child = fork(__filename, ["--receiver", JSON.stringify(filesB), String(messages), String(SNAPSHOT)], {
    execArgv: ["--import", "tsx"],
  });
  const next = () => new Promise<ToParent>((resolve) => child.once("message", (m) => resolve(m as ToParent)));
  const ready = (await next()) as { ready: number };

  const logger = createLogger({ level: "warn" });
  const tls = new ReloadingTls(filesA, { logger, watch: false });
  const a = new PeerTransport({
    selfId: 1,
    clusterId: "bench",
    listen: { host: "127.0.0.1", port: 0 },
    tls,
    logger,
    directory: () => DIRECTORY,
    onMessage: () => {},
  });
  await a.start();
  a.addPeer(2, `https://127.0.0.1:${ready.ready}`);
  while (!a.stats().get(2)!.connected) await new Promise((r) => setTimeout(r, 10));

  // Small messages, produced in bursts like raft Ready batches, paced by the queue so that none
  // is dropped (a drop would make the receiver wait forever).
  const payload = Buffer.alloc(SMALL, 1);
  const doneSmall = next();
  const t0 = process.hrtime.bigint();
  let sent = 0;
  while (sent < messages) {
    if (a.stats().get(2)!.queuedBytes < 4 * 1024 * 1024) {
      for (let i = 0; i < 1000 && sent < messages; i++, sent++) a.send(2, payload);
    }
    await new Promise((r) => setImmediate(r));
  }
  await doneSmall;
  const smallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  const dropped = a.stats().get(2)!.droppedFrames;

  const snapshot = Buffer.alloc(SNAPSHOT, 7);
  const doneSnap = next();
  const t1 = process.hrtime.bigint();
  await a.sendSnapshot(2, snapshot);
  await doneSnap;
  const snapSec = Number(process.hrtime.bigint() - t1) / 1e9;

  await a.stop();
  tls.close();
  child.kill();
  rmSync(dir, { recursive: true, force: true });

  const rate = messages / smallSec;
  const report = [
    "# Peer transport throughput",
    "",
    `Two members in two processes, mutual TLS (ECDSA P-256) on 127.0.0.1, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}.`,
    "Reproduce: `npx tsx bench/transport.bench.ts [messages]`.",
    "",
    "| workload | messages | seconds | messages/s | MB/s (payload) |",
    "|---|---:|---:|---:|---:|",
    `| ${SMALL}-byte messages, one peer | ${messages} | ${smallSec.toFixed(2)} | ${Math.round(rate)} | ${((messages * SMALL) / smallSec / 1e6).toFixed(1)} |`,
    `| one ${SNAPSHOT / 1024 / 1024} MiB snapshot | 1 | ${snapSec.toFixed(2)} | – | ${(SNAPSHOT / snapSec / 1e6).toFixed(1)} |`,
    "",
    `Dropped messages: ${dropped} (the sender paces itself by the queue size, as raft's flow control does).`,
    `Target: ≥ 100000 small messages/s — ${rate >= 100_000 ? "met" : "NOT met"}.`,
    "",
  ].join("\n");
  writeFileSync(join(__dirname, "results", "transport.md"), report);
  process.stdout.write(report);
}

if (process.argv[2] === "--receiver") {
  void receiver(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
