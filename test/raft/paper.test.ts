/**
 * Unit tests named after the rules of the Raft paper (Ongaro & Ousterhout, §5) and the thesis.
 * Each sets up the smallest situation where the rule matters and checks the behaviour.
 */
import assert from "node:assert/strict";
import { RaftNode } from "../../node-runtime/raft/raft";
import { EntryType, type Message } from "../../node-runtime/raft/types";
import { bytes, cfg, Cluster, drain } from "./harness";

function electedSingle(): RaftNode {
  const n = new RaftNode(cfg(1), { voters: [1] });
  for (let i = 0; i < 20 && n.status().role !== "leader"; i++) n.tick();
  drain(n);
  return n;
}

describe("raft paper §5.1: terms", () => {
  it("FollowerUpdateTermFromMessage: a higher term in any message is adopted and the member becomes follower", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    const leader = c.node(1);
    leader.step({ type: "app", from: 2, to: 1, term: 99, index: 0, logTerm: 0, entries: [], commit: 0 });
    assert.equal(leader.status().term, 99);
    assert.equal(leader.status().role, "follower");
    assert.equal(leader.status().lead, 2);
  });

  it("RejectStaleTermMessage: a message of an older term is ignored", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    const f = c.node(2);
    const before = f.status();
    f.step({ type: "app", from: 3, to: 2, term: before.term - 1, index: 0, logTerm: 0, entries: [{ term: 1, index: 99, type: EntryType.Normal, data: bytes("x") }], commit: 99 });
    assert.equal(f.status().commit, before.commit);
    assert.equal(f.status().lastIndex, before.lastIndex);
  });
});

describe("raft paper §5.2: leader election", () => {
  it("StartAsFollower: members start as followers", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    assert.equal(n.status().role, "follower");
  });

  it("LeaderBcastBeat: a leader sends heartbeats to every follower every heartbeatTick", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.node(1).tick();
    const hb = drain(c.node(1)).filter((m) => m.type === "heartbeat");
    assert.deepEqual(hb.map((m) => m.to).sort(), [2, 3]);
  });

  it("FollowerStartElection: after an election timeout a follower becomes candidate, increments its term, votes for itself and asks every voter", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    const term = n.status().term;
    for (let i = 0; i < 20 && n.status().role === "follower"; i++) n.tick();
    const st = n.status();
    assert.equal(st.role, "candidate");
    assert.equal(st.term, term + 1);
    assert.equal(st.vote, 1);
    const rd = n.ready();
    assert.deepEqual(rd.hardState, { term: term + 1, vote: 1, commit: st.commit }, "the self-vote is persisted with the requests");
    assert.deepEqual(rd.messages.filter((m) => m.type === "vote").map((m) => m.to).sort(), [2, 3]);
  });

  it("ElectionTimeoutRandomized: timeouts fall in [electionTick, 2*electionTick) and differ", () => {
    const seen = new Set<number>();
    for (let id = 1; id <= 30; id++) {
      const n = new RaftNode(cfg(id), { voters: [id, 1000] });
      let t = 0;
      while (n.status().role === "follower") {
        n.tick();
        t++;
      }
      assert.ok(t >= 10 && t < 20, `timeout ${t}`);
      seen.add(t);
    }
    assert.ok(seen.size > 3, "timeouts are spread");
  });

  it("CandidateWinsWithMajority: a candidate with a majority of votes becomes leader and appends an entry of its term", () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    c.filter = (m) => m.to !== 4 && m.to !== 5 && m.from !== 4 && m.from !== 5;
    c.elect(1);
    const st = c.node(1).status();
    assert.equal(st.role, "leader");
    assert.equal(c.node(1).logTerm(st.lastIndex), st.term);
  });

  it("CandidateLosesWithoutMajority: with only 2 of 5 votes a candidate does not become leader", () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    c.filter = (m) => [1, 2].includes(m.from) && [1, 2].includes(m.to);
    for (let i = 0; i < 200; i++) {
      c.tick(1);
      c.settle();
    }
    assert.notEqual(c.node(1).status().role, "leader");
  });

  it("VoteOncePerTerm: a member grants at most one vote per term (and persists it before answering)", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    drain(n);
    const term = n.status().term + 1;
    n.step({ type: "vote", from: 2, to: 1, term, index: 10, logTerm: 5, force: false });
    n.step({ type: "vote", from: 3, to: 1, term, index: 10, logTerm: 5, force: false });
    const rd = n.ready();
    assert.equal(rd.hardState?.vote, 2);
    const resp = rd.messages.flatMap((m: Message) => (m.type === "voteResp" ? [[m.to, m.reject]] : []));
    assert.deepEqual(resp, [[2, false], [3, true]]);
  });

  it("CandidateFallbackToFollower: a candidate that hears an append from a leader of its term becomes follower", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    for (let i = 0; i < 20 && n.status().role === "follower"; i++) n.tick();
    const term = n.status().term;
    n.step({ type: "heartbeat", from: 2, to: 1, term, commit: 0, readSeq: 0 });
    assert.equal(n.status().role, "follower");
    assert.equal(n.status().lead, 2);
  });
});

