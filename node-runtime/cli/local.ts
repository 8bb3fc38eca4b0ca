/**
 * `npm start` / `npm run stop`: a local TLS cluster on this machine, started with the same
 * runtime bundle and the same rendered flags as a cloud deployment (components/topology.ts).
 *
 * The launcher process is the supervisor (local-supervisor.ts). `--detach` re-runs it in the
 * background, waits until the cluster is healthy and returns; `stop` signals that supervisor
 * through the pid file and waits until no process of the cluster is left.
 */
import { Command, CommanderError, Option } from "commander";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import {
  DEFAULT_CLIENT_PORT,
  TopologyError,
  masterCountProblem,
  clientUrl,
  faultTolerance,
  planLocalMembers,
  quorum,
  type MemberEndpoint,
} from "../../components/topology";
import { writeClusterPki } from "../pki";
import {
  AlreadyRunningError,
  DEFAULT_DIR,
  claimPidFile,
  describeRunning,
  isRaftkvProcess,
  livePids,
  localPaths,
  readPids,
  readState,
  removePids,
  writeEnvFile,
  writeState,
  type LocalState,
} from "./local-files";
import { NotHealthyError, waitHealthy, type MemberStatus } from "./local-status";
import { Supervisor } from "./local-supervisor";

const HOST = "127.0.0.1";
const RUNTIME = path.join(__dirname, "raftkv.cjs");
const BIN_DIR = path.join(__dirname, "bin");
const HEALTHY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

interface StartOptions {
  /** Undefined: the size the directory's cluster has, or 3 for a new one. */
  size?: number;
  basePort?: number;
  reset: boolean;
  detach: boolean;
  restart: boolean;
  dir: string;
}

/** A problem the user can fix; its message is printed as the one line of output. */
class UsageError extends Error {}

/** How a path is shown: relative when it is inside the current directory. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), path.resolve(p));
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : path.resolve(p);
}

function stopHint(dir: string): string {
  return path.resolve(dir) === path.resolve(DEFAULT_DIR) ? "npm run stop" : `npm run stop -- --dir ${shown(dir)}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The shape to start: what the directory already holds, or what was asked for a new cluster. */
function resolveShape(opts: StartOptions, state: LocalState | undefined): { size: number; basePort: number } {
  if (state === undefined) return { size: opts.size ?? 3, basePort: opts.basePort ?? DEFAULT_CLIENT_PORT };
  if (opts.size !== undefined && opts.size !== state.size) {
    throw new UsageError(
      `${shown(opts.dir)} holds a ${state.size}-member cluster; run without --size to resume it, or add --reset to replace it with an empty ${opts.size}-member cluster`,
    );
  }
  if (opts.basePort !== undefined && opts.basePort !== state.basePort) {
    throw new UsageError(
      `${shown(opts.dir)} holds a cluster on base port ${state.basePort} (its members know each other by these ports); run without --base-port, or add --reset`,
    );
  }
  return { size: state.size, basePort: state.basePort };
}

function portProblem(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "EADDRINUSE" ? "in use" : (e.code ?? e.message)));
    s.listen(port, host, () => s.close(() => resolve(undefined)));
  });
}

/** Fails with one line naming the first busy port, before any member is started. */
async function checkPorts(members: readonly MemberEndpoint[], fresh: boolean): Promise<void> {
  const wanted = members.flatMap((m) => [
    { m, port: m.clientPort, what: "client" },
    { m, port: m.peerPort, what: "peer" },
    { m, port: m.metricsPort, what: "metrics" },
  ]);
  const problems = await Promise.all(wanted.map((w) => portProblem(w.m.host, w.port)));
  const busy = wanted.map((w, i) => ({ ...w, problem: problems[i] })).filter((w) => w.problem !== undefined);
  if (busy.length === 0) return;
  const first = busy[0]!;
  const more = busy.length > 1 ? ` (and ${plural(busy.length - 1, "more port")})` : "";
  const fix = fresh ? "or choose other ports with --base-port <n>" : "or run another cluster with --dir <other> --base-port <n>";
  throw new UsageError(
    `cannot start: ${first.m.host}:${first.port}, the ${first.what} port of ${first.m.name}, is ${first.problem}${more}; ` +
      `stop whatever listens there (another etcd or raftkv?), ${fix}`,
  );
}

