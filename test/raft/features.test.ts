/** Thesis-level features: pre-vote, check-quorum, ReadIndex, leadership transfer, membership, compaction. */
import assert from "node:assert/strict";
import { ConfChangeInFlightError, InvalidConfChangeError, NoLeaderError, ProposalDroppedError } from "../../node-runtime/raft/errors";
import { RaftNode } from "../../node-runtime/raft/raft";
import { bytes, cfg, Cluster, drain } from "./harness";

const none = new Uint8Array(0);

function run(c: Cluster, ticks: number, ids: number[]): void {
  for (let i = 0; i < ticks; i++) {
    for (const id of ids) c.tick(id);
    c.settle();
  }
}

describe("raft thesis §9.6: pre-vote", () => {
  it("PreVoteRejoinDoesNotDisrupt: a member partitioned away rejoins without raising the term", () => {
    const c = new Cluster([1, 2, 3], { preVote: true });
    c.elect(1);
    const term = c.node(1).status().term;
    c.isolate(3);
    run(c, 100, [1, 2, 3]);
    assert.equal(c.node(3).status().term, term, "pre-votes do not bump the term");
    c.heal();
    run(c, 30, [1, 2, 3]);
    assert.equal(c.node(1).status().role, "leader");
    assert.equal(c.node(1).status().term, term);
  });

  it("WithoutPreVoteRejoinDisrupts: the same scenario without pre-vote forces a new term (the control)", () => {
    const c = new Cluster([1, 2, 3], { preVote: false });
    c.elect(1);
    const term = c.node(1).status().term;
    c.isolate(3);
    run(c, 100, [1, 2, 3]);
    c.heal();
    run(c, 30, [1, 2, 3]);
    assert.ok(c.node(1).status().term > term);
  });
});

describe("raft thesis §6.2: check-quorum", () => {
  it("LeaderStepsDownWithoutQuorum: a leader cut off from a quorum steps down within an election timeout", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: true });
    c.elect(1);
    c.isolate(1);
    run(c, 21, [1]);
    assert.equal(c.node(1).status().role, "follower");
    assert.equal(c.node(1).status().lead, 0);
  });

  it("LeaderStaysWithQuorum", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: true });
    c.elect(1);
    run(c, 50, [1, 2, 3]);
    assert.equal(c.node(1).status().role, "leader");
  });
});

describe("raft thesis §6.4: ReadIndex", () => {
  it("ReadIndexNeedsHeartbeatQuorum: the read point is released only after a quorum echoes the heartbeat", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.filter = (m) => m.type !== "heartbeatResp";
    c.node(1).readIndex(bytes("r1"));
    c.settle();
    assert.deepEqual(c.reads.get(1), []);
    c.heal();
    c.tick(1);
    c.settle();
    assert.deepEqual(c.reads.get(1), [{ index: c.node(1).status().commit, ctx: "r1" }]);
  });

  it("ReadIndexForwardedByFollower: a follower's read is answered by the leader", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.node(1).propose(bytes("w"));
    c.settle();
    c.node(3).readIndex(bytes("r2"));
    c.settle();
    const r = c.reads.get(3)!;
    assert.equal(r.length, 1);
    assert.equal(r[0].ctx, "r2");
    assert.ok(r[0].index >= c.node(1).status().commit - 0 && r[0].index > 0);
  });

  it("ReadIndexReforwarded: a follower that is not the leader passes a forwarded read on and the answer reaches the requester", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.node(1).propose(bytes("w"));
    c.settle();
    // Member 3 still believes 2 leads, so its read request reaches 2, which passes it on to 1.
    c.node(2).step({ type: "readIndex", from: 3, to: 2, term: 0, ctx: bytes("r4") });
    c.settle();
    assert.deepEqual(c.reads.get(2), [], "the forwarding member must not take the answer");
    assert.deepEqual(c.reads.get(3)!.map((r) => r.ctx), ["r4"]);
  });

  it("ReadIndexWaitsForCommitInTerm: a new leader answers reads only after committing an entry of its term", () => {
    const c = new Cluster([1, 2, 3]);
    c.filter = (m) => m.type !== "appResp";
    c.elect(1);
    c.node(1).readIndex(bytes("r3"));
    c.settle();
    assert.deepEqual(c.reads.get(1), []);
    c.heal();
    c.tick(1);
    c.settle();
    c.tick(1);
    c.settle();
    assert.equal(c.reads.get(1)!.length, 1);
  });

  it("ReadIndexWithoutLeader throws NoLeaderError", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    assert.throws(() => n.readIndex(bytes("x")), NoLeaderError);
  });
});

describe("raft thesis §3.10: leadership transfer", () => {
  it("TransferToUpToDateFollower: the target campaigns at once on timeoutNow and wins", () => {
    const c = new Cluster([1, 2, 3], { preVote: true, checkQuorum: true });
    c.elect(1);
    c.node(1).transferLeadership(2);
    c.settle();
    assert.equal(c.node(2).status().role, "leader");
    assert.equal(c.node(1).status().lead, 2);
  });

  it("ProposalsDroppedDuringTransfer", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.filter = (m) => m.to !== 3;
    c.node(1).propose(bytes("x"));
    c.settle();
    c.node(1).transferLeadership(3);
    assert.throws(() => c.node(1).propose(bytes("y")), ProposalDroppedError);
  });
});

