/**
 * Clients for the HTTP/JSON gateway tests: curl (what users run; it offers ALPN h2 and
 * http/1.1) for single requests, and node:https (no ALPN at all, so the server must tell the
 * protocol from the first bytes) for streams read line by line; and the raftkv/etcd pair the
 * "answers like etcd" suites compare.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { ETCD_BIN } from "../../helpers/etcd-reference";
import { freePort } from "../../helpers/free-port";
import { runCli } from "../../helpers/run-cli";
import { TestCluster } from "../harness/cluster";

export interface ClientFiles {
  ca: string;
  cert?: string;
  key?: string;
}

export interface HttpResult {
  /** curl's exit code; 0 when an HTTP answer arrived. */
  exit: number | null;
  status: number;
  body: string;
  stderr: string;
}

/** POSTs `body` (GET when undefined) with curl and returns status and body. */
export async function curl(base: string, path: string, body: string | undefined, files?: ClientFiles, extra: string[] = []): Promise<HttpResult> {
  const args = ["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"];
  if (files) {
    args.push("--cacert", files.ca);
    if (files.cert && files.key) args.push("--cert", files.cert, "--key", files.key);
  }
  if (body !== undefined) args.push("-X", "POST", "-d", body);
  args.push(...extra, `${base}${path}`);
  const r = await runCli("curl", args, {}, { timeoutMs: 15_000 });
  const cut = r.stdout.lastIndexOf("\n");
  return { exit: r.code, status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut), stderr: r.stderr };
}

/** The body parsed as JSON; fails the test with the raw text if it is not JSON. */
export function json(r: HttpResult): unknown {
  try {
    return JSON.parse(r.body);
  } catch {
    throw new Error(`not JSON (status ${r.status}, exit ${String(r.exit)}): ${r.body} ${r.stderr}`);
  }
}

/** Every line of a newline-delimited body, parsed. */
export function jsonLines(r: HttpResult): unknown[] {
  return r.body.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as unknown);
}

/** A streaming POST whose response lines are read one at a time. */
export class LineStream {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private error: Error | undefined;
  status: number | undefined;
  private readonly req: http.ClientRequest;

  constructor(url: string, body: string, files?: ClientFiles) {
    const u = new URL(url);
    const opts: https.RequestOptions = { method: "POST", hostname: u.hostname, port: u.port, path: u.pathname, agent: false };
    if (files) {
      opts.ca = readFileSync(files.ca);
      if (files.cert && files.key) {
        opts.cert = readFileSync(files.cert);
        opts.key = readFileSync(files.key);
      }
    }
    const lib = u.protocol === "https:" ? https : http;
    this.req = lib.request(opts, (res) => {
      this.status = res.statusCode;
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          this.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        this.wake();
      });
      res.on("end", () => {
        if (buf.trim() !== "") this.lines.push(buf);
        this.ended = true;
        this.wake();
      });
      res.on("error", (e) => this.fail(e));
    });
    this.req.on("error", (e) => this.fail(e));
    // The body stays open, as a client that may send more requests would keep it.
    this.req.write(body);
  }

  /** The next line as JSON; rejects when the stream ends or nothing arrives in time. */
  async next(timeoutMs = 5000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.error) throw this.error;
      if (this.ended) throw new Error("stream ended");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return JSON.parse(this.lines.shift()!) as unknown;
  }

  close(): void {
    this.req.destroy();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private fail(e: Error): void {
    this.error = e;
    this.wake();
  }
}

/**
 * Replaces the values of the named fields (anywhere in the tree) with "*", keeping the fact
 * that they are present: what differs between two clusters (IDs, terms) is masked, the
 * shape and everything else is compared exactly.
 */
export function mask(v: unknown, fields: readonly string[]): unknown {
  if (Array.isArray(v)) return v.map((x) => mask(x, fields));
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fields.includes(k) && (typeof x !== "object" || x === null) ? "*" : mask(x, fields)]));
  }
  return v;
}

