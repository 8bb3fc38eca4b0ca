/**
 * Request IDs across restarts on a real data dir (issue 12, bug 4's last case): a process whose
 * clock reads earlier than its previous incarnation's IDs (set back across the restart, or
 * started in the same millisecond range), where the previous incarnation logged none of the IDs
 * it used (read-index contexts, forwarded proposals), must not hand those IDs out again: an old
 * read answer or an old forwarded entry would settle a new request.
 */
import { strict as assert } from "node:assert";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { Member } from "../../node-runtime/server/member";
import { parseConfig } from "../../node-runtime/server/config";
import { Metrics } from "../../node-runtime/server/obs/metrics";
import { systemClock, type PeerNetwork } from "../../node-runtime/server/member-env";
import type { ReloadingTls } from "../../node-runtime/server/tls";
import { useTempDir } from "../storage/support/wal-helpers";

/** A single member needs no peers: a network that never carries anything. */
const noPeers = (): PeerNetwork => ({
  start: async () => undefined,
  stop: async () => undefined,
  send: () => undefined,
  sendSnapshot: () => Promise.reject(new Error("no peers")),
  addPeer: () => undefined,
  updatePeer: () => undefined,
  removePeer: () => undefined,
  hasPeer: () => false,
  stats: () => new Map(),
});

describe("request IDs of a member restarted on its data dir", () => {
  const tmp = useTempDir();

  it("never repeat the previous incarnation's read-index contexts, whatever the clock reads (incarnation saved in member.json)", async function () {
    this.timeout(60_000);
    const cfg = parseConfig(
      [
        "--name=m1",
        `--data-dir=${tmp.path}`,
        "--initial-cluster=m1=https://127.0.0.1:2380",
        "--initial-advertise-peer-urls=https://127.0.0.1:2380",
        "--listen-peer-urls=https://127.0.0.1:2380",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--heartbeat-interval=10",
        "--election-timeout=50",
        "--peer-cert-file=/nonexistent/peer.crt",
        "--peer-key-file=/nonexistent/peer.key",
        "--peer-trusted-ca-file=/nonexistent/ca.crt",
      ],
      {},
    );
    let wallClock = Date.UTC(2026, 11, 6, 12);
    const incarnation = async (): Promise<number[]> => {
      const m = new Member(cfg, undefined as unknown as ReloadingTls, pino({ level: "silent" }), new Metrics(), {
        clock: { ...systemClock, now: () => wallClock },
        network: noPeers,
      });
      await m.start();
      const contexts: number[] = [];
      try {
        // Serving once a read goes through (the core leads before the member has seen it lead).
        for (let i = 0; ; i++) {
          const ok = await Promise.resolve().then(() => m.readBarrier()).then(() => true, () => false);
          if (ok) break;
          assert.ok(i < 400, "the single member serves reads");
          await new Promise((r) => setTimeout(r, 25));
        }
        const raft = (m as unknown as { raft: { readIndex(ctx: Buffer): void } }).raft;
        const readIndex = raft.readIndex.bind(raft);
        raft.readIndex = (ctx: Buffer) => {
          contexts.push(ctx.readDoubleLE(8));
          readIndex(ctx);
        };
        // Reads only: none of these IDs reaches the log. More than the 2048 IDs per millisecond
        // a clock-based ID sequence advances by.
        for (let i = 0; i < 2100; i++) await m.readBarrier();
      } finally {
        await m.stop();
      }
      return contexts;
    };
    const first = await incarnation();
    assert.equal(first.length, 2100);
    const metaPath = join(tmp.path, "member.json");
    const savedIncarnation = async (): Promise<unknown> => (JSON.parse(await readFile(metaPath, "utf8")) as { incarnation?: number }).incarnation;
    const afterFirst = await savedIncarnation();
    // The second process's clock reads 1 ms later than the first one's start (set back: the
    // first ran for a while).
    wallClock += 1;
    const second = await incarnation();
    const used = new Set(first);
    const repeated = second.filter((id) => used.has(id));
    assert.deepEqual(repeated.slice(0, 3), [], `${repeated.length} read-index contexts of the first process were used again by the second`);
    // And the clock set back further still.
    wallClock -= 60_000;
    const third = await incarnation();
    const again = third.filter((id) => used.has(id) || second.includes(id));
    assert.deepEqual(again.slice(0, 3), [], `${again.length} read-index contexts were used again by the third process`);
    assert.deepEqual([afterFirst, await savedIncarnation()], [1, 3], "member.json counts the processes");
  });
});
