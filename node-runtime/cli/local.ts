/**
 * `npm start` / `npm run stop`: a local TLS cluster on this machine, started with the same
 * runtime bundle and the same rendered flags as a cloud deployment (components/topology.ts).
 *
 * Shape: the launcher process is the supervisor. It issues certificates on first run, spawns one
 * `raftkv` process per member, restarts members that die (with backoff), prints live status, and
 * stops everything on SIGINT/SIGTERM. `--detach` re-runs the supervisor in the background, waits
 * until the cluster is healthy and returns; `stop` signals that supervisor through the pid file.
 */
import { Command, CommanderError, Option } from "commander";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  TopologyError,
  assertMasterCount,
  clientUrl,
  faultTolerance,
  planLocalMembers,
  quorum,
  renderMemberFlags,
  type MemberEndpoint,
} from "../../components/topology";
import { writeClusterPki } from "../pki";
import { fetchStatus, type MemberStatus } from "./local-status";

interface LocalState {
  size: number;
  token: string;
}

interface PidFile {
  supervisor: number;
  members: Record<string, number>;
}

interface Options {
  size: number;
  reset: boolean;
  detach: boolean;
  restart: boolean;
  dir: string;
}

class UsageError extends Error {}

const RUNTIME = path.join(__dirname, "raftkv.cjs");

function paths(dir: string) {
  return {
    state: path.join(dir, "state.json"),
    pids: path.join(dir, "pids.json"),
    env: path.join(dir, "cluster.env"),
    pki: path.join(dir, "pki"),
    logs: path.join(dir, "logs"),
    data: (name: string) => path.join(dir, "data", name),
    certs: (name: string) => path.join(dir, "pki", name),
    client: (name: string, ext: "crt" | "key") => path.join(dir, "pki", "clients", `${name}.${ext}`),
  };
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed child of ours may linger as a zombie until reaped: that is not alive.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return true;
  }
}

function runningSupervisor(dir: string): PidFile | undefined {
  const pf = readJson<PidFile>(paths(dir).pids);
  return pf !== undefined && alive(pf.supervisor) ? pf : undefined;
}

/** Prepares the directory (state, certificates, env file) and returns the member plan. */
async function prepare(opts: Options): Promise<{ members: MemberEndpoint[]; state: LocalState }> {
  const p = paths(opts.dir);
  if (opts.reset) {
    fs.rmSync(opts.dir, { recursive: true, force: true });
    console.log(`reset: removed ${opts.dir}`);
  }
  let state = readJson<LocalState>(p.state);
  if (state !== undefined && state.size !== opts.size) {
    throw new UsageError(
      `${opts.dir} holds a ${state.size}-member cluster; run with --size ${state.size}, or add --reset to start an empty ${opts.size}-member cluster`,
    );
  }
  const members = planLocalMembers(opts.size);
  fs.mkdirSync(p.logs, { recursive: true });
  if (state === undefined) {
    state = { size: opts.size, token: `raftkv-local-${randomBytes(4).toString("hex")}` };
    process.stdout.write(`issuing a local CA and certificates for ${opts.size} members ... `);
    await writeClusterPki(p.pki, members, ["admin"]);
    console.log("done");
    fs.writeFileSync(p.state, JSON.stringify(state, null, 2) + "\n");
  }
  writeEnvFile(opts.dir, members);
  return { members, state };
}

function writeEnvFile(dir: string, members: MemberEndpoint[]): void {
  const p = paths(dir);
  const abs = (f: string) => path.resolve(f);
  const endpoints = members.map((m) => `${m.host}:${m.clientPort}`).join(",");
  const vars: Array<[string, string]> = [
    ["ENDPOINTS", endpoints],
    ["CACERT", abs(path.join(p.certs(members[0]!.name), "ca.crt"))],
    ["CERT", abs(p.client("admin", "crt"))],
    ["KEY", abs(p.client("admin", "key"))],
  ];
  const lines = ["# raftkv local cluster: source this file, then use etcdctl or raftkvctl", "export ETCDCTL_API=3"];
  for (const [k, v] of vars) lines.push(`export ETCDCTL_${k}=${v}`);
  for (const [k, v] of vars) lines.push(`export RAFTKVCTL_${k}=${v}`);
  lines.push(`export PATH="${abs(path.join(__dirname, "bin"))}:$PATH"`);
  fs.writeFileSync(p.env, lines.join("\n") + "\n");
}

class Supervisor {
  private readonly children = new Map<string, ChildProcess>();
  private readonly restarts = new Map<string, number>();
  private stopping = false;
  private lastLine = "";

  constructor(
    private readonly opts: Options,
    private readonly members: MemberEndpoint[],
    private readonly state: LocalState,
  ) {}

  start(): void {
    for (const m of this.members) this.spawnMember(m);
    this.writePids();
  }

