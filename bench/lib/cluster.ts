/**
 * A 3-member cluster on loopback for the benchmark: our PKI (mutual TLS on client and peer
 * ports), the topology plan's member flags, data dirs on real disk under one temp dir. The
 * same code starts etcd and raftkv; only the command line differs (ServerSpec), so both are
 * measured with the same topology, certificates and flags.
 */
import * as grpc from "@grpc/grpc-js";
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { memberName, renderMemberFlags, type MemberEndpoint } from "../../components/topology";
import { writeClusterPki } from "../../node-runtime/pki";
import { loadEtcdGrpc } from "../../node-runtime/server/proto";
import type { StatusResponse } from "../../node-runtime/server/etcd-types";
import { freePort } from "../../test/helpers/free-port";
import { isGone, trackDir, trackPid, untrackDir, untrackPid } from "./cleanup";
import type { TlsFiles } from "./tls-files";

export interface ServerSpec {
  /** "etcd" or "raftkv": the column this server's numbers go in. */
  label: string;
  command: string;
  /** Arguments placed before the member flags (e.g. the bundle path for node). */
  prefixArgs: string[];
  env: Record<string, string>;
}

export function etcdSpec(bin = process.env["ETCD_BIN"] ?? "/usr/bin/etcd"): ServerSpec {
  return { label: "etcd", command: bin, prefixArgs: [], env: {} };
}

export function raftkvSpec(bundle: string): ServerSpec {
  return { label: "raftkv", command: process.execPath, prefixArgs: [bundle], env: {} };
}

export interface BenchCluster {
  label: string;
  members: MemberEndpoint[];
  /** Client TLS material issued by the cluster's CA. */
  tls: TlsFiles;
  clientUrl(name: string): string;
  pid(name: string): number | undefined;
  /** The name of the member that reports itself leader (Maintenance/Status). */
  leader(timeoutMs?: number): Promise<string>;
  /** SIGKILL; returns once the process is gone. */
  kill9(name: string): Promise<void>;
  /** Starts a stopped member again with its original flags and waits for /health. */
  restart(name: string, timeoutMs?: number): Promise<void>;
  /** VmRSS of each running member in KiB, from /proc/<pid>/status. */
  rssKiB(): Record<string, number>;
  stop(): Promise<void>;
}

export class StartError extends Error {}

export interface StartOptions {
  size?: number;
  startTimeoutMs?: number;
}

interface Running {
  child: ChildProcess;
  exit: Promise<void>;
}

/** The last line of a member's log: for both servers, the line that says why it stopped. */
function lastLogLine(file: string): string {
  try {
    const line = readFileSync(file, "utf8").trim().split("\n").pop() ?? "";
    return line.length > 300 ? `${line.slice(0, 297)}...` : line || "(empty log)";
  } catch {
    return "(no log)";
  }
}

