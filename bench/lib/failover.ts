/**
 * Time from kill -9 of the leader to the next successful write. A writer sends a put every
 * few milliseconds, alternating between the surviving members, each with its own deadline
 * (open loop, so one request stuck on the dead leader does not hold back the next). Only a
 * put sent after the kill counts; the result is its completion time minus the kill time.
 */
import { performance } from "node:perf_hooks";
import type { BenchCluster } from "./cluster";
import { openH2Channel, type UnaryChannel } from "./h2-channel";
import { readTls } from "./tls-files";
import { benchKey, benchValue, encodePut, grpcFrame, PUT_PATH } from "./wire";

export interface FailoverOptions {
  /** How often a put is sent (ms); the resolution of the measurement. */
  intervalMs?: number;
  /** Deadline of each put. */
  deadlineMs?: number;
  /** Give up after this long without a successful write. */
  timeoutMs?: number;
}

export interface FailoverResult {
  killedLeader: string;
  /** ms from SIGKILL to the first acknowledged put that was sent after it. */
  recoveryMs: number;
}

export async function measureFailover(cluster: BenchCluster, opts: FailoverOptions = {}): Promise<FailoverResult> {
  const intervalMs = opts.intervalMs ?? 10;
  const deadlineMs = opts.deadlineMs ?? 2000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const leader = await cluster.leader();
  const survivors = cluster.members.filter((m) => m.name !== leader).map((m) => m.name);
  const tls = readTls(cluster.tls);
  const channels: UnaryChannel[] = await Promise.all(survivors.map((n) => openH2Channel(cluster.clientUrl(n), tls)));
  const value = benchValue();
  let n = 0;
  let killAt = Infinity;
  let lastError = "";
  let warmSuccesses = 0;
  let resolveRecovered: ((ms: number) => void) | undefined;
  const recovered = new Promise<number>((r) => (resolveRecovered = r));
  const timer = setInterval(() => {
    const sentAt = performance.now();
    const frame = grpcFrame(encodePut(benchKey(n % 1000), value));
    channels[n++ % channels.length]!.call(
      PUT_PATH,
      frame,
      (err) => {
        if (err) {
          lastError = err.message;
          return;
        }
        if (sentAt >= killAt) resolveRecovered!(performance.now() - killAt);
        else warmSuccesses++;
      },
      deadlineMs,
    );
  }, intervalMs);
  try {
    // Connections warm and writes flowing before the kill, so no handshake is measured.
    const warmDeadline = Date.now() + 10_000;
    while (warmSuccesses < 20) {
      if (Date.now() > warmDeadline) throw new Error(`writes to the followers do not succeed before the kill: ${lastError}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const pid = cluster.pid(leader)!;
    killAt = performance.now();
    process.kill(pid, "SIGKILL");
    const killed = cluster.kill9(leader);
    const giveUp = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`no successful write within ${timeoutMs} ms after the kill (${lastError})`)), timeoutMs).unref(),
    );
    const recoveryMs = await Promise.race([recovered, giveUp]);
    await killed;
    return { killedLeader: leader, recoveryMs };
  } finally {
    clearInterval(timer);
    for (const ch of channels) ch.close();
  }
}
