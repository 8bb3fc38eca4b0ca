/**
 * A real multi-process raftkv cluster on loopback for tests: certificates from our PKI, flags
 * from the topology plan, members started from the esbuild bundle (the artefact we ship).
 * Every process is tracked by PID and stopped in `destroy()`, which tests call from `after`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { planLocalMembers, renderMemberFlags, urlHost, type MemberEndpoint } from "../../../components/topology";
import { writeClusterPki, type ClusterPki } from "../../../node-runtime/pki";
import { fetchStatus, type MemberStatus } from "../../../node-runtime/cli/local-status";
import { reservePorts, type PortReservation } from "../../helpers/free-port";

export const REPO = path.resolve(__dirname, "..", "..", "..");
export const BUNDLE = path.join(REPO, "dist", "raftkv.cjs");

let built = false;
/** Builds dist/ once per test process, so tests run exactly what `npm run build` ships. */
export function ensureBuilt(): void {
  // Set by test/helpers/mocha-global.ts once it built dist/ for the whole (parallel) run.
  if (built || process.env["RAFTKV_TEST_DIST_BUILT"] === "1") return;
  const r = spawnSync(process.execPath, [path.join(REPO, "scripts", "build.mjs")], { cwd: REPO, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build failed: ${r.stderr}`);
  built = true;
}

/**
 * A base port with `count` consecutive free ports (base .. base+count-1) in 26000-32767, reserved
 * against every other test process until this one exits (see test/helpers/free-port.ts).
 * TestCluster itself uses reservePorts and releases its ports in destroy().
 */
export async function freeRange(count: number): Promise<number> {
  return (await reservePorts(count)).base;
}

export interface ClusterOptions {
  size: number;
  /** The address every member listens and is reached at (default 127.0.0.1; e.g. ::1). */
  host?: string;
  heartbeatMs?: number;
  electionMs?: number;
  snapshotCount?: number;
  extraFlags?: string[];
  /** Runs after the plan, PKI and flags exist and before any member starts (e.g. to restore data dirs). */
  beforeStart?: (c: TestCluster) => Promise<void>;
}

export class TestCluster {
  readonly procs = new Map<string, ChildProcess>();
  readonly logs = new Map<string, string>();
  /** This cluster's ports, planned members' included; held until destroy() so a restarted member finds its ports. */
  private readonly ports: PortReservation[] = [];
  private constructor(
    readonly dir: string,
    readonly members: MemberEndpoint[],
    readonly pki: ClusterPki,
    readonly token: string,
    readonly opts: ClusterOptions,
  ) {}

  static async start(opts: ClusterOptions): Promise<TestCluster> {
    try {
      return await TestCluster.startOnce(opts);
    } catch (e) {
      // Another process can still bind a planned port between our check and the member's
      // bind; that is the harness's race, not the member's bug: plan new ports once.
      if (!/address already in use/.test(String(e))) throw e;
      return TestCluster.startOnce(opts);
    }
  }

  private static async startOnce(opts: ClusterOptions): Promise<TestCluster> {
    ensureBuilt();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-test-"));
    let ports: PortReservation | undefined;
    let c: TestCluster;
    try {
      ports = await reservePorts(opts.size * 10);
      const members = planLocalMembers(opts.size, opts.host ?? "127.0.0.1", ports.base);
      const pki = await writeClusterPki(path.join(dir, "pki"), members, ["admin"]);
      c = new TestCluster(dir, members, pki, `test-${path.basename(dir)}`, opts);
      c.ports.push(ports);
    } catch (e) {
      ports?.release();
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    if (opts.beforeStart) {
      try {
        await opts.beforeStart(c);
      } catch (e) {
        ports.release();
        fs.rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
    try {
      for (const m of c.members) c.startMember(m.name);
      await c.waitHealthy();
    } catch (e) {
      // The caller never gets the cluster to destroy: stop what was started here.
      await c.destroy().catch(() => undefined);
      throw e;
    }
    return c;
  }

  member(name: string): MemberEndpoint {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no member ${name}`);
    return m;
  }

  flags(m: MemberEndpoint, clusterState: "new" | "existing" = "new", cluster: MemberEndpoint[] = this.members): string[] {
    return [
      ...renderMemberFlags(m, cluster, {
        dataDir: path.join(this.dir, "data", m.name),
        certDir: path.join(this.dir, "pki", m.name),
        clusterToken: this.token,
        clusterState,
        listenHost: m.host,
        heartbeatIntervalMs: this.opts.heartbeatMs ?? 50,
        electionTimeoutMs: this.opts.electionMs ?? 500,
        ...(this.opts.snapshotCount !== undefined ? { snapshotCount: this.opts.snapshotCount } : {}),
      }),
      ...(this.opts.extraFlags ?? []),
    ];
  }

  startMember(name: string, flags?: string[]): ChildProcess {
    const m = this.member(name);
    const logFile = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(logFile, "a");
    const child = spawn(process.execPath, [BUNDLE, ...(flags ?? this.flags(m))], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    this.procs.set(name, child);
    this.logs.set(name, logFile);
    return child;
  }

  /** Adds a member to the plan (not to the cluster: use the Cluster API for that). */
  async planExtraMember(name: string): Promise<MemberEndpoint> {
    const ports = await reservePorts(3);
    this.ports.push(ports);
    const base = ports.base;
    const m: MemberEndpoint = { name, host: this.opts.host ?? "127.0.0.1", clientPort: base, peerPort: base + 1, metricsPort: base + 2 };
    await writeClusterPki(path.join(this.dir, "pki"), [m], [], { ca: this.pki.ca, peerCa: this.pki.peerCa });
    this.members.push(m);
    return m;
  }

  log(name: string): string {
    try {
      return fs.readFileSync(this.logs.get(name) ?? "", "utf8");
    } catch {
      return "";
    }
  }

  async kill(name: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const p = this.procs.get(name);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.kill(signal);
    });
  }

  async status(name: string): Promise<MemberStatus | undefined> {
    return fetchStatus(this.member(name));
  }

  async leader(timeoutMs = 10_000, among?: string[]): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const names = among ?? this.members.map((m) => m.name).filter((n) => this.running(n));
      const st = await Promise.all(names.map((n) => this.status(n)));
      const l = st.find((s) => s?.isLeader && s.healthy);
      if (l) return l.name;
      if (Date.now() > deadline) throw new Error(`no leader within ${timeoutMs} ms; statuses: ${JSON.stringify(st)}`);
      await sleep(50);
    }
  }

  running(name: string): boolean {
    const p = this.procs.get(name);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  async waitHealthy(names = this.members.map((m) => m.name), timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await Promise.all(names.map((n) => this.status(n)));
      if (st.every((s) => s?.healthy)) return;
      for (const n of names) {
        if (!this.running(n)) throw new Error(`member ${n} exited during startup:\n${this.log(n).slice(-3000)}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`cluster not healthy within ${timeoutMs} ms: ${JSON.stringify(st)}\n${names.map((n) => `--- ${n}\n${this.log(n).slice(-1500)}`).join("\n")}`);
      }
      await sleep(100);
    }
  }

  /** etcdctl-style environment for our admin client certificate. */
  ctlEnv(names = this.members.map((m) => m.name).filter((n) => this.running(n))): Record<string, string> {
    const admin = this.pki.clients["admin"]!;
    return {
      ETCDCTL_API: "3",
      ETCDCTL_ENDPOINTS: names.map((n) => `${urlHost(this.member(n).host)}:${this.member(n).clientPort}`).join(","),
      ETCDCTL_CACERT: admin.ca,
      ETCDCTL_CERT: admin.cert,
      ETCDCTL_KEY: admin.key,
    };
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((n) => this.kill(n, "SIGKILL")));
    for (const p of this.ports.splice(0)) p.release();
    // RAFTKV_TEST_KEEP=1 keeps data dirs and member logs for a post-mortem.
    if (process.env["RAFTKV_TEST_KEEP"] === "1") process.stderr.write(`kept test cluster files in ${this.dir}\n`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
