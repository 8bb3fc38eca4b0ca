/**
 * Clients for the multi-process cluster tests: a raw grpc-js client (exact status codes and
 * message strings, no retries) and the etcd3 npm client with its retry/circuit-breaker policies
 * switched off, so a failing member shows up as a failing call instead of a silent detour.
 */
import * as grpc from "@grpc/grpc-js";
import * as fs from "node:fs";
import { Etcd3 } from "etcd3";
import { noop } from "cockatiel";
import { loadEtcdGrpc } from "../../../node-runtime/server/proto";
import { sleep, type TestCluster } from "../harness/cluster";
import { urlHost } from "../../../components/topology";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { cleanCtlEnv, runCli, type CliResult } from "../../helpers/run-cli";

// etcd3 warns about TLS ServerName being an IP; the warning is noise in test output.
process.env["NODE_NO_WARNINGS"] = "1";

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  lease: string;
}

export interface RangeResponse {
  header: { revision: string; member_id: string; cluster_id: string; raft_term: string };
  kvs: KeyValue[];
  count: string;
}

export interface WireMember {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** One member's etcd API over mutual TLS with the admin client certificate. */
export class RawMember {
  private readonly clients: Record<"KV" | "Cluster" | "Maintenance" | "Lease", grpc.Client>;

  constructor(
    readonly address: string,
    creds: grpc.ChannelCredentials,
  ) {
    const { clients } = loadEtcdGrpc();
    this.clients = {
      KV: new clients.KV(address, creds),
      Cluster: new clients.Cluster(address, creds),
      Maintenance: new clients.Maintenance(address, creds),
      Lease: new clients.Lease(address, creds),
    };
  }