/** Fields that name a cluster, a member or an election, not the data. */
export const IDENTITY_FIELDS = ["cluster_id", "member_id", "raft_term"];

export interface PlainEtcd {
  /** http://127.0.0.1:<client port> */
  base: string;
  stop(): Promise<void>;
}

/**
 * Debian's etcd 3.4 as a single member with plain-HTTP client and peer URLs. Its gateway cannot
 * run over our TLS PKI (etcd 3.4 dials its own gRPC port with the server certificate as a
 * client certificate, which needs the clientAuth usage our server certificates do not carry),
 * and the JSON does not depend on the transport.
 */
export async function startPlainEtcd(opts: { env?: Record<string, string> } = {}): Promise<PlainEtcd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-gw-etcd-"));
  const [client, peer] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const proc = spawn(
    ETCD_BIN,
    [
      "--name=ref",
      `--data-dir=${path.join(dir, "data")}`,
      `--listen-client-urls=${base}`,
      `--advertise-client-urls=${base}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=ref=${peerUrl}`,
      "--heartbeat-interval=50",
      "--election-timeout=500",
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: "", ...opts.env } },
  );
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
      process.kill(proc.pid, "SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  let log = "";
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd not ready in 15 s:\n${log}`)), 15_000);
      proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
        log += d;
        if (/ready to serve client requests/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`etcd exited (${String(code)}):\n${log}`));
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { base, stop };
}

/** Where a gateway request goes: a base URL, and client certificate files over TLS. */
export interface GatewayTarget {
  base: string;
  files?: ClientFiles;
}

/**
 * Registers before/after hooks in the calling describe block that start, side by side, a
 * 3-member raftkv cluster (`ours`: member 1's client URL, mutual TLS with the admin
 * certificate) and Debian's etcd as a plain-HTTP single member (`ref`), and stop both.
 */
export function useGatewayPair(opts: { extraFlags?: string[]; etcdEnv?: Record<string, string> } = {}): { readonly ours: GatewayTarget; readonly ref: GatewayTarget } {
  let cluster: TestCluster | undefined;
  let etcd: PlainEtcd | undefined;
  let pair: { ours: GatewayTarget; ref: GatewayTarget } | undefined;
  before(async function () {
    this.timeout(90_000);
    const [c, e] = await Promise.allSettled([TestCluster.start({ size: 3, extraFlags: opts.extraFlags ?? [] }), startPlainEtcd({ env: opts.etcdEnv ?? {} })]);
    if (c.status === "fulfilled") cluster = c.value;
    if (e.status === "fulfilled") etcd = e.value;
    if (c.status === "rejected") throw c.reason;
    if (e.status === "rejected") throw e.reason;
    const m = cluster!.members[0]!;
    pair = { ours: { base: `https://127.0.0.1:${m.clientPort}`, files: cluster!.pki.clients["admin"]! }, ref: { base: etcd!.base } };
  });
  after(async () => {
    await Promise.all([cluster?.destroy(), etcd?.stop()]);
  });
  const started = () => {
    if (!pair) throw new Error("the raftkv cluster and etcd are not started (use them inside a test)");
    return pair;
  };
  return {
    get ours() {
      return started().ours;
    },
    get ref() {
      return started().ref;
    },
  };
}

/** Asserts that our answer and etcd's to one request have equal status and equal masked JSON; returns ours parsed. */
export function assertSameAnswer(request: string, ours: HttpResult, etcd: HttpResult, masked: readonly string[]): Record<string, unknown> {
  const [ja, jb] = [json(ours), json(etcd)];
  assert.equal(ours.status, etcd.status, `${request}: status ${ours.status} vs etcd ${etcd.status}: ${ours.body} / ${etcd.body}`);
  assert.deepEqual(mask(ja, masked), mask(jb, masked), request);
  return ja as Record<string, unknown>;
}
