/**
 * The scenarios' workload: starts client.ts in a worker's network namespace with the worker's
 * own client certificate (read from the host), asks it for counts, stops it; and compares every
 * member's copy of the data at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { CLIENT_CERT_FILE, CLIENT_KEY_FILE, HOST, memberCertFileNames } from "../../../components/hostFiles";
import type { LabHost } from "../apply/contract";
import { tsxNodeArgv } from "../apply/tsxNode";
import type { WorkloadConfig, WorkloadCounts, WorkloadFinal } from "./client";

export type { WorkloadCounts, WorkloadFinal } from "./client";

async function readHostFile(host: LabHost, file: string): Promise<string> {
  const r = await host.exec(["cat", file]);
  if (r.code !== 0) throw new Error(`cannot read ${file} on ${host.name}: ${r.stderr.trim()}`);
  return r.stdout;
}

export class Workload {
  private readonly lines: string[] = [];
  private waiters: Array<(line: string) => void> = [];
  private exited = false;

  private constructor(
    private readonly proc: ChildProcess,
    readonly prefix: string,
  ) {
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      const w = this.waiters.shift();
      if (w !== undefined) w(line);
      else this.lines.push(line);
    });
    proc.on("exit", () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w("");
    });
  }

  private nextLine(timeoutMs: number): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.exited) return Promise.reject(new Error("the workload process has exited"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the workload did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((line) => {
        clearTimeout(timer);
        if (line === "" && this.exited) reject(new Error("the workload process has exited"));
        else resolve(line);
      });
    });
  }

  /** Starts writer and reader on `worker`, dialing the NLB at `address` as `serverName`. */
  static async start(opts: { worker: LabHost; address: string; serverName: string; port?: number; prefix: string }): Promise<Workload> {
    const certDir = HOST.certDir;
    const cfg: WorkloadConfig = {
      address: opts.address,
      port: opts.port ?? 2379,
      serverName: opts.serverName,
      caPem: await readHostFile(opts.worker, `${certDir}/${memberCertFileNames().ca}`),
      certPem: await readHostFile(opts.worker, `${certDir}/${CLIENT_CERT_FILE}`),
      keyPem: await readHostFile(opts.worker, `${certDir}/${CLIENT_KEY_FILE}`),
      prefix: opts.prefix,
    };
    const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-workload-"));
    const cfgPath = path.join(dir, "config.json");
    writeFileSync(cfgPath, JSON.stringify(cfg), { mode: 0o600 });
    const argv = tsxNodeArgv(path.join(__dirname, "client.ts"), cfgPath);
    const proc = spawn("nsenter", [`--net=${opts.worker.netnsPath}`, "--", ...argv], { stdio: ["ignore", "pipe", "inherit"] });
    const w = new Workload(proc, opts.prefix);
    try {
      const first = await w.nextLine(60_000);
      if (first !== "started") throw new Error(`workload said ${JSON.stringify(first)}`);
    } catch (e) {
      proc.kill("SIGKILL");
      throw e;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return w;
  }

  async counts(): Promise<WorkloadCounts> {
    this.proc.kill("SIGUSR1");
    return JSON.parse(await this.nextLine(30_000)) as WorkloadCounts;
  }

  /** Waits until `n` more writes were acknowledged (the cluster is taking writes). */
  async waitForWrites(n: number, timeoutMs = 60_000): Promise<WorkloadCounts> {
    const start = (await this.counts()).writes.ok;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await this.counts();
      if (c.writes.ok >= start + n) return c;
      if (Date.now() > deadline) throw new Error(`only ${c.writes.ok - start} of ${n} writes acknowledged in ${timeoutMs} ms (errors: ${c.errors.join(" | ")})`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(): Promise<WorkloadFinal> {
    this.proc.kill("SIGTERM");
    return JSON.parse(await this.nextLine(60_000)) as WorkloadFinal;
  }

  kill(): void {
    if (!this.exited) this.proc.kill("SIGKILL");
  }
}

export interface MemberData {
  host: string;
  keys: number;
  revision: string;
}

async function memberData(host: LabHost, prefix: string): Promise<{ kvs: Map<string, string>; revision: string }> {
  const r = await host.exec(["raftkvctl", "get", prefix, "--prefix", "--consistency=s", "-w", "json"], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`raftkvctl get on ${host.name} failed: ${r.stderr.trim()}`);
  const parsed = JSON.parse(r.stdout) as { header?: { revision?: string | number }; kvs?: Array<{ key: string; value?: string }> };
  const kvs = new Map<string, string>();
  for (const kv of parsed.kvs ?? []) kvs.set(Buffer.from(kv.key, "base64").toString(), Buffer.from(kv.value ?? "", "base64").toString());
  return { kvs, revision: String(parsed.header?.revision ?? "?") };
}

/**
 * Every member's copy of the workload's keys, read locally on each master (serializable), must
 * be identical and hold every acknowledged write. Members may lag for a moment: polls until
 * they agree or the time is up, then reports what differs.
 */
export async function compareMembers(masters: LabHost[], prefix: string, acked: number[], timeoutMs = 60_000): Promise<MemberData[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const data = await Promise.all(masters.map(async (h) => ({ host: h.name, ...(await memberData(h, prefix)) })));
    const problems: string[] = [];
    const ref = data[0]!;
    for (const d of data.slice(1)) {
      if (d.kvs.size !== ref.kvs.size) problems.push(`${d.host} has ${d.kvs.size} keys, ${ref.host} has ${ref.kvs.size}`);
      else for (const [k, v] of d.kvs) if (ref.kvs.get(k) !== v) { problems.push(`${d.host} and ${ref.host} differ at ${k}`); break; }
    }
    for (const d of data) {
      const missing = acked.filter((seq) => d.kvs.get(`${prefix}${String(seq).padStart(8, "0")}`) !== String(seq));
      if (missing.length > 0) problems.push(`${d.host} lacks ${missing.length} acknowledged writes (first: ${missing[0]})`);
    }
    if (problems.length === 0) return data.map((d) => ({ host: d.host, keys: d.kvs.size, revision: d.revision }));
    if (Date.now() > deadline) throw new Error(`members disagree: ${problems.join("; ")}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
