/**
 * A cluster of real server processes for the chaos suite, one per network-namespace slot, with
 * mutual TLS from our PKI and flags from the topology plan. The same class runs raftkv (the
 * bundle, dist/raftkv.cjs) and etcd 3.4 (/usr/bin/etcd): both take exactly the same flags.
 *
 * Processes are tracked by PID; `destroy()` kills them (and the namespaces' close() kills any
 * straggler inside a namespace).
 */
import * as grpc from "@grpc/grpc-js";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { renderMemberFlags, type MemberEndpoint } from "../../components/topology";
import { writeClusterPki, type ClusterPki } from "../../node-runtime/pki";
import { loadEtcdGrpc } from "../../node-runtime/server/proto";
import { BUNDLE } from "../server/harness/cluster";
import type { ChaosNet, Slot } from "./net";

export type Impl = "raftkv" | "etcd";
export const ETCD_BIN = "/usr/bin/etcd";

type Service = "KV" | "Cluster" | "Maintenance";
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export interface StatusInfo {
  memberId: string;
  leader: string;
  term: number;
  raftIndex: number;
}

/** The etcd API of one slot's member over mutual TLS, no retries: every call has a deadline. */
export class SlotClient {
  private readonly clients: Record<Service, grpc.Client>;
  constructor(
    readonly address: string,
    creds: grpc.ChannelCredentials,
  ) {
    const { clients } = loadEtcdGrpc();
    // One channel per service is fine: the channel options keep reconnects quick after a heal.
    const opts: grpc.ChannelOptions = { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 };
    this.clients = {
      KV: new clients.KV(address, creds, opts),
      Cluster: new clients.Cluster(address, creds, opts),
      Maintenance: new clients.Maintenance(address, creds, opts),
    };
  }

