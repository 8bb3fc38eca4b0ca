/**
 * Measurement (not part of npm test): the abuse suite's client-port flood (2,000 connections that
 * never handshake) against etcd 3.4.23 (one member, our PKI) while a serial put loop runs; prints
 * the longest put, the connections etcd holds and its RSS. `node --import tsx test/abuse/flood-etcd.ts`
 */
import * as grpc from "@grpc/grpc-js";
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import { promisify } from "node:util";
import { startReferenceEtcd } from "../helpers/etcd-reference";
import { RawMember } from "../server/cluster/clients";
import { sleep } from "../server/harness/cluster";
import { rssMiB, StallProbe } from "./support";
const ex = promisify(execFile);
async function held(port: number): Promise<number> {
  const { stdout } = await ex("ss", ["-tnH", "state", "established", `( sport = :${port} )`], { encoding: "utf8" });
  return stdout.split("\n").filter((l) => l.trim() !== "").length;
}
async function main() {
  const e = await startReferenceEtcd();
  try {
    const creds = grpc.credentials.createSsl(fs.readFileSync(e.client.ca), fs.readFileSync(e.client.key), fs.readFileSync(e.client.cert));
    const m = new RawMember(`127.0.0.1:${e.member.clientPort}`, creds);
    const probe = new StallProbe(() => m.put("abuse/probe", "x", 30_000));
    await sleep(2000);
    const rss0 = rssMiB(e.pid);
    const base = await held(e.member.clientPort);
    const attacker = spawn(process.execPath, ["-e", `const net = require("net"); for (let i = 0; i < 2000; i++) { const s = net.connect(${e.member.clientPort}, "127.0.0.1"); s.on("error", () => {}); } console.log("ready"); setTimeout(() => process.exit(0), 60000);`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((r) => attacker.stdout!.once("data", r));
    const t0 = Date.now();
    let peak = 0, peakRss = rss0, h = 0;
    do {
      await sleep(500);
      h = Math.max(0, (await held(e.member.clientPort)) - base);
      peak = Math.max(peak, h);
      peakRss = Math.max(peakRss, rssMiB(e.pid));
    } while (Date.now() - t0 < 25_000);
    attacker.kill("SIGKILL");
    await probe.stop();
    m.close?.();
    console.log(JSON.stringify({ server: "etcd 3.4.23", stallMs: Math.round(probe.longestMs), calls: probe.calls, errors: probe.errors.slice(0, 2), heldPeak: peak, heldAfter25s: h, rss0: Math.round(rss0), peakRss: Math.round(peakRss) }));
  } finally {
    await e.stop();
  }
}
main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
