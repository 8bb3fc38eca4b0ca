/**
 * One seeded simulator run: derive a cluster and fault profile from the seed, run chaos
 * (partitions, crashes, restarts, conf changes, snapshots, transfers, reads) with safety checks
 * after every step, then heal and check liveness.
 */
import { type NodeId } from "../../../node-runtime/raft/types";
import { Rng } from "./rng";
import { SafetyViolation, Simulation, type SimMember, type SimOptions } from "./cluster";

export interface SeedResult {
  seed: number;
  size: number;
  applied: number;
  reads: number;
  steps: number;
}

const TICK_EVERY = 4;

/** Fixes some of a seed's choices (e.g. a single voter with many mid-Ready crashes). */
export type SeedOverrides = Partial<SimOptions> & { size?: number };

export function optionsFor(seed: number, overrides: SeedOverrides = {}): { size: number; opts: SimOptions; chaosSteps: number } {
  const { size: fixedSize, ...fixedOpts } = overrides;
  const r = new Rng(seed ^ 0x5eed);
  const drawn = r.int(1, 7);
  const size = fixedSize ?? drawn;
  const opts: SimOptions = {
    electionTick: 10,
    heartbeatTick: r.pick([1, 2, 3]),
    preVote: r.chance(0.75),
    checkQuorum: r.chance(0.6),
    maxSizePerMsg: r.pick([32, 256, 4096]),
    maxInflightMsgs: r.int(1, 8),
    keepEntries: r.pick([0, 0, 3, 20]),
    dropRate: r.pick([0, 0.02, 0.1, 0.2]),
    dupRate: r.pick([0, 0.05, 0.1]),
    maxDelay: r.pick([1, 3, 8, 16]),
    midReadyCrashRate: r.pick([0, 0.001, 0.005]),
    proposeAfterTickRate: r.pick([0, 0.3, 0.8]),
  };
  return { size, opts: { ...opts, ...fixedOpts }, chaosSteps: r.int(1500, 3000) };
}

function randomPartition(sim: Simulation): void {
  const r = sim.rng;
  const ids = r.shuffle([...sim.members.keys()]);
  switch (r.int(0, 3)) {
    case 0: {
      const cut = r.int(1, Math.max(1, ids.length - 1));
      sim.partition([ids.slice(0, cut), ids.slice(cut)]);
      break;
    }
    case 1: {
      const leader = sim.leaders()[0];
      const victim = leader?.id ?? ids[0];
      sim.partition([[victim], ids.filter((i) => i !== victim)]);
      break;
    }
    case 2: {
      // Asymmetric: some links work in one direction only.
      sim.heal();
      for (let k = 0; k < ids.length; k++) {
        const a = r.pick(ids);
        const b = r.pick(ids);
        if (a !== b) sim.block(a, b);
      }
      sim.note("asymmetric partition");
      break;
    }
    default: {
      const third = Math.max(1, Math.floor(ids.length / 3));
      sim.partition([ids.slice(0, third), ids.slice(third, 2 * third), ids.slice(2 * third)]);
      break;
    }
  }
}

function randomConfChange(sim: Simulation): void {
  const r = sim.rng;
  const leader = sim.leaders()[0];
  if (leader === undefined) return;
  const st = leader.raft!.status();
  const members = st.voters.length + st.learners.length;
  const empty = new Uint8Array(0);
  const choice = r.int(0, 3);
  if (choice === 0 && members < 7) {
    const m = sim.addMember();
    if (!sim.confChange({ type: r.chance(0.7) ? "addLearner" : "addNode", nodeId: m.id, context: empty })) {
      sim.members.delete(m.id);
    }
  } else if (choice === 1 && st.learners.length > 0) {
    sim.confChange({ type: "addNode", nodeId: r.pick(st.learners), context: empty });
  } else if (choice === 2 && members > 1) {
    sim.confChange({ type: "removeNode", nodeId: r.pick([...st.voters, ...st.learners]), context: empty });
  } else if (choice === 3 && st.voters.length > 1) {
    leader.raft!.transferLeadership(r.pick(st.voters));
    sim.note(`transfer from ${leader.id}`);
  }
}

/** Run `ticks` ticks with the given actions each time unit. */
function runTicks(sim: Simulation, ticks: number, each: (sim: Simulation) => void, until?: () => boolean): boolean {
  for (let t = 0; t < ticks * TICK_EVERY; t++) {
    each(sim);
    sim.step(t % TICK_EVERY === 0);
    if (until?.()) return true;
  }
  return false;
}

function clientLoad(sim: Simulation): void {
  const alive = sim.alive();
  if (alive.length === 0) return;
  if (sim.rng.chance(0.3)) sim.propose(sim.rng.pick(alive));
  if (sim.rng.chance(0.05)) sim.read(sim.rng.pick(alive));
}