  private flags(m: MemberEndpoint): string[] {
    const p = paths(this.opts.dir);
    return renderMemberFlags(m, this.members, {
      dataDir: p.data(m.name),
      certDir: p.certs(m.name),
      clusterToken: this.state.token,
      clusterState: "new",
      listenHost: m.host,
    });
  }

  private spawnMember(m: MemberEndpoint): void {
    const p = paths(this.opts.dir);
    const log = fs.openSync(path.join(p.logs, `${m.name}.log`), "a");
    const child = spawn(process.execPath, [RUNTIME, ...this.flags(m)], { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    this.children.set(m.name, child);
    child.on("exit", (code, signal) => {
      if (this.children.get(m.name) === child) this.children.delete(m.name);
      if (this.stopping) return;
      const how = signal !== null ? `signal ${signal}` : `exit code ${String(code)}`;
      const n = (this.restarts.get(m.name) ?? 0) + 1;
      if (!this.opts.restart) {
        this.say(`${m.name} stopped (${how}); --no-restart: leaving it down`);
        this.writePids();
        return;
      }
      const delay = Math.min(500 * 2 ** Math.min(n - 1, 5), 15_000);
      this.restarts.set(m.name, n);
      this.say(`${m.name} stopped (${how}); restarting in ${(delay / 1000).toFixed(1)} s (restart #${n}; log: ${path.join(p.logs, m.name + ".log")})`);
      setTimeout(() => {
        if (this.stopping) return;
        this.spawnMember(m);
        this.writePids();
      }, delay).unref();
    });
  }

  private writePids(): void {
    const members: Record<string, number> = {};
    for (const [name, c] of this.children) if (c.pid !== undefined) members[name] = c.pid;
    fs.writeFileSync(paths(this.opts.dir).pids, JSON.stringify({ supervisor: process.pid, members } satisfies PidFile) + "\n");
  }

  private say(line: string): void {
    if (process.stdout.isTTY && this.lastLine !== "") process.stdout.write("\r\x1b[K");
    console.log(line);
    this.lastLine = "";
  }

  async statusLine(): Promise<string> {
    const statuses = await Promise.all(this.members.map((m) => fetchStatus(m)));
    return renderStatusLine(this.members, statuses);
  }

  async watch(): Promise<void> {
    for (;;) {
      await sleep(1000);
      if (this.stopping) return;
      const line = await this.statusLine();
      if (line === this.lastLine) continue;
      if (process.stdout.isTTY) process.stdout.write(`\r\x1b[K${line}`);
      else console.log(line);
      this.lastLine = line;
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (process.stdout.isTTY) process.stdout.write("\n");
    console.log("stopping members ...");
    const exits = [...this.children.values()].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGTERM");
          setTimeout(() => c.kill("SIGKILL"), 10_000).unref();
        }),
    );
    await Promise.all(exits);
    fs.rmSync(paths(this.opts.dir).pids, { force: true });
    console.log("all members stopped");
  }
}

export function renderStatusLine(members: MemberEndpoint[], statuses: Array<MemberStatus | undefined>): string {
  const up = statuses.filter((s) => s !== undefined).length;
  const leader = statuses.find((s) => s !== undefined && s.isLeader);
  const term = Math.max(0, ...statuses.map((s) => s?.term ?? 0));
  const commit = Math.max(0, ...statuses.map((s) => s?.commitIndex ?? 0));
  const lead = leader !== undefined ? leader.name : "none";
  const q = quorum(members.length);
  const health = up >= q && leader !== undefined ? "healthy" : up >= q ? "electing" : "NO QUORUM";
  return `[${new Date().toISOString().slice(11, 19)}] ${health} · leader ${lead} · term ${term} · commit ${commit} · members up ${up}/${members.length}`;
}

async function waitHealthy(members: MemberEndpoint[], timeoutMs: number, isAlive: () => boolean): Promise<MemberStatus[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await Promise.all(members.map((m) => fetchStatus(m)));
    const ok = st.filter((s): s is MemberStatus => s !== undefined && s.healthy);
    if (ok.length === members.length) return ok;
    if (!isAlive()) throw new UsageError("the cluster stopped before it became healthy; see the member logs under .raftkv/local/logs/");
    if (Date.now() > deadline) {
      throw new UsageError(
        `the cluster did not become healthy within ${timeoutMs / 1000} s (${ok.length}/${members.length} members healthy); see the member logs`,
      );
    }
    await sleep(200);
  }
}