describe("raft paper §5.3: log replication", () => {
  it("LeaderCommitEntry: an entry is committed once a majority stored it, and applied everywhere", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.node(1).propose(bytes("a"));
    c.settle();
    c.tick(1);
    c.settle();
    for (const id of [1, 2, 3]) assert.deepEqual(c.userData(id), ["a"]);
  });

  it("LeaderAcknowledgeCommit: with a minority of acknowledgements nothing commits", () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    c.elect(1);
    c.filter = (m) => !(m.type === "appResp" && m.from !== 2);
    const commit = c.node(1).status().commit;
    c.node(1).propose(bytes("a"));
    c.settle();
    assert.equal(c.node(1).status().commit, commit);
  });

  it("LeaderBatchesProposals: many proposals between Readies go out as one append per follower", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    for (let i = 0; i < 100; i++) c.node(1).propose(bytes(`p${i}`));
    const apps = drain(c.node(1)).filter((m) => m.type === "app");
    assert.equal(apps.length, 2);
    for (const a of apps) assert.equal(a.type === "app" && a.entries.length, 100);
  });

  it("MaxSizePerMsg: appends are split by byte size and bounded by the inflight window", () => {
    const c = new Cluster([1, 2], { maxSizePerMsg: 100, maxInflightMsgs: 3 });
    c.elect(1);
    for (let i = 0; i < 50; i++) c.node(1).propose(new Uint8Array(60));
    const apps = drain(c.node(1)).filter((m) => m.type === "app");
    assert.equal(apps.length, 3, "window of 3");
    for (const a of apps) assert.equal(a.type === "app" && a.entries.length, 1);
    // Those three were drained here, never delivered: heartbeats must recover the window.
    for (let i = 0; i < 5; i++) {
      c.tick(1);
      c.settle();
    }
    assert.equal(c.node(2).status().lastIndex, c.node(1).status().lastIndex);
  });

  it("FollowerCheckMsgApp: a follower rejects an append whose previous entry it lacks, with a hint", () => {
    const n = new RaftNode(cfg(2), { voters: [1, 2, 3] });
    drain(n);
    n.step({ type: "app", from: 1, to: 2, term: 2, index: 10, logTerm: 2, entries: [], commit: 0 });
    const resp = drain(n).find((m) => m.type === "appResp");
    assert.ok(resp?.type === "appResp" && resp.reject);
    assert.equal(resp.rejectHint, 3, "hint = our last index");
  });

  it("FollowerAppendEntries: conflicting uncommitted entries are replaced by the leader's", () => {
    const n = new RaftNode(cfg(2), { voters: [1, 2, 3] });
    drain(n);
    const e = (term: number, index: number, s: string) => ({ term, index, type: EntryType.Normal, data: bytes(s) });
    n.step({ type: "app", from: 1, to: 2, term: 2, index: 3, logTerm: 1, entries: [e(2, 4, "a"), e(2, 5, "b")], commit: 3 });
    n.step({ type: "app", from: 3, to: 2, term: 3, index: 4, logTerm: 2, entries: [e(3, 5, "c")], commit: 4 });
    assert.equal(n.logTerm(5), 3);
    assert.equal(n.logTerm(4), 2);
    const rd = n.ready();
    assert.equal(rd.entries[0].index, 4, "storage rewrites from the first unpersisted index");
    assert.deepEqual(rd.entries.map((x) => x.term), [2, 3]);
  });

  it("LeaderSyncFollowerLog: a leader brings a divergent follower's log in line (fast back-off)", () => {
    const c = new Cluster([1, 2, 3]);
    c.elect(1);
    c.isolate(3);
    for (let i = 0; i < 20; i++) c.node(1).propose(bytes(`a${i}`));
    c.settle();
    c.heal();
    c.tick(1);
    c.settle();
    c.tick(1);
    c.settle();
    assert.equal(c.node(3).status().commit, c.node(1).status().commit);
    const rejects = c.sent.filter((m) => m.type === "appResp" && m.reject && m.from === 3).length;
    assert.ok(rejects <= 2, `back-off in few round trips (${rejects})`);
  });
});

describe("raft paper §5.4: safety", () => {
  it("VoterRejectsLessUpToDateCandidate (§5.4.1)", () => {
    const n = new RaftNode(cfg(1), { voters: [1, 2, 3] });
    drain(n);
    n.step({ type: "vote", from: 2, to: 1, term: 5, index: 1, logTerm: 1, force: false });
    const r = drain(n).find((m) => m.type === "voteResp");
    assert.ok(r?.type === "voteResp" && r.reject);
  });

  it("LeaderOnlyCommitsCurrentTermEntries (§5.4.2, figure 8): an old-term entry on a majority is not committed by counting", () => {
    // Leader 1 of term 3 holds an uncommitted entry of term 2 at index 4; follower 2 acknowledges it.
    const leader = RaftNode.restart(cfg(1), {
      hardState: { term: 2, vote: 1, commit: 3 },
      entries: [
        ...[1, 2, 3].map((i) => ({ term: 1, index: i, type: EntryType.ConfChange, data: confData(i) })),
        { term: 2, index: 4, type: EntryType.Normal, data: bytes("old") },
      ],
    });
    for (let i = 0; i < 30 && leader.status().role !== "leader"; i++) {
      leader.tick();
      for (const m of drain(leader)) if (m.type === "vote") leader.step({ type: "voteResp", from: m.to, to: 1, term: m.term, reject: false });
    }
    assert.equal(leader.status().role, "leader");
    drain(leader);
    const term = leader.status().term;
    // Follower 2 acknowledges only index 4 (the old-term entry), not the new no-op at 5.
    leader.step({ type: "appResp", from: 2, to: 1, term, index: 4, reject: false, rejectHint: 0, logTerm: 0 });
    drain(leader);
    assert.equal(leader.status().commit, 3, "index 4 is on a majority but not of this term");
    leader.step({ type: "appResp", from: 2, to: 1, term, index: 5, reject: false, rejectHint: 0, logTerm: 0 });
    drain(leader);
    assert.equal(leader.status().commit, 5, "committing the term-3 entry commits index 4 with it");
  });
});

import { encodeConfChange } from "../../node-runtime/raft/codec";
function confData(id: number): Uint8Array {
  return encodeConfChange({ type: "addNode", nodeId: id, context: new Uint8Array(0) });
}

export { electedSingle };