describe("raft proposals", () => {
  it("ProposeWithoutLeader throws NoLeaderError", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    assert.throws(() => n.propose(bytes("x")), NoLeaderError);
  });

  it("FollowerForwardsProposals, batched in one message", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    for (let i = 0; i < 10; i++) assert.equal(c.node(2).propose(bytes(`f${i}`)), undefined);
    const props = drain(c.node(2)).filter((m) => m.type === "prop");
    assert.equal(props.length, 1);
    assert.equal(props[0].type === "prop" && props[0].entries.length, 10);
    for (const m of props) c.node(1).step(m);
    c.settle();
    c.tick(1);
    c.settle();
    assert.equal(c.userData(3).length, 10);
  });

  it("ForwardingDisabled: a follower refuses with ProposalDroppedError", () => {
    const c = new Cluster([1, 2, 3], { forwardProposals: false });
    c.elect(1);
    assert.throws(() => c.node(2).propose(bytes("x")), ProposalDroppedError);
  });

  it("MaxUncommittedSize: the leader refuses proposals beyond the uncommitted byte budget", () => {
    const c = new Cluster([1, 2, 3], { maxUncommittedEntriesSize: 100 });
    c.elect(1);
    c.filter = () => false;
    c.node(1).propose(new Uint8Array(60));
    assert.throws(() => c.node(1).propose(new Uint8Array(60)), ProposalDroppedError);
  });
});

describe("raft thesis §4: membership changes", () => {
  it("LearnerDoesNotVoteOrCampaign but receives the log; promotion makes it a voter", () => {
    const c = new Cluster([1, 2, 3], {}, [4]);
    c.elect(1);
    c.node(1).propose(bytes("a"));
    run(c, 30, [1, 2, 3, 4]);
    assert.deepEqual(c.userData(4), ["a"]);
    assert.equal(c.node(4).status().role, "follower");
    assert.deepEqual(c.node(1).status().learners, [4]);
    c.node(1).proposeConfChange({ type: "addNode", nodeId: 4, context: none });
    run(c, 3, [1]);
    assert.deepEqual(c.node(4).status().voters, [1, 2, 3, 4]);
    assert.deepEqual(c.node(4).status().learners, []);
  });

  it("OneConfChangeAtATime: a second change before the first commits is refused", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.filter = () => false;
    c.node(1).proposeConfChange({ type: "addLearner", nodeId: 9, context: none });
    assert.throws(() => c.node(1).proposeConfChange({ type: "addLearner", nodeId: 10, context: none }), ConfChangeInFlightError);
  });

  it("NewLeaderMustCommitInTermBeforeConfChange", () => {
    const c = new Cluster([1, 2, 3]);
    c.filter = (m) => m.type !== "appResp";
    c.elect(1);
    assert.throws(() => c.node(1).proposeConfChange({ type: "addLearner", nodeId: 9, context: none }), ConfChangeInFlightError);
  });

  it("InvalidConfChange: removing the last voter or demoting a voter is refused", () => {
    const c = new Cluster([1]);
    c.elect(1);
    assert.throws(() => c.node(1).proposeConfChange({ type: "removeNode", nodeId: 1, context: none }), InvalidConfChangeError);
    assert.throws(() => c.node(1).proposeConfChange({ type: "addLearner", nodeId: 1, context: none }), InvalidConfChangeError);
  });

  it("RemoveLeader: the leader steps down once its removal commits and the rest elect a new leader", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.node(1).proposeConfChange({ type: "removeNode", nodeId: 1, context: none });
    run(c, 5, [1, 2, 3]);
    assert.notEqual(c.node(1).status().role, "leader");
    run(c, 40, [2, 3]);
    const leaders = [2, 3].filter((id) => c.node(id).status().role === "leader");
    assert.equal(leaders.length, 1);
    assert.deepEqual(c.node(leaders[0]).status().voters, [2, 3]);
    c.node(leaders[0]).propose(bytes("after"));
    run(c, 3, [2, 3]);
    assert.deepEqual(c.userData(2), ["after"]);
  });

  it("ApplyConfChangeReportsConfiguration", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2] });
    const rd = n.ready();
    assert.equal(rd.committedEntries.length, 2, "founding members' conf changes are committed entries");
    let cs = { voters: [] as number[], learners: [] as number[] };
    for (const e of rd.committedEntries) cs = n.applyConfChange(decodeCC(e.data));
    assert.deepEqual(cs, { voters: [1, 2], learners: [] });
  });
});

describe("raft log compaction and InstallSnapshot", () => {
  it("LaggingFollowerGetsSnapshot, then catches up; restarting from persisted state works", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.isolate(3);
    for (let i = 0; i < 10; i++) c.node(1).propose(bytes(`s${i}`));
    run(c, 2, [1, 2]);
    const st = c.node(1).status();
    c.node(1).compact({ meta: { index: st.applied, term: c.node(1).logTerm(st.applied)!, confState: { voters: [1, 2, 3], learners: [] } }, data: bytes("SM") });
    c.heal();
    run(c, 3, [1, 2, 3]);
    assert.ok(c.sent.some((m) => m.type === "snap" && m.to === 3));
    assert.equal(c.node(3).status().commit, c.node(1).status().commit);
    const restarted = RaftNode.restart(cfg(1), {
      hardState: { term: st.term, vote: 1, commit: st.commit },
      snapshot: { meta: { index: st.applied, term: c.node(1).logTerm(st.applied)!, confState: { voters: [1, 2, 3], learners: [] } }, data: bytes("SM") },
      entries: [],
    });
    assert.deepEqual(restarted.status().voters, [1, 2, 3]);
    assert.equal(restarted.status().commit, st.applied);
  });
});

import { decodeConfChange } from "../../node-runtime/raft/codec";
function decodeCC(b: Uint8Array) {
  return decodeConfChange(b);
}
