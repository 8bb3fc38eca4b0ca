/**
 * One chaos run: a fresh cluster (raftkv or etcd) in the namespaces, the register workload over
 * every member, a nemesis applied for some cycles (fault, wait, heal, measure), then the
 * linearizability check over the history and a HashKV comparison of every member at one revision.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { checkKvHistory, formatKvResult } from "../helpers/lincheck";
import { seededRandom as rngFrom } from "../helpers/prng";
import { ChaosCluster, sleep, type Impl } from "./cluster";
import type { ChaosNet } from "./net";
import type { Nemesis } from "./nemesis";
import { Workload, type WorkloadCounts } from "./workload";

export interface RunOptions {
  impl: Impl;
  net: ChaosNet;
  size: number;
  nemesis: Nemesis;
  cycles: number;
  faultMs: number;
  dir: string;
  seed: number;
  log: (line: string) => void;
  heartbeatMs?: number;
  electionMs?: number;
  clientsPerSlot?: number;
}

export interface HealMeasure {
  /** ms from the heal until a write through every member succeeded; null if not within the bound. */
  recoveryMs: number | null;
  leaderTermBefore: number | null;
  leaderTermAfter: number | null;
}

export interface RunResult extends WorkloadCounts {
  impl: Impl;
  nemesis: string;
  members: number;
  verdict: "linearizable" | "NOT linearizable" | "unknown (search budget)";
  checkDetail: string;
  converged: boolean;
  hashes: Record<string, string>;
  hashRevision: number | null;
  heals: HealMeasure[];
  /** Heals after which the leader's term went up. */
  disruptedHeals: number;
  events: string[];
  errors: string[];
  durationMs: number;
}

export const RECOVERY_BOUND_MS = 30_000;


async function writeThroughEveryMember(cluster: ChaosCluster, boundMs: number): Promise<number | null> {
  const t0 = Date.now();
  const pending = new Set(cluster.members.keys());
  while (pending.size > 0) {
    if (Date.now() - t0 > boundMs) return null;
    await Promise.all(
      [...pending].map(async (slot) => {
        try {
          await cluster.client(slot).call("KV", "Put", { key: Buffer.from(`probe/${slot}`), value: Buffer.from(String(Date.now())) }, 1000);
          pending.delete(slot);
        } catch {
          // not yet
        }
      }),
    );
    if (pending.size > 0) await sleep(100);
  }
  return Date.now() - t0;
}

/** Waits until every member has applied up to the leader's revision, then HashKV at that revision on each. */
async function compareHashes(cluster: ChaosCluster, errors: string[]): Promise<{ converged: boolean; hashes: Record<string, string>; revision: number | null }> {
  const hashes: Record<string, string> = {};
  let revision: number | null = null;
  try {
    await cluster.waitHealthy(60_000);
    const l = await cluster.leader();
    if (l === undefined) throw new Error("no leader for the hash comparison");
    const r = await cluster.client(l.slot).call<{ header: { revision: string } }>("KV", "Range", { key: Buffer.from("probe/") }, 5000);
    const rev = Number(r.header.revision);
    revision = rev;
    for (const [slot, inc] of cluster.members) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const h = await cluster
          .client(slot)
          .call<{ header: { revision: string } }>("KV", "Range", { key: Buffer.from("probe/"), serializable: true }, 2000)
          .catch(() => undefined);
        if (h !== undefined && Number(h.header.revision) >= rev) break;
        if (Date.now() > deadline) throw new Error(`${inc.endpoint.name} did not reach revision ${rev}`);
        await sleep(200);
      }
      const hk = await cluster.client(slot).call<{ hash: number }>("Maintenance", "HashKV", { revision: String(rev) }, 10_000);
      hashes[inc.endpoint.name] = String(hk.hash);
    }
  } catch (e) {
    errors.push(`hash comparison: ${(e as Error).message}`);
  }
  const values = new Set(Object.values(hashes));
  return { converged: values.size === 1 && Object.keys(hashes).length === cluster.members.size, hashes, revision };
}

