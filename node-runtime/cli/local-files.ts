/**
 * The local cluster's directory: where each file lives, the remembered cluster shape, the pid
 * file that makes one supervisor per directory, and the env file users source.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { MemberEndpoint } from "../../components/topology";

export const DEFAULT_DIR = ".raftkv/local";

/** What a directory's cluster was created with; a restart must use the same shape. */
export interface LocalState {
  size: number;
  basePort: number;
  token: string;
}

export interface PidFile {
  supervisor: number;
  members: Record<string, number>;
}

export function localPaths(dir: string) {
  return {
    state: path.join(dir, "state.json"),
    pids: path.join(dir, "pids.json"),
    env: path.join(dir, "cluster.env"),
    pki: path.join(dir, "pki"),
    ca: path.join(dir, "pki", "ca.crt"),
    peerCa: path.join(dir, "pki", "peer-ca.crt"),
    logs: path.join(dir, "logs"),
    supervisorLog: path.join(dir, "logs", "supervisor.log"),
    memberLog: (name: string) => path.join(dir, "logs", `${name}.log`),
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

/** Writes via a temp file and rename, so a reader never sees half a file. */
function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

export function readState(dir: string): LocalState | undefined {
  const s = readJson<Partial<LocalState>>(localPaths(dir).state);
  if (s === undefined || typeof s.size !== "number" || typeof s.token !== "string") return undefined;
  // Directories made before --base-port existed used the default ports.
  return { size: s.size, token: s.token, basePort: typeof s.basePort === "number" ? s.basePort : 2379 };
}

export function writeState(dir: string, state: LocalState): void {
  writeAtomically(localPaths(dir).state, JSON.stringify(state, null, 2) + "\n");
}

/**
 * True if pid is a running raftkv process. A killed child can linger as a zombie until its
 * parent reaps it (PID 1 here reaps late), and a pid from an old pid file may since belong to
 * an unrelated process: neither counts.
 */
export function isRaftkvProcess(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    if (/^\d+ \(.*\) [ZX]/s.test(stat)) return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("raftkv");
  } catch {
    return false;
  }
}

export function readPids(dir: string): PidFile | undefined {
  return readJson<PidFile>(localPaths(dir).pids);
}

/** Every process a pid file names that is still running (supervisor first). */
export function livePids(pf: PidFile | undefined): number[] {
  if (pf === undefined) return [];
  return [pf.supervisor, ...Object.values(pf.members)].filter(isRaftkvProcess);
}

export class AlreadyRunningError extends Error {}

/**
 * Makes this process the directory's supervisor. The pid file is created exclusively, so of two
 * launchers started at the same moment exactly one wins; a pid file whose processes are all gone
 * is left over from a crash and is replaced.
 */
export function claimPidFile(dir: string): void {
  const file = localPaths(dir).pids;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify({ supervisor: process.pid, members: {} } satisfies PidFile) + "\n", { flag: "wx" });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const running = describeRunning(dir);
    if (running !== undefined) throw new AlreadyRunningError(running);
    fs.rmSync(file, { force: true });
  }
  throw new AlreadyRunningError(`another launcher is starting a cluster in ${dir}`);
}

/** Why a start must be refused because something of this directory still runs, if anything. */
export function describeRunning(dir: string): string | undefined {
  const pf = readPids(dir);
  if (pf === undefined) return undefined;
  if (isRaftkvProcess(pf.supervisor)) {
    return `a local cluster is already running from ${dir} (supervisor pid ${pf.supervisor})`;
  }
  const members = Object.entries(pf.members).filter(([, pid]) => isRaftkvProcess(pid));
  if (members.length > 0) {
    return `members of an earlier run in ${dir} are still running without their supervisor (${members
      .map(([n, pid]) => `${n} pid ${pid}`)
      .join(", ")})`;
  }
  return undefined;
}

export function writePids(dir: string, pf: PidFile): void {
  writeAtomically(localPaths(dir).pids, JSON.stringify(pf) + "\n");
}

export function removePids(dir: string): void {
  fs.rmSync(localPaths(dir).pids, { force: true });
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:,=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `cluster.env`: the etcdctl variables (and raftkvctl's own names for the same things) with
 * absolute paths, so it can be sourced from any directory, and PATH extended by the directory
 * holding the `raftkvctl` wrapper.
 */
export function writeEnvFile(dir: string, members: readonly MemberEndpoint[], binDir: string): void {
  const p = localPaths(dir);
  const vars: Array<[string, string]> = [
    ["ENDPOINTS", members.map((m) => `${m.host}:${m.clientPort}`).join(",")],
    ["CACERT", path.resolve(p.ca)],
    ["CERT", path.resolve(p.client("admin", "crt"))],
    ["KEY", path.resolve(p.client("admin", "key"))],
  ];
  const lines = ["# raftkv local cluster: source this file, then use etcdctl or raftkvctl", "export ETCDCTL_API=3"];
  for (const [k, v] of vars) lines.push(`export ETCDCTL_${k}=${shellQuote(v)}`);
  for (const [k, v] of vars) lines.push(`export RAFTKVCTL_${k}=${shellQuote(v)}`);
  lines.push(`export PATH=${shellQuote(path.resolve(binDir))}:"$PATH"`);
  writeAtomically(p.env, lines.join("\n") + "\n");
}
