/**
 * Issue 12, bug 1: a single-voter leader must not send appends before its new term is durable.
 * A single voter wins its election inside one Ready. If a proposal lands between the tick and
 * that Ready, the Ready carries [noop@T+1, P@T+1] for the learner; if the appends leave before
 * the fsync and the leader crashes, it restarts in term T, wins T+1 again and writes Q where the
 * learner holds P: two different entries at one (index, term). The simulator's checker catches
 * that as a log-matching violation.
 */
import { strict as assert } from "node:assert";
import { maySendBeforePersist } from "../../node-runtime/raft";
import { SafetyViolation, Simulation, type SimMember, type SimOptions } from "./sim/cluster";
import { runSeed } from "./sim/scenario";

const OPTS: SimOptions = {
  electionTick: 10,
  heartbeatTick: 1,
  preVote: false,
  checkQuorum: false,
  maxSizePerMsg: 4096,
  maxInflightMsgs: 8,
  keepEntries: 0,
  dropRate: 0,
  dupRate: 0,
  maxDelay: 1,
  midReadyCrashRate: 0,
};

function until(sim: Simulation, what: string, cond: () => boolean, max = 2000): void {
  for (let i = 0; i < max; i++) {
    if (cond()) return;
    sim.step(i % 4 === 0);
  }
  assert.fail(`${what} did not happen`);
}

describe("raft: a single voter's appends wait for its new term to be durable", () => {
  it("a crash between winning the election and the fsync leaves no conflicting entry on the learner", () => {
    const sim = new Simulation(7, OPTS, 1);
    sim.setFaults(false);
    const leader = sim.members.get(1)!;
    const isLeader = (m: SimMember) => m.alive && m.raft!.status().role === "leader";
    until(sim, "the single voter to lead", () => isLeader(leader));
    const learner = sim.addMember();
    assert.ok(sim.confChange({ type: "addLearner", nodeId: learner.id, context: new Uint8Array(0) }));
    sim.propose(leader);
    until(sim, "the learner to catch up", () => learner.smIndex > 0 && learner.smIndex === leader.smIndex);

    // Restart the voter; in the tick that elects it, a client proposes, and the voter crashes
    // in the middle of the Ready that carries its new term.
    sim.crash(leader);
    sim.restart(leader);
    const termBefore = leader.disk.hardState.term;
    let crashed = false;
    sim.afterTick = () => {
      if (!crashed && isLeader(leader)) {
        crashed = true;
        sim.propose(leader);
        sim.crashInNextReady.add(leader.id);
      }
    };
    until(sim, "the crash during the election Ready", () => crashed && !leader.alive);
    sim.afterTick = undefined;
    assert.equal(leader.disk.hardState.term, termBefore, "the new term never reached the disk");

    // The voter takes a moment to come back (whatever it sent before the crash arrives
    // meanwhile), in the old term; it wins the same term again and takes new writes.
    for (let i = 0; i < 8; i++) sim.step(false);
    sim.restart(leader);
    until(sim, "the voter to lead again", () => isLeader(leader));
    for (let i = 0; i < 3; i++) sim.propose(leader);
    until(sim, "the learner to apply the new writes", () => learner.smIndex === leader.smIndex && leader.smIndex > 0, 4000);
    for (let i = 0; i < 200; i++) sim.step(i % 4 === 0);
  });

  it("states the rule: no early send while the Ready's term or vote is not on disk", () => {
    const base = { entries: [], committedEntries: [], messages: [], readStates: [] };
    assert.equal(maySendBeforePersist(base, { term: 3, vote: 1 }), true);
    assert.equal(maySendBeforePersist({ ...base, hardState: { term: 3, vote: 1, commit: 9 } }, { term: 3, vote: 1 }), true);
    assert.equal(maySendBeforePersist({ ...base, hardState: { term: 4, vote: 1, commit: 9 } }, { term: 3, vote: 1 }), false);
    assert.equal(maySendBeforePersist({ ...base, hardState: { term: 3, vote: 2, commit: 9 } }, { term: 3, vote: 0 }), false);
  });

  it("single-voter seeds with proposals between tick and Ready and mid-Ready crashes stay safe", function () {
    this.timeout(120_000);
    const failures: string[] = [];
    let ran = 0;
    for (let seed = 1; ran < 60 && seed < 5000; seed++) {
      try {
        const r = runSeed(seed, { size: 1, midReadyCrashRate: 0.02, proposeAfterTickRate: 0.8 });
        ran++;
        assert.ok(r.steps > 0);
      } catch (e) {
        if (!(e instanceof SafetyViolation)) throw e;
        failures.push(e.message.split("\n")[0]!);
        ran++;
      }
    }
    assert.deepEqual(failures, []);
  });
});
