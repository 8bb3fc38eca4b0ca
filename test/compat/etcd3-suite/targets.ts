/**
 * The two servers the `etcd3` package's own test suite is pointed at: a 3-member raftkv cluster
 * (our test harness, the shipped bundle) and a 3-member etcd 3.4.23 cluster (Debian's
 * etcd-server), both serving their client port with the suite's own server certificate
 * (`src/test/certs/certs/etcd0.localhost.crt`, IP SAN 127.0.0.1) and without client
 * certificates, as the suite's CI starts etcd (`--cert-file … --key-file …` only). Peer traffic
 * keeps our PKI. Every process started here is stopped by its PID in `stop()`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { planLocalMembers, renderMemberFlags } from "../../../components/topology";
import { writeClusterPki } from "../../../node-runtime/pki";
import { freeRange, TestCluster } from "../../server/harness/cluster";
import { ETCD_BIN, isGone } from "../../helpers/etcd-reference";

export type TargetName = "raftkv" | "etcd";

export interface Target {
  name: TargetName;
  /** host:port of the member the suite talks to (its ETCD_ADDR). */
  addr: string;
  /** The server's version as the suite's ETCD_VERSION wants it. */
  version: string;
  /** Log tails for a failure message. */
  logs(): string;
  stop(): Promise<void>;
}

/** Paths of the suite's server certificate, key and CA inside its source tree. */
export interface SuiteCerts {
  cert: string;
  key: string;
  ca: string;
}

export function suiteCerts(suiteDir: string): SuiteCerts {
  const c: SuiteCerts = {
    cert: path.join(suiteDir, "src/test/certs/certs/etcd0.localhost.crt"),
    key: path.join(suiteDir, "src/test/certs/private/etcd0.localhost.key"),
    ca: path.join(suiteDir, "src/test/certs/certs/ca.crt"),
  };
  for (const p of Object.values(c)) if (!fs.existsSync(p)) throw new Error(`${p} is missing: --suite-dir must be an etcd3 source tree`);
  return c;
}

/**
 * The client-port flags the suite's CI gives etcd: its server certificate and no client
 * certificates. They come after the plan's (the last one wins in both servers). etcd asks every
 * client for a certificate as soon as --trusted-ca-file is set, so for etcd that flag goes;
 * raftkv requires it with https and asks for none while --client-cert-auth is false.
 */
function clientTlsFlags(c: SuiteCerts, target: TargetName): string[] {
  return [`--cert-file=${c.cert}`, `--key-file=${c.key}`, ...(target === "raftkv" ? [`--trusted-ca-file=${c.ca}`] : []), "--client-cert-auth=false"];
}

/** ETCD_VERSION for the suite: both targets speak etcd 3.4's API (raftkv reports 3.4 in Status). */
export const SUITE_ETCD_VERSION = "3.4.23";

export async function startRaftkv(certs: SuiteCerts, memberIndex: number): Promise<Target> {
  const cluster = await TestCluster.start({ size: 3, extraFlags: clientTlsFlags(certs, "raftkv") });
  const m = cluster.members[memberIndex]!;
  return {
    name: "raftkv",
    addr: `127.0.0.1:${m.clientPort}`,
    version: SUITE_ETCD_VERSION,
    logs: () => cluster.members.map((x) => `--- ${x.name}\n${cluster.log(x.name).slice(-2000)}`).join("\n"),
    stop: () => cluster.destroy(),
  };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 5000;
  while (!isGone(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** Three etcd members with the flags our topology plan renders (etcd's own names), client TLS as above. */
export async function startEtcd(certs: SuiteCerts, memberIndex: number, startTimeoutMs = 60_000): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-etcd3-suite-etcd-"));
  const members = planLocalMembers(3, "127.0.0.1", await freeRange(30));
  const procs: ChildProcess[] = [];
  const logs = members.map(() => "");
  const stop = async () => {
    await Promise.all(procs.map(stopProcess));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await writeClusterPki(path.join(dir, "pki"), members, []);
    const ready = members.map((m, i) => {
      const flags = [
        ...renderMemberFlags(m, members, {
          dataDir: path.join(dir, "data", m.name),
          certDir: path.join(dir, "pki", m.name),
          clusterToken: "etcd3-suite",
          clusterState: "new",
          listenHost: "127.0.0.1",
          heartbeatIntervalMs: 50,
          electionTimeoutMs: 500,
        }).filter((f) => !f.startsWith("--trusted-ca-file=") && !f.startsWith("--client-cert-auth=")),
        ...clientTlsFlags(certs, "etcd"),
      ];
      const p = spawn(ETCD_BIN, flags, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: "" } });
      procs.push(p);
      p.stderr!.setEncoding("utf8").on("data", (d: string) => (logs[i] += d));
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`etcd ${m.name} not ready in ${startTimeoutMs} ms:\n${logs[i]!.slice(-3000)}`)), startTimeoutMs);
        const onData = () => {
          if (/ready to serve client requests/.test(logs[i]!)) {
            clearTimeout(timer);
            p.stderr!.off("data", onData);
            resolve();
          }
        };
        p.stderr!.on("data", onData);
        p.once("exit", (code, sig) => {
          clearTimeout(timer);
          reject(new Error(`etcd ${m.name} exited (code ${String(code)}, signal ${String(sig)}):\n${logs[i]!.slice(-3000)}`));
        });
      });
    });
    await Promise.all(ready);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    name: "etcd",
    addr: `127.0.0.1:${members[memberIndex]!.clientPort}`,
    version: SUITE_ETCD_VERSION,
    logs: () => members.map((m, i) => `--- ${m.name}\n${logs[i]!.slice(-2000)}`).join("\n"),
    stop,
  };
}