/** 6 members split 3|3: nothing may commit. 7 split 4|3: the majority side keeps committing. */
function splitBrainPhase(sim: Simulation, size: number): void {
  if (size !== 6 && size !== 7) return;
  const ids = sim.rng.shuffle([...sim.members.keys()]);
  const half = size === 6 ? 3 : 4;
  const big = ids.slice(0, half);
  sim.setFaults(false);
  sim.dropInFlight();
  sim.partition([big, ids.slice(half)]);
  const before = sim.maxCommit();
  if (size === 6) {
    // Entries already on a quorum before the split may still be learned as committed; nothing
    // proposed during the split, and no entry of a later term, may commit.
    const firstSeq = sim.proposalsMade() + 1;
    const termAtSplit = Math.max(...sim.alive().map((m) => m.raft!.status().term));
    runTicks(sim, 150, clientLoad);
    for (const [key, index] of sim.acked) {
      if (Number(key.slice(1)) >= firstSeq) sim.fail(`3|3 split committed proposal ${key} at ${index}`);
    }
    if (sim.maxAppliedTerm() > termAtSplit) sim.fail("3|3 split committed an entry of a new term");
  } else {
    const progressed = runTicks(sim, 400, clientLoad, () => {
      const l = sim.leaders().find((m) => big.includes(m.id));
      return l !== undefined && l.raft!.status().commit > before;
    });
    if (!progressed) sim.fail("4|3 split: the 4-member side did not commit");
  }
  sim.heal();
  sim.setFaults(true);
}

function chaos(sim: Simulation, steps: number): void {
  const r = sim.rng;
  for (let t = 0; t < steps; t++) {
    clientLoad(sim);
    if (r.chance(0.004)) {
      const alive = sim.alive();
      if (alive.length > 0) sim.crash(r.pick(alive));
    }
    for (const m of sim.members.values()) if (!m.alive && r.chance(0.01)) sim.restart(m);
    if (r.chance(0.004)) randomPartition(sim);
    if (r.chance(0.006)) sim.heal();
    if (r.chance(0.006)) randomConfChange(sim);
    if (r.chance(0.004)) {
      const alive = sim.alive();
      if (alive.length > 0) sim.compact(r.pick(alive));
    }
    sim.step(t % TICK_EVERY === 0);
  }
}

/** After healing: a leader within a bounded time, then every member of its configuration applies everything. */
function liveness(sim: Simulation): void {
  sim.heal();
  sim.setFaults(false);
  for (const m of sim.members.values()) if (!m.alive) sim.restart(m);
  const leaderBound = 60;
  const hasLeader = () => {
    const l = sim.leaders()[0];
    return l !== undefined && l.raft!.status().voters.includes(l.id);
  };
  if (!runTicks(sim, leaderBound * 10, () => undefined, hasLeader)) sim.fail(`no leader within ${leaderBound} election timeouts after healing`);
  let leader = sim.leaders()[0];
  let conf = new Set<NodeId>();
  const trackConf = () => {
    // Members outside the leader's configuration are shut down, as a server would on removal.
    const l = sim.leaders()[0];
    if (l === undefined) return;
    const st = l.raft!.status();
    conf = new Set([...st.voters, ...st.learners]);
    for (const m of sim.members.values()) {
      if (!conf.has(m.id) && m.alive) sim.crash(m);
      else if (conf.has(m.id) && !m.alive) sim.restart(m);
    }
  };
  trackConf();
  // A final write proves the cluster is live and pins what everyone must reach.
  let target = 0;
  let targetTerm = -1;
  const converged = runTicks(
    sim,
    800,
    () => {
      trackConf();
      leader = sim.leaders()[0];
      // Re-propose if the leader changed since: the earlier attempt may have been overwritten.
      if (leader !== undefined && !sim.acked.has("final") && leader.raft!.status().term !== targetTerm) {
        try {
          const p = leader.raft!.propose(new TextEncoder().encode("final"));
          if (p !== undefined) {
            target = p.index;
            targetTerm = p.term;
          }
        } catch {
          // leader changing; retry next time unit
        }
      }
    },
    () => {
      if (target === 0 || !sim.acked.has("final")) return false;
      const need = Math.max(sim.acked.get("final")!, ...sim.acked.values());
      return [...conf].every((id) => {
        const m = sim.members.get(id) as SimMember;
        return m.alive && m.smIndex >= need;
      });
    },
  );
  if (!converged) {
    const states = [...conf].map((id) => {
      const m = sim.members.get(id)!;
      const s = m.raft?.status();
      return `${id}:${s?.role}/t${s?.term}/c${s?.commit}/a${m.smIndex}`;
    });
    sim.fail(`members did not converge after healing: ${states.join(" ")} maxApplied=${sim.maxApplied} target=${target} final=${sim.acked.get("final")}`);
  }
}

export function runSeed(seed: number, overrides: SeedOverrides = {}): SeedResult {
  const { size, opts, chaosSteps } = optionsFor(seed, overrides);
  const sim = new Simulation(seed, opts, size);
  try {
    // Let the cluster elect and settle, then the split-brain checks, then chaos.
    sim.setFaults(false);
    runTicks(sim, 60, clientLoad);
    sim.setFaults(true);
    splitBrainPhase(sim, size);
    chaos(sim, chaosSteps);
    liveness(sim);
  } catch (e) {
    if (e instanceof Error && !(e instanceof SafetyViolation)) {
      e.message = `seed ${seed} step ${sim.now}: ${e.message}`;
    }
    if (e instanceof Error) (e as Error & { simLog?: string[] }).simLog = sim.log;
    throw e;
  }
  return { seed, size, applied: sim.maxApplied, reads: sim.readsServed, steps: sim.now };
}