  call<Res>(service: Service, method: string, req: object, timeoutMs: number): Promise<Res> {
    const client = this.clients[service] as unknown as Record<string, Unary>;
    const fn = client[method];
    if (typeof fn !== "function") throw new Error(`no method ${service}/${method}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
    });
  }

  async status(timeoutMs = 1000): Promise<StatusInfo> {
    const r = await this.call<{ header: { member_id: string }; leader: string; raftTerm: string; raftIndex: string }>("Maintenance", "Status", {}, timeoutMs);
    return { memberId: r.header.member_id, leader: r.leader, term: Number(r.raftTerm), raftIndex: Number(r.raftIndex) };
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

export interface Incarnation {
  slot: Slot;
  endpoint: MemberEndpoint;
  flags: string[];
  proc: ChildProcess | undefined;
  paused: boolean;
  /** Member ID as the cluster knows it (decimal string), once known. */
  id: string | undefined;
}

export interface ClusterOptions {
  impl: Impl;
  net: ChaosNet;
  /** Slots used by the founding members (the rest are spares for replacements). */
  size: number;
  dir: string;
  heartbeatMs: number;
  electionMs: number;
}

export class ChaosCluster {
  /** Current members by slot index. */
  readonly members = new Map<number, Incarnation>();
  private readonly clients = new Map<number, SlotClient>();
  private generation = 0;
  private readonly token: string;

  private constructor(
    readonly opts: ClusterOptions,
    readonly pki: ClusterPki,
    private readonly creds: grpc.ChannelCredentials,
  ) {
    this.token = `chaos-${opts.impl}-${path.basename(opts.dir)}`;
  }

  static async create(opts: ClusterOptions): Promise<ChaosCluster> {
    fs.mkdirSync(opts.dir, { recursive: true });
    const founders = opts.net.slots.slice(0, opts.size).map((s) => endpointFor(s, `m${s.index}`));
    const pki = await writeClusterPki(path.join(opts.dir, "pki"), founders, ["admin"]);
    const admin = pki.clients["admin"]!;
    const creds = grpc.credentials.createSsl(fs.readFileSync(admin.ca), fs.readFileSync(admin.key), fs.readFileSync(admin.cert));
    const c = new ChaosCluster(opts, pki, creds);
    for (const e of founders) {
      const slot = opts.net.slots[Number(e.name.slice(1))]!;
      c.members.set(slot.index, { slot, endpoint: e, flags: c.flagsFor(e, founders, "new"), proc: undefined, paused: false, id: undefined });
    }
    return c;
  }

  get impl(): Impl {
    return this.opts.impl;
  }

  client(slot: number): SlotClient {
    let c = this.clients.get(slot);
    if (c === undefined) {
      const s = this.opts.net.slots[slot]!;
      c = new SlotClient(`${s.ip}:2379`, this.creds);
      this.clients.set(slot, c);
    }
    return c;
  }

  private flagsFor(self: MemberEndpoint, cluster: MemberEndpoint[], state: "new" | "existing"): string[] {
    return renderMemberFlags(self, cluster, {
      dataDir: path.join(this.opts.dir, "data", self.name),
      certDir: path.join(this.opts.dir, "pki", self.name),
      clusterToken: this.token,
      clusterState: state,
      listenHost: self.host,
      heartbeatIntervalMs: this.opts.heartbeatMs,
      electionTimeoutMs: this.opts.electionMs,
    });
  }

  logFile(inc: Incarnation): string {
    return path.join(this.opts.dir, `${inc.endpoint.name}.log`);
  }

  log(inc: Incarnation, tail = 2000): string {
    try {
      return fs.readFileSync(this.logFile(inc), "utf8").slice(-tail);
    } catch {
      return "";
    }
  }

  start(inc: Incarnation): void {
    const fd = fs.openSync(this.logFile(inc), "a");
    const argv = this.impl === "raftkv" ? [process.execPath, BUNDLE, ...inc.flags] : [ETCD_BIN, ...inc.flags];
    // `ip netns exec` execs the command after entering the namespace: the PID is the server's.
    const proc = spawn("ip", ["netns", "exec", inc.slot.netns, ...argv], {
      stdio: ["ignore", fd, fd],
      env: { ...process.env, NODE_NO_WARNINGS: "1" },
    });
    fs.closeSync(fd);
    proc.on("error", () => undefined);
    inc.proc = proc;
    inc.paused = false;
  }

  running(inc: Incarnation): boolean {
    return inc.proc !== undefined && inc.proc.exitCode === null && inc.proc.signalCode === null;
  }

  async kill(inc: Incarnation): Promise<void> {
    const p = inc.proc;
    if (p === undefined || !this.running(inc)) return;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill("SIGKILL");
    await exited;
    inc.paused = false;
  }

  pause(inc: Incarnation): void {
    if (this.running(inc)) {
      inc.proc!.kill("SIGSTOP");
      inc.paused = true;
    }
  }

  resume(inc: Incarnation): void {
    if (inc.proc !== undefined && inc.paused) {
      inc.proc.kill("SIGCONT");
      inc.paused = false;
    }
  }

  async startAll(timeoutMs: number): Promise<void> {
    for (const inc of this.members.values()) this.start(inc);
    await this.waitHealthy(timeoutMs);
    await this.refreshIds();
  }

  /** Every current member answers Status and agrees on a leader that is a member. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const sts = await Promise.all([...this.members.keys()].map((s) => this.client(s).status(1000).catch((e: Error) => e)));
      const ok = sts.filter((s): s is StatusInfo => !(s instanceof Error));
      if (ok.length === sts.length && ok.every((s) => s.leader !== "0" && s.leader === ok[0]!.leader)) return;
      last = sts.map((s) => (s instanceof Error ? s.message : `leader ${s.leader} term ${s.term}`)).join("; ");
      for (const inc of this.members.values()) {
        if (inc.proc !== undefined && !this.running(inc)) throw new Error(`${this.impl} member ${inc.endpoint.name} exited: ${this.log(inc, 1500)}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.impl} cluster not healthy within ${timeoutMs} ms: ${last}`);
      await sleep(200);
    }
  }

  async refreshIds(): Promise<void> {
    for (const [slot, inc] of this.members) {
      const st = await this.client(slot).status(2000).catch(() => undefined);
      if (st) inc.id = st.memberId;
    }
  }

  /** The slot of the member that calls itself leader with the highest term, if any answers. */
  async leader(): Promise<{ slot: number; term: number } | undefined> {
    let best: { slot: number; term: number } | undefined;
    await Promise.all(
      [...this.members].map(async ([slot, inc]) => {
        if (inc.paused || !this.running(inc)) return;
        const st = await this.client(slot).status(800).catch(() => undefined);
        if (st && st.leader === st.memberId && (best === undefined || st.term > best.term)) best = { slot, term: st.term };
      }),
    );
    return best;
  }

  /** Highest term any reachable member reports. */
  async maxTerm(): Promise<number> {
    const terms = await Promise.all([...this.members.keys()].map((s) => this.client(s).status(800).then((x) => x.term).catch(() => 0)));
    return Math.max(0, ...terms);
  }

  /** Removes the member in `slot` through another member's Cluster API, then kills it. */
  async remove(slot: number, via: number): Promise<void> {
    const inc = this.members.get(slot);
    if (inc === undefined) throw new Error(`slot ${slot} holds no member`);
    if (inc.id === undefined) throw new Error(`member ${inc.endpoint.name} has no known ID`);
    // etcd refuses a removal that could cost quorum while a member is not yet "active"
    // (connected for 5 s): "etcdserver: unhealthy cluster". An operator retries; so do we, briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client(via).call("Cluster", "MemberRemove", { ID: inc.id }, 10_000);
        break;
      } catch (e) {
        if (attempt >= 10 || !/unhealthy cluster/.test((e as Error).message)) throw e;
        await sleep(1000);
      }
    }
    this.members.delete(slot);
    await this.kill(inc);
  }

  /**
   * Adds a member in `slot` through `via` (same name and peer URL as its previous incarnation
   * when `name` is the old one: a re-add), with an empty data dir, and starts it.
   */
  async add(slot: number, via: number, name?: string): Promise<Incarnation> {
    const s = this.opts.net.slots[slot]!;
    const memberName = name ?? `m${slot}-g${++this.generation}`;
    const e = endpointFor(s, memberName);
    if (!fs.existsSync(path.join(this.opts.dir, "pki", memberName))) {
      await writeClusterPki(path.join(this.opts.dir, "pki"), [e], [], { ca: this.pki.ca, peerCa: this.pki.peerCa });
    }
    fs.rmSync(path.join(this.opts.dir, "data", memberName), { recursive: true, force: true });
    const res = await this.client(via).call<{ member: { ID: string } }>("Cluster", "MemberAdd", { peerURLs: [`https://${s.ip}:2380`], isLearner: false }, 10_000);
    const cluster = [...[...this.members.values()].map((m) => m.endpoint), e];
    const inc: Incarnation = { slot: s, endpoint: e, flags: this.flagsFor(e, cluster, "existing"), proc: undefined, paused: false, id: res.member.ID };
    this.members.set(slot, inc);
    this.start(inc);
    return inc;
  }

  freeSlots(): number[] {
    return this.opts.net.slots.map((s) => s.index).filter((i) => !this.members.has(i));
  }

  /** Kills every process this cluster started and closes clients. */
  async destroy(): Promise<void> {
    for (const inc of this.members.values()) {
      this.resume(inc);
      await this.kill(inc);
    }
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

function endpointFor(s: Slot, name: string): MemberEndpoint {
  return { name, host: s.ip, clientPort: 2379, peerPort: 2380, metricsPort: 2381 };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
