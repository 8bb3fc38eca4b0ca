/**
 * Starts Debian's real etcd (3.4) as a single member on loopback with mutual TLS on both
 * ports, using our own PKI and the topology plan's member flags — the reference server for
 * compatibility tests. Every process started here is stopped by its PID in stop().
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderMemberFlags, type MemberEndpoint } from "../../components/topology";
import { writeClusterPki, type ClientCertPaths, type ClusterPki } from "../../node-runtime/pki";
import { freePort } from "./free-port";

export const ETCD_BIN = process.env["ETCD_BIN"] ?? "/usr/bin/etcd";
export const ETCDCTL_BIN = process.env["ETCDCTL_BIN"] ?? "/usr/bin/etcdctl";

export interface ReferenceEtcd {
  member: MemberEndpoint;
  /** https://127.0.0.1:<clientPort> */
  endpoint: string;
  pki: ClusterPki;
  /** Client certificate "admin" issued by the same CA. */
  client: ClientCertPaths;
  pid: number;
  /** A scratch directory removed by stop(); the data dir lives inside it. */
  dir: string;
  /** etcdctl-style flags for this server: --endpoints, --cacert, --cert, --key. */
  ctlFlags: string[];
  /** The same as ETCDCTL_* variables. */
  ctlEnv: Record<string, string>;
  /** Everything etcd wrote to stderr so far (its log), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  name?: string;
  startTimeoutMs?: number;
  /** Runs before etcd starts, given its flags (`--k=v`), e.g. to restore a snapshot into its data dir. */
  beforeStart?: (flags: readonly string[]) => Promise<void>;
}

export function isGone(pid: number): boolean {
  // PID 1 here reaps late: a killed child can linger as a zombie, which counts as gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (!isGone(pid) && Date.now() < deadline) {
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
  }
  if (!isGone(pid)) process.kill(pid, "SIGKILL");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
}

export async function startReferenceEtcd(opts: StartEtcdOptions = {}): Promise<ReferenceEtcd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-etcd-ref-"));
  const [clientPort, peerPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const member: MemberEndpoint = { name: opts.name ?? "etcd-ref", host: "127.0.0.1", clientPort, peerPort, metricsPort };
  let child: ChildProcess | undefined;
  try {
    const pki = await writeClusterPki(path.join(dir, "pki"), [member], ["admin"]);
    const client = pki.clients["admin"]!;
    const flags = renderMemberFlags(member, [member], {
      dataDir: path.join(dir, "data"),
      certDir: path.join(dir, "pki", member.name),
      clusterToken: "etcd-ref",
      clusterState: "new",
      listenHost: "127.0.0.1",
      heartbeatIntervalMs: 50,
      electionTimeoutMs: 500,
    });
    if (opts.beforeStart) await opts.beforeStart(flags);
    const proc = spawn(ETCD_BIN, flags, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: "" } });
    child = proc;
    let log = "";
    proc.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
    const timeout = opts.startTimeoutMs ?? 15000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd did not become ready in ${timeout} ms:\n${log}`)), timeout);
      const onData = (): void => {
        if (/ready to serve client requests/.test(log)) {
          clearTimeout(timer);
          proc.stderr!.off("data", onData);
          resolve();
        }
      };
      proc.stderr!.on("data", onData);
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`etcd exited early (code ${String(code)}, signal ${String(signal)}):\n${log}`));
      });
      proc.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const endpoint = `https://127.0.0.1:${clientPort}`;
    const ctlEnv = {
      ETCDCTL_API: "3",
      ETCDCTL_ENDPOINTS: endpoint,
      ETCDCTL_CACERT: client.ca,
      ETCDCTL_CERT: client.cert,
      ETCDCTL_KEY: client.key,
    };
    return {
      member,
      endpoint,
      pki,
      client,
      pid: proc.pid!,
      dir,
      ctlFlags: [`--endpoints=${endpoint}`, `--cacert=${client.ca}`, `--cert=${client.cert}`, `--key=${client.key}`],
      ctlEnv,
      log: () => log,
      stop: async () => {
        await stopProcess(proc);
        if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (child) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
