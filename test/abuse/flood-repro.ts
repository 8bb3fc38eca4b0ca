/**
 * Measurement (not part of npm test): `node --import tsx test/abuse/flood-repro.ts client|peer [N]`
 * opens N (2,000) connections that never handshake on the leader's client or peer port of a fresh
 * 3-member cluster while a serial put loop runs, and prints the leader's event-loop lag
 * (nodejs_eventloop_lag_max_seconds, every 0.5 s), RSS and CPU, the longest put and the leader
 * changes. HIST_MIB=100 writes that much history first (the abuse suite's store); NODE_ARGS passes
 * node flags to the members (e.g. --trace-gc); KEEP_LOG=1 copies member logs to /tmp.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { adminCredentials, RawPool } from "../server/cluster/clients";
import { sleep, TestCluster } from "../server/harness/cluster";
import { rssMiB, StallProbe } from "./support";

const port = (process.argv[2] ?? "client") as "client" | "peer";
const n = Number(process.argv[3] ?? 2000);
async function metric(mport: number, name: string): Promise<number | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${mport}/metrics`, { signal: AbortSignal.timeout(5000) });
    const t = await r.text();
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(t);
    return m ? Number(m[1]) : undefined;
  } catch { return undefined; }
}
function cpu(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // ms
}
import { spawn as spawn2 } from "node:child_process";
import * as path from "node:path";
import { BUNDLE } from "../server/harness/cluster";
if (process.env["NODE_ARGS"]) {
  (TestCluster.prototype as unknown as { startMember: unknown }).startMember = function (this: TestCluster, name: string, flags?: string[]) {
    const logFile = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(logFile, "a");
    const child = spawn2(process.execPath, [...process.env["NODE_ARGS"]!.split(" "), BUNDLE, ...(flags ?? this.flags(this.member(name)))], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    this.procs.set(name, child);
    this.logs.set(name, logFile);
    return child;
  };
}
async function main() {
  process.env["NODE_NO_WARNINGS"] = "1";
  const c = await TestCluster.start({ size: 3, snapshotCount: 1000, ...(process.env["HB"] ? { heartbeatMs: Number(process.env["HB"]), electionMs: Number(process.env["EL"]) } : {}) });
  void adminCredentials;
  const pool = new RawPool(c);
  try {
    let leader = await c.leader(30_000);
    const hist = Number(process.env["HIST_MIB"] ?? 0);
    { const v = Buffer.alloc(100 * 1024, "h"); for (let i = 0; i < (hist * 1024) / 100; i++) await pool.of(leader).put(`hist/${String(i).padStart(6, "0")}`, v); }
    leader = await c.leader(30_000);
    const lm = c.member(leader);
    const pid = c.procs.get(leader)!.pid!;
    for (const m of c.members) await metric(m.metricsPort, "nodejs_eventloop_lag_max_seconds");
    const lc0 = await Promise.all(c.members.map((m) => metric(m.metricsPort, "etcd_server_leader_changes_seen_total")));
    const probe = new StallProbe(() => pool.of(leader).put("abuse/probe", "x", 30_000));
    await sleep(2000);
    const rss0 = rssMiB(pid), cpu0 = cpu(pid);
    const target = port === "client" ? lm.clientPort : lm.peerPort;
    const attacker = spawn(process.execPath, ["-e", `const net = require("net"); const a = []; for (let i = 0; i < ${n}; i++) { const s = net.connect(${target}, "127.0.0.1"); s.on("error", () => {}); a.push(s); } console.log("ready"); setTimeout(() => process.exit(0), 30000);`], { stdio: ["ignore", "pipe", "inherit"] });
    const t0 = Date.now();
    let maxLag = 0; let peakRss = rss0;
    const samples: string[] = [];
    while (Date.now() - t0 < 25_000) {
      await sleep(500);
      const lag = (await metric(lm.metricsPort, "nodejs_eventloop_lag_max_seconds")) ?? -1;
      maxLag = Math.max(maxLag, lag);
      const r = rssMiB(pid); peakRss = Math.max(peakRss, r);
      samples.push(`${((Date.now() - t0) / 1000).toFixed(1)}s lag=${(lag * 1000).toFixed(0)}ms rss=${r.toFixed(0)} cpu=${cpu(pid) - cpu0}ms`);
    }
    attacker.kill("SIGKILL");
    await probe.stop();
    const lc1 = await Promise.all(c.members.map((m) => metric(m.metricsPort, "etcd_server_leader_changes_seen_total")));
    console.log(samples.join("\n"));
    console.log(JSON.stringify({ port, n, leader, stallMs: Math.round(probe.longestMs), calls: probe.calls, errors: probe.errors.slice(0, 3), maxLagMs: Math.round(maxLag * 1000), rss0: Math.round(rss0), peakRss: Math.round(peakRss), cpuMs: cpu(pid) - cpu0, leaderChanges: lc1.map((x, i) => (x ?? 0) - (lc0[i] ?? 0)) }));
  } finally {
    pool.closeAll();
    if (process.env["KEEP_LOG"]) for (const m of c.members) fs.copyFileSync(c.logs.get(m.name)!, `/tmp/flood-${m.name}.log`);
    await c.destroy();
  }
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