/** Certificates and state on first start, the env file every time. */
async function prepare(dir: string, members: MemberEndpoint[], state: LocalState | undefined, shape: { size: number; basePort: number }): Promise<LocalState> {
  const p = localPaths(dir);
  fs.mkdirSync(p.logs, { recursive: true });
  if (state === undefined) {
    process.stdout.write(`issuing a client CA, a peer CA and certificates for ${shape.size} members ... `);
    await writeClusterPki(p.pki, members, ["admin"]);
    console.log("done");
    state = { ...shape, token: `raftkv-local-${randomBytes(4).toString("hex")}` };
    writeState(dir, state);
  } else if (!fs.existsSync(p.peerCa)) {
    // Made before peers had their own CA: every member restarts together here, so the whole
    // PKI can be reissued at once (the data is kept).
    process.stdout.write("this directory predates the separate peer CA; reissuing its certificates ... ");
    await writeClusterPki(p.pki, members, ["admin"]);
    console.log("done");
  }
  writeEnvFile(dir, members, BIN_DIR);
  return state;
}

function printSummary(dir: string, members: readonly MemberEndpoint[], statuses: readonly MemberStatus[]): void {
  const leader = statuses.find((s) => s.isLeader)?.name;
  const n = members.length;
  const f = faultTolerance(n);
  const urlWidth = Math.max(...members.map((m) => clientUrl(m).length));
  console.log("");
  console.log(`raftkv local cluster: ${n} members · quorum ${quorum(n)} · tolerates ${plural(f, "failed member")}`);
  for (const m of members) {
    console.log(`  ${m.name.padEnd(9)} ${clientUrl(m).padEnd(urlWidth)}${m.name === leader ? "  leader" : ""}`);
  }
  console.log(`  data, certificates and logs in ${shown(dir)}/`);
  console.log("");
  console.log("try it:");
  console.log(`  source ${shown(localPaths(dir).env)}`);
  for (const ctl of ["etcdctl", "raftkvctl"]) {
    console.log(`  ${ctl} put name john`);
    console.log(`  ${ctl} get name`);
    console.log(`  ${ctl} put /greeting hello`);
    console.log(`  ${ctl} get / --prefix --keys-only`);
  }
  console.log("  raftkvctl endpoint status -w table");
  console.log("");
}

async function startCommand(opts: StartOptions): Promise<void> {
  if (opts.size !== undefined) {
    const problem = masterCountProblem(opts.size);
    if (problem !== undefined) throw new UsageError(`--size ${opts.size}: ${problem}`);
  }
  if (!fs.existsSync(RUNTIME)) throw new UsageError(`the runtime bundle ${RUNTIME} is missing; run npm run build`);
  const running = describeRunning(opts.dir);
  if (running !== undefined) throw new UsageError(`${running}; run ${stopHint(opts.dir)} first`);
  let existing = readState(opts.dir);
  let shape = resolveShape({ ...opts, size: undefined, basePort: undefined }, existing);
  if (opts.reset) {
    // Empty data, same shape as before unless flags ask for another one.
    shape = { size: opts.size ?? shape.size, basePort: opts.basePort ?? shape.basePort };
    if (fs.existsSync(opts.dir)) {
      fs.rmSync(opts.dir, { recursive: true, force: true });
      console.log(`--reset: removed ${shown(opts.dir)}`);
    }
    existing = undefined;
  } else {
    shape = resolveShape(opts, existing);
  }
  const members = planLocalMembers(shape.size, HOST, shape.basePort);
  await checkPorts(members, existing === undefined);
  if (opts.detach) return detach(opts, members, existing, shape);

  fs.mkdirSync(opts.dir, { recursive: true });
  claimPidFile(opts.dir);
  let sup: Supervisor | undefined;
  let exiting = false;
  const shutdownWith = (code: number) => {
    if (exiting) return;
    exiting = true;
    const done = sup !== undefined ? sup.stop() : Promise.resolve();
    void done.then(() => {
      removePids(opts.dir);
      process.exit(code);
    });
  };
  const shutdown = () => shutdownWith(0);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, shutdown);
  // A supervisor bug must not leave members running without anyone to stop them.
  process.on("uncaughtException", (e) => {
    console.error(`raftkv-local: internal error, stopping the cluster: ${e.stack ?? e.message}`);
    shutdownWith(1);
  });
  try {
    const state = await prepare(opts.dir, members, existing, shape);
    sup = new Supervisor({ dir: opts.dir, runtime: RUNTIME, restart: opts.restart, out: process.stdout }, members, state);
    console.log(`starting ${members.length} members (logs in ${shown(localPaths(opts.dir).logs)}/) ...`);
    sup.start();
    const s = sup;
    const statuses = await waitHealthy(members, HEALTHY_TIMEOUT_MS, () => !exiting && s.anyRunning());
    printSummary(opts.dir, members, statuses);
    console.log(
      opts.restart
        ? "members that die are restarted. Ctrl-C stops the cluster."
        : "--no-restart: members that die stay down. Ctrl-C stops the cluster.",
    );
    await sup.watch();
  } catch (e) {
    if (exiting) return; // Ctrl-C during startup: shutdown() finishes and exits.
    exiting = true;
    await sup?.stop();
    removePids(opts.dir);
    if (e instanceof NotHealthyError) throw new UsageError(`${e.message}; see the member logs in ${shown(localPaths(opts.dir).logs)}/`);
    throw e;
  }
}