function printSummary(opts: Options, members: MemberEndpoint[], statuses: MemberStatus[]): void {
  const leader = statuses.find((s) => s.isLeader);
  const n = members.length;
  console.log("");
  console.log(`raftkv local cluster: ${n} members, quorum ${quorum(n)}, tolerates ${faultTolerance(n)} failure(s)`);
  for (const m of members) {
    const tag = leader?.name === m.name ? "  (leader)" : "";
    console.log(`  ${m.name.padEnd(10)} ${clientUrl(m).padEnd(26)} health http://${m.host}:${m.metricsPort}/health${tag}`);
  }
  const env = paths(opts.dir).env;
  console.log("");
  console.log("try it:");
  console.log(`  source ${env}`);
  console.log("  etcdctl put name john");
  console.log("  etcdctl get name");
  console.log("  etcdctl get / --prefix --keys-only");
  console.log("  raftkvctl endpoint status -w table");
  console.log("");
}

async function startCommand(opts: Options): Promise<void> {
  assertMasterCount(opts.size);
  if (!fs.existsSync(RUNTIME)) throw new UsageError(`runtime bundle ${RUNTIME} is missing; run npm run build`);
  const running = runningSupervisor(opts.dir);
  if (running !== undefined) {
    throw new UsageError(`a local cluster is already running from ${opts.dir} (supervisor pid ${running.supervisor}); run npm run stop first`);
  }
  if (opts.detach) return detach(opts);
  const { members, state } = await prepare(opts);
  const sup = new Supervisor(opts, members, state);
  let exiting = false;
  const onSignal = () => {
    if (exiting) return;
    exiting = true;
    void sup.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  console.log(`starting ${members.length} members (logs in ${paths(opts.dir).logs}) ...`);
  sup.start();
  const statuses = await waitHealthy(members, 60_000, () => !exiting);
  printSummary(opts, members, statuses);
  console.log(opts.restart ? "members that die are restarted. Ctrl-C stops the cluster." : "--no-restart: members that die stay down. Ctrl-C stops the cluster.");
  await sup.watch();
}

/** Runs the supervisor in the background and returns once the cluster is healthy. */
async function detach(opts: Options): Promise<void> {
  const { members } = await prepare(opts);
  const logFile = path.join(paths(opts.dir).logs, "supervisor.log");
  const out = fs.openSync(logFile, "a");
  const args = [__filename, "start", "--size", String(opts.size), "--dir", opts.dir];
  if (!opts.restart) args.push("--no-restart");
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  child.unref();
  const statuses = await waitHealthy(members, 60_000, () => alive(child.pid!));
  printSummary(opts, members, statuses);
  console.log(`running in the background (supervisor pid ${String(child.pid)}, log ${logFile}); stop with: npm run stop`);
}

async function stopCommand(dir: string): Promise<void> {
  const pf = readJson<PidFile>(paths(dir).pids);
  if (pf === undefined || !alive(pf.supervisor)) {
    const stray = pf === undefined ? [] : Object.values(pf.members).filter(alive);
    for (const pid of stray) process.kill(pid, "SIGTERM");
    fs.rmSync(paths(dir).pids, { force: true });
    console.log(stray.length > 0 ? `stopped ${stray.length} member(s) left without a supervisor` : "no local cluster is running");
    return;
  }
  process.kill(pf.supervisor, "SIGTERM");
  const pids = [pf.supervisor, ...Object.values(pf.members)];
  const deadline = Date.now() + 15_000;
  while (pids.some(alive)) {
    if (Date.now() > deadline) {
      for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL");
      break;
    }
    await sleep(100);
  }
  fs.rmSync(paths(dir).pids, { force: true });
  console.log(`stopped the local cluster (${pids.length - 1} members)`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(argv: string[]): Promise<void> {
  const program = new Command("raftkv-local").description("run a local raftkv cluster").exitOverride();
  program
    .command("start", { isDefault: true })
    .description("start a local TLS cluster (default 3 members)")
    .addOption(new Option("--size <n>", "number of members: 3, 5 or 7").default("3"))
    .option("--reset", "delete existing local data and certificates first", false)
    .option("--detach", "start in the background and return once healthy", false)
    .option("--no-restart", "leave members that die down (to demonstrate quorum loss)")
    .option("--dir <path>", "where data, certificates and logs live", ".raftkv/local")
    .action(async (o: { size: string; reset: boolean; detach: boolean; restart: boolean; dir: string }) => {
      const size = Number(o.size);
      await startCommand({ size, reset: o.reset, detach: o.detach, restart: o.restart, dir: o.dir });
    });
  program
    .command("stop")
    .description("stop a local cluster started with --detach")
    .option("--dir <path>", "where the cluster runs from", ".raftkv/local")
    .action(async (o: { dir: string }) => stopCommand(o.dir));
  await program.parseAsync(argv, { from: "user" });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    const msg = e instanceof UsageError || e instanceof TopologyError ? e.message : e instanceof Error ? e.message : String(e);
    console.error(`raftkv-local: ${msg}`);
    process.exitCode = 1;
  });
}