function getHealth(m: MemberEndpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: m.host, port: m.metricsPort, path: "/health", timeout: 1000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startCluster(spec: ServerSpec, opts: StartOptions = {}): Promise<BenchCluster> {
  const size = opts.size ?? 3;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const dir = mkdtempSync(path.join(os.tmpdir(), `raftkv-bench-${spec.label}-`));
  trackDir(dir);
  const running = new Map<string, Running>();
  const members: MemberEndpoint[] = [];
  for (let i = 0; i < size; i++) {
    members.push({ name: memberName(i), host: "127.0.0.1", clientPort: await freePort(), peerPort: await freePort(), metricsPort: await freePort() });
  }
  const pki = await writeClusterPki(path.join(dir, "pki"), members, ["bench"]);
  const tls: TlsFiles = { ca: pki.clients["bench"]!.ca, cert: pki.clients["bench"]!.cert, key: pki.clients["bench"]!.key };
  const byName = new Map(members.map((m) => [m.name, m]));
  const logFile = (name: string): string => path.join(dir, `${name}.log`);
  const flagsOf = (m: MemberEndpoint): string[] =>
    // Default heartbeat and election timeout: both servers are measured with their defaults.
    renderMemberFlags(m, members, {
      dataDir: path.join(dir, m.name, "data"),
      certDir: path.join(dir, "pki", m.name),
      clusterToken: `bench-${spec.label}`,
      clusterState: "new",
      listenHost: m.host,
    });

  const launch = (m: MemberEndpoint): void => {
    mkdirSync(path.join(dir, m.name), { recursive: true });
    const fd = openSync(logFile(m.name), "a");
    const child = spawn(spec.command, [...spec.prefixArgs, ...flagsOf(m)], {
      stdio: ["ignore", fd, fd],
      env: { ...process.env, ...spec.env },
    });
    closeSync(fd);
    if (child.pid === undefined) throw new StartError(`${m.name}: cannot run ${spec.command}`);
    trackPid(child.pid);
    const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.once("error", () => undefined);
    running.set(m.name, { child, exit });
  };

  const waitHealthy = async (names: string[], timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(names);
    while (pending.size > 0) {
      for (const name of pending) {
        const r = running.get(name)!;
        if (r.child.exitCode !== null || r.child.signalCode !== null) {
          throw new StartError(
            `${name} exited (code ${String(r.child.exitCode)}, signal ${String(r.child.signalCode)}): ${lastLogLine(logFile(name))}`,
          );
        }
        if (await getHealth(byName.get(name)!)) pending.delete(name);
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        const name = [...pending][0]!;
        throw new StartError(`${name} not healthy on /health after ${timeoutMs} ms: ${lastLogLine(logFile(name))}`);
      }
      await sleep(100);
    }
  };

  const stopMember = async (name: string, signal: NodeJS.Signals): Promise<void> => {
    const r = running.get(name);
    if (!r) return;
    const pid = r.child.pid!;
    if (!isGone(pid)) process.kill(pid, signal);
    const deadline = Date.now() + 5000;
    while (!isGone(pid) && Date.now() < deadline) await Promise.race([r.exit, sleep(20)]);
    if (!isGone(pid)) process.kill(pid, "SIGKILL");
    await Promise.race([r.exit, sleep(2000)]);
    untrackPid(pid);
    running.delete(name);
  };

  const { clients } = loadEtcdGrpc();
  const creds = grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert));
  const status = (m: MemberEndpoint, timeoutMs: number): Promise<StatusResponse> =>
    new Promise((resolve, reject) => {
      const c = new clients.Maintenance(`${m.host}:${m.clientPort}`, creds, { "grpc.ssl_target_name_override": "localhost" });
      c["Status"]!({}, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: StatusResponse) => {
        c.close();
        if (err) reject(err);
        else resolve(res);
      });
    });

  const cluster: BenchCluster = {
    label: spec.label,
    members,
    tls,
    clientUrl: (name) => `https://${byName.get(name)!.host}:${byName.get(name)!.clientPort}`,
    pid: (name) => running.get(name)?.child.pid,
    leader: async (timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      let last = "no member answered";
      while (Date.now() < deadline) {
        for (const m of members) {
          if (!running.has(m.name)) continue;
          try {
            const s = await status(m, 1000);
            if (s.leader !== "0" && s.leader === s.header.member_id) return m.name;
          } catch (err) {
            last = (err as Error).message;
          }
        }
        await sleep(100);
      }
      throw new Error(`no leader found in ${timeoutMs} ms (${last})`);
    },
    kill9: (name) => stopMember(name, "SIGKILL"),
    restart: async (name, timeoutMs = startTimeoutMs) => {
      launch(byName.get(name)!);
      await waitHealthy([name], timeoutMs);
    },
    rssKiB: () => {
      const out: Record<string, number> = {};
      for (const [name, r] of running) {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${r.child.pid!}/status`, "utf8"));
        if (m) out[name] = Number(m[1]);
      }
      return out;
    },
    stop: async () => {
      await Promise.all([...running.keys()].map((n) => stopMember(n, "SIGTERM")));
      rmSync(dir, { recursive: true, force: true });
      untrackDir(dir);
    },
  };

  try {
    for (const m of members) launch(m);
    await waitHealthy(members.map((m) => m.name), startTimeoutMs);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