  call<Res>(service: "KV" | "Cluster" | "Maintenance" | "Lease", method: string, req: object, timeoutMs = 10_000): Promise<Res> {
    const client = this.clients[service] as unknown as Record<string, Unary>;
    const fn = client[method];
    if (typeof fn !== "function") throw new Error(`no method ${service}/${method}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
    });
  }

  put(key: string, value: string | Buffer, timeoutMs?: number): Promise<{ header: { revision: string } }> {
    return this.call("KV", "Put", { key: Buffer.from(key), value: typeof value === "string" ? Buffer.from(value) : value }, timeoutMs);
  }

  get(key: string, opts: { serializable?: boolean; prefix?: boolean; revision?: number } = {}, timeoutMs?: number): Promise<RangeResponse> {
    const k = Buffer.from(key);
    const req: Record<string, unknown> = { key: k, serializable: opts.serializable ?? false };
    if (opts.prefix) req["range_end"] = prefixEnd(k);
    if (opts.revision !== undefined) req["revision"] = String(opts.revision);
    return this.call("KV", "Range", req, timeoutMs);
  }

  async value(key: string, opts: { serializable?: boolean } = {}): Promise<string | undefined> {
    const r = await this.get(key, opts);
    return r.kvs[0]?.value.toString("utf8");
  }

  async members(): Promise<WireMember[]> {
    return (await this.call<{ members: WireMember[] }>("Cluster", "MemberList", {})).members;
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

function prefixEnd(k: Buffer): Buffer {
  const end = Buffer.from(k);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export function adminCredentials(c: TestCluster): grpc.ChannelCredentials {
  const admin = c.pki.clients["admin"]!;
  return grpc.credentials.createSsl(fs.readFileSync(admin.ca), fs.readFileSync(admin.key), fs.readFileSync(admin.cert));
}

export function clientAddress(c: TestCluster, name: string): string {
  const m = c.member(name);
  return `${urlHost(m.host)}:${m.clientPort}`;
}

/** Raw clients by member name; close them all with closeAll(). */
export class RawPool {
  private readonly byName = new Map<string, RawMember>();
  constructor(private readonly c: TestCluster) {}

  of(name: string): RawMember {
    let m = this.byName.get(name);
    if (!m) {
      m = new RawMember(clientAddress(this.c, name), adminCredentials(this.c));
      this.byName.set(name, m);
    }
    return m;
  }

  /** Drops a member's client, e.g. after the process restarted (a new channel reconnects at once). */
  reset(name: string): void {
    this.byName.get(name)?.close();
    this.byName.delete(name);
  }

  closeAll(): void {
    for (const m of this.byName.values()) m.close();
    this.byName.clear();
  }
}

/** The etcd3 npm client without retries or circuit breaker, so every failure is visible. */
export function etcd3Client(c: TestCluster, names: string[]): Etcd3 {
  const admin = c.pki.clients["admin"]!;
  return new Etcd3({
    hosts: names.map((n) => `https://${clientAddress(c, n)}`),
    credentials: {
      rootCertificate: fs.readFileSync(admin.ca),
      privateKey: fs.readFileSync(admin.key),
      certChain: fs.readFileSync(admin.cert),
    },
    faultHandling: { host: () => noop, global: noop },
  });
}

/** The etcd status message of a failed call (grpc-js puts it in `details`). */
export function grpcDetails(e: unknown): string {
  const err = e as { details?: unknown; message?: unknown };
  if (typeof err.details === "string") return err.details;
  return typeof err.message === "string" ? err.message : String(e);
}

/** Awaits a promise that must reject, and returns the rejection's etcd message. */
export async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return grpcDetails(e);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Polls until `probe` returns a value other than undefined, or fails naming `what`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `; last error: ${grpcDetails(last)}` : ""}`);
    await sleep(everyMs);
  }
}

/**
 * Writes `<prefix>NNNNN` keys one after another until stopped, remembering every write the
 * cluster acknowledged. Failures are counted, not fatal: the point is that no acknowledged
 * write may be lost, whatever happens to the members meanwhile.
 */
export class BackgroundWriter {
  readonly acked = new Map<string, string>();
  readonly errors: string[] = [];
  private stopping = false;
  private loop: Promise<void> | undefined;
  private n = 0;

  constructor(
    private readonly write: (key: string, value: string) => Promise<unknown>,
    private readonly prefix: string,
    private readonly pauseMs = 5,
  ) {}

  start(): this {
    this.loop = (async () => {
      while (!this.stopping) {
        const key = `${this.prefix}${String(this.n).padStart(5, "0")}`;
        const value = `value-${this.n}`;
        this.n++;
        try {
          await this.write(key, value);
          this.acked.set(key, value);
        } catch (e) {
          this.errors.push(grpcDetails(e));
          await sleep(50);
        }
        if (this.pauseMs > 0) await sleep(this.pauseMs);
      }
    })();
    return this;
  }

  /** Resolves once at least `count` more writes have been acknowledged. */
  async progress(count: number, timeoutMs = 20_000): Promise<void> {
    const target = this.acked.size + count;
    await eventually(`${count} more acknowledged writes (errors so far: ${this.errors.slice(-3).join("; ")})`, async () => (this.acked.size >= target ? true : undefined), timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }
}

/** Asserts that every acknowledged write is present with its value, reading by prefix. */
export async function missingWrites(m: RawMember, prefix: string, acked: ReadonlyMap<string, string>, serializable = false): Promise<string[]> {
  const r = await m.get(prefix, { prefix: true, serializable });
  const have = new Map(r.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
  return [...acked].filter(([k, v]) => have.get(k) !== v).map(([k]) => k);
}

/** Debian's etcdctl against one member of the cluster, with short dial and command timeouts. */
export function etcdctlOn(c: TestCluster, endpoint: string, args: string[]): Promise<CliResult> {
  return runCli(ETCDCTL_BIN, ["--dial-timeout=3s", "--command-timeout=10s", ...args], { ...cleanCtlEnv(), ...c.ctlEnv([endpoint]) }, { timeoutMs: 30_000 });
}