export async function runNemesis(o: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const rng = rngFrom(o.seed);
  const events: string[] = [];
  const errors: string[] = [];
  const t0 = Date.now();
  const log = (line: string): void => {
    const l = `+${((Date.now() - t0) / 1000).toFixed(1)}s ${line}`;
    events.push(l);
    o.log(`[${o.impl} ${o.nemesis.name}] ${l}`);
  };
  const dir = path.join(o.dir, `${o.impl}-${o.nemesis.name}`);
  const cluster = await ChaosCluster.create({ impl: o.impl, net: o.net, size: o.size, dir, heartbeatMs: o.heartbeatMs ?? 100, electionMs: o.electionMs ?? 1000 });
  const heals: HealMeasure[] = [];
  let workload: Workload | undefined;
  try {
    await cluster.startAll(90_000);
    log(`cluster of ${o.size} up`);
    workload = new Workload(cluster, `chaos-${o.nemesis.name}`, { clientsPerSlot: o.clientsPerSlot ?? 2, opTimeoutMs: 2000, opsPerKey: 150, activeKeys: 3, rng });
    workload.start(o.net.slots.map((s) => s.index));
    await sleep(5000);
    for (let c = 0; c < o.cycles; c++) {
      let heal: (() => Promise<void>) | undefined;
      try {
        heal = await o.nemesis.fault({ cluster, net: o.net, rng, log });
      } catch (e) {
        errors.push(`cycle ${c + 1} fault: ${(e as Error).message}`);
        log(`fault failed: ${(e as Error).message}`);
      }
      await sleep(o.faultMs);
      const before = await cluster.leader();
      try {
        if (heal) await heal();
        log("healed");
      } catch (e) {
        errors.push(`cycle ${c + 1} heal: ${(e as Error).message}`);
        log(`heal failed: ${(e as Error).message}`);
        await o.net.heal();
      }
      const recoveryMs = await writeThroughEveryMember(cluster, RECOVERY_BOUND_MS);
      log(recoveryMs === null ? `not recovered within ${RECOVERY_BOUND_MS} ms` : `every member took a write ${recoveryMs} ms after the heal`);
      if (recoveryMs === null) {
        for (const inc of cluster.members.values()) if (!cluster.running(inc)) errors.push(`${inc.endpoint.name} is not running: ${cluster.log(inc, 600).replace(/\s+/g, " ")}`);
      }
      await sleep(1500);
      const after = await cluster.leader();
      heals.push({ recoveryMs, leaderTermBefore: before?.term ?? null, leaderTermAfter: after?.term ?? null });
      await cluster.refreshIds();
      await sleep(1500);
    }
    await sleep(1000);
  } catch (e) {
    errors.push(`run: ${(e as Error).message}`);
    log(`run failed: ${(e as Error).message}`);
  } finally {
    if (workload) await workload.stop();
    await o.net.heal();
  }
  const { converged, hashes, revision } = errors.some((e) => e.startsWith("run:")) ? { converged: false, hashes: {}, revision: null } : await compareHashes(cluster, errors);
  await cluster.destroy();
  const history = workload?.history ?? [];
  const check = checkKvHistory(history, { maxSteps: 1_000_000, maxTotalSteps: 20_000_000 });
  const verdict = check.verdict === "ok" ? "linearizable" : check.verdict === "illegal" ? "NOT linearizable" : "unknown (search budget)";
  log(`${verdict}; converged ${converged}`);
  if (check.verdict !== "ok") {
    // The history is the evidence: keep it outside the temp dir that is removed below.
    const file = path.join(path.dirname(o.dir), `raftkv-chaos-history-${o.impl}-${o.nemesis.name}-${o.seed}.json`);
    fs.writeFileSync(file, JSON.stringify(history));
    errors.push(`history kept in ${file}`);
  }
  if (check.verdict === "illegal" || !converged || errors.length > 0) {
    // Keep the evidence: member logs next to the results.
    for (const inc of cluster.members.values()) errors.push(`log ${inc.endpoint.name}: ${cluster.log(inc, 400).replace(/\s+/g, " ")}`);
  }
  const counts = workload?.counts ?? { ops: 0, ok: 0, fail: 0, unknown: 0 };
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    impl: o.impl,
    nemesis: o.nemesis.name,
    members: o.size,
    ...counts,
    verdict,
    checkDetail: formatKvResult(check),
    converged,
    hashes,
    hashRevision: revision,
    heals,
    disruptedHeals: heals.filter((h) => h.leaderTermBefore !== null && h.leaderTermAfter !== null && h.leaderTermAfter > h.leaderTermBefore).length,
    events,
    errors,
    durationMs: Date.now() - started,
  };
}