/** Runs the supervisor in the background and returns once the cluster is healthy. */
async function detach(opts: StartOptions, members: MemberEndpoint[], existing: LocalState | undefined, shape: { size: number; basePort: number }): Promise<void> {
  await prepare(opts.dir, members, existing, shape);
  const logFile = localPaths(opts.dir).supervisorLog;
  fs.appendFileSync(logFile, `--- ${new Date().toISOString()} started in the background by pid ${process.pid}\n`);
  const logStart = fs.statSync(logFile).size;
  const out = fs.openSync(logFile, "a");
  const args = [__filename, "start", "--dir", opts.dir, "--size", String(shape.size), "--base-port", String(shape.basePort)];
  if (!opts.restart) args.push("--no-restart");
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  let exited = false;
  child.once("exit", () => (exited = true));
  try {
    const statuses = await waitHealthy(members, HEALTHY_TIMEOUT_MS, () => !exited);
    printSummary(opts.dir, members, statuses);
    console.log(`running in the background (supervisor pid ${String(child.pid)}, log ${shown(logFile)}); stop it with: ${stopHint(opts.dir)}`);
  } catch (e) {
    if (!(e instanceof NotHealthyError)) throw e;
    if (!exited) {
      child.kill("SIGTERM");
      await new Promise<void>((resolve) => (exited ? resolve() : child.once("exit", () => resolve())));
      throw new UsageError(`${e.message}, so it was stopped again; see ${shown(localPaths(opts.dir).logs)}/`);
    }
    const said = fs.readFileSync(logFile, "utf8").slice(logStart).split("\n");
    const reason = said.find((l) => l.startsWith("raftkv-local: "))?.slice("raftkv-local: ".length);
    throw new UsageError(reason ?? `the background supervisor exited before the cluster became healthy; see ${shown(logFile)}`);
  } finally {
    child.unref();
  }
}

async function stopCommand(dir: string): Promise<void> {
  const pf = readPids(dir);
  const live = livePids(pf);
  if (pf === undefined || live.length === 0) {
    removePids(dir);
    console.log(`no local cluster is running in ${shown(dir)}`);
    return;
  }
  const supervised = isRaftkvProcess(pf.supervisor);
  // The supervisor stops its members itself; members left without one are signalled directly.
  for (const pid of supervised ? [pf.supervisor] : live) process.kill(pid, "SIGTERM");
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (livePids(pf).length > 0) {
    if (Date.now() > deadline) {
      for (const pid of livePids(pf)) process.kill(pid, "SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  removePids(dir);
  const members = Object.keys(pf.members).length;
  console.log(`stopped the local cluster in ${shown(dir)} (${supervised ? "supervisor and " : ""}${plural(members, "member")})`);
}

function intOption(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}

async function main(argv: string[]): Promise<void> {
  const program = new Command("raftkv-local").description("run a local raftkv cluster").exitOverride();
  program
    .command("start", { isDefault: true })
    .description("start a local TLS cluster (3 members unless --size), or resume the one in --dir")
    .addOption(new Option("--size <n>", "members of a new cluster: 3, 5 or 7 (default 3)").argParser(intOption("--size")))
    .addOption(
      new Option("--base-port <n>", `first client port of a new cluster; member i uses n+10i, n+10i+1, n+10i+2 (default ${DEFAULT_CLIENT_PORT})`).argParser(
        intOption("--base-port"),
      ),
    )
    .option("--reset", "delete existing data, certificates and logs first", false)
    .option("--detach", "start in the background and return once the cluster is healthy", false)
    .option("--no-restart", "leave members that die down (to demonstrate quorum loss)")
    .option("--dir <path>", "where data, certificates and logs live", DEFAULT_DIR)
    .action(async (o: { size?: number; basePort?: number; reset: boolean; detach: boolean; restart: boolean; dir: string }) => {
      await startCommand({ size: o.size, basePort: o.basePort, reset: o.reset, detach: o.detach, restart: o.restart, dir: o.dir });
    });
  program
    .command("stop")
    .description("stop the local cluster running from --dir")
    .option("--dir <path>", "where the cluster runs from", DEFAULT_DIR)
    .action(async (o: { dir: string }) => stopCommand(o.dir));
  await program.parseAsync(argv, { from: "user" });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    const known = e instanceof UsageError || e instanceof TopologyError || e instanceof AlreadyRunningError;
    const msg = e instanceof Error ? (known ? e.message : `${e.message} (${e.name})`) : String(e);
    console.error(`raftkv-local: ${msg}`);
    process.exitCode = 1;
  });
}
