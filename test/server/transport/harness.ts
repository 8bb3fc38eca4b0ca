// Members with real TLS transports on loopback ports for the transport tests.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Metrics } from "../../../node-runtime/server/obs/metrics";
import { ReloadingTls } from "../../../node-runtime/server/tls/reloading";
import { PeerTransport, type PeerRecord, type PeerTransportOptions } from "../../../node-runtime/server/transport";
import { makeLeaf, writeMemberFiles, type MemberFiles, type TestCa } from "../tls/certs";
import { captureLog, type CapturedLog } from "../tls/log-capture";

export interface Received {
  from: number;
  payload: Uint8Array;
}

export interface TestMember {
  id: number;
  transport: PeerTransport;
  tls: ReloadingTls;
  files: MemberFiles;
  log: CapturedLog;
  received: Received[];
  url: string;
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), "raftkv-transport-"));
  private readonly members: TestMember[] = [];

  async member(
    id: number,
    opts: {
      ca: TestCa;
      trust?: TestCa[];
      clusterId?: string;
      port?: number;
      metrics?: Metrics;
      extra?: Partial<PeerTransportOptions>;
      watch?: boolean;
      /** The member name its certificate carries (default member-<id>, matching the directory). */
      certName?: string;
    },
  ): Promise<TestMember> {
    const certName = opts.certName ?? memberName(id);
    const leaf = await makeLeaf(opts.ca, certName, { member: certName });
    const files = writeMemberFiles(join(this.dir, `m${id}-${this.members.length}`), leaf, opts.trust ?? [opts.ca]);
    const log = captureLog();
    const tls = new ReloadingTls(files, { logger: log.logger, watch: opts.watch ?? false, debounceMs: 50 });
    const received: Received[] = [];
    const transport = new PeerTransport({
      selfId: id,
      clusterId: opts.clusterId ?? "cluster-1",
      listen: { host: "127.0.0.1", port: opts.port ?? 0 },
      tls,
      logger: log.logger,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      onMessage: (from, payload) => received.push({ from, payload }),
      directory: testDirectory,
      ...opts.extra,
    });
    await transport.start();
    const m = { id, transport, tls, files, log, received, url: `https://127.0.0.1:${transport.port}` };
    this.members.push(m);
    return m;
  }

  /** Tells every listed member about every other one. */
  mesh(...ms: TestMember[]): void {
    for (const a of ms) for (const b of ms) if (a !== b) a.transport.addPeer(b.id, b.url);
  }

  async close(): Promise<void> {
    for (const m of this.members) {
      await m.transport.stop();
      m.tls.close();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Member `id` of the test clusters is named member-<id>. */
export function memberName(id: number): string {
  return `member-${id}`;
}

/** The membership every test member believes in: ids 1..20, each named member-<id>. */
export function testDirectory(): PeerRecord[] {
  return Array.from({ length: 20 }, (_, i) => ({ id: i + 1, name: memberName(i + 1), peerURLs: [] }));
}

/** Polls until `cond` holds; fails with `what` after `ms`. Waiting is not a timing assertion. */
export async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A payload that carries a sequence number in its first 4 bytes. */
export function numbered(seq: number, size = 300): Uint8Array {
  const b = Buffer.alloc(size, seq & 0xff);
  b.writeUInt32BE(seq, 0);
  return b;
}

export function seqOf(p: Uint8Array): number {
  return Buffer.from(p.buffer, p.byteOffset, p.byteLength).readUInt32BE(0);
}
