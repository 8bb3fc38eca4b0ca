import assert from "node:assert/strict";
import { readFrame } from "../../node-runtime/storage/wal-record";
import { MemberSimulation, runMemberSeed } from "./sim/member/cluster";

// A few hundred seeds per `npm test`; thousands: npm run sim:member -- --seeds 20000
const SEEDS = 300;

describe("whole-member simulator (real Member over simulated disk, network and clock)", () => {
  it(`passes seeds 1..${SEEDS}: safety after every event, acknowledged writes kept, linearizable history`, async function () {
    this.timeout(600_000);
    const failures: string[] = [];
    let acked = 0;
    let reads = 0;
    let crashes = 0;
    let cut = 0;
    let installs = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        const r = await runMemberSeed(seed);
        acked += r.writesAcked;
        reads += r.readsOk;
        crashes += r.crashes;
        cut += r.messagesCut;
        installs += r.snapshotsSent;
      } catch (e) {
        failures.push(`${(e as Error).message.split("\n")[0]} (replay: npm run sim:member -- --seed ${seed})`);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(acked > SEEDS * 10, `clients got writes acknowledged (${acked})`);
    assert.ok(reads > SEEDS * 10, `clients got linearizable reads (${reads})`);
    assert.ok(crashes > SEEDS / 2, `members crashed and recovered (${crashes})`);
    assert.ok(cut > SEEDS * 10, `partitions cut links (${cut} messages met a cut)`);
    assert.ok(installs > SEEDS / 10, `followers were sent snapshots (${installs})`);
  });

  it("a read waiting on a follower is answered by the leader's snapshot that covers its read index (installSnapshot wakes apply waiters)", async function () {
    this.timeout(60_000);
    // Every applied entry snapshotted, one entry kept behind it: a follower that missed a few
    // writes catches up by snapshot only. No faults, no clients: nothing is applied afterwards.
    const sim = new MemberSimulation(3, { size: 3, snapshotCount: 1, catchUpEntries: 1, leases: false, membership: false });
    sim.quiet();
    for (const n of sim.nodes) sim.start(n);
    await sim.world.run(3000, () => undefined, () => sim.settled());
    assert.ok(sim.settled(), "a leader serves all three");
    const leader = sim.nodes.find((n) => n.member?.isLeader())!;
    const follower = sim.nodes.find((n) => n !== leader)!;
    type Inside = { appliedIndex: number; lastSnapshotIndex: number; raft: { status(): { commit: number }; logTerm(i: number): number | undefined } };
    const inside = (n: typeof leader) => n.member as unknown as Inside;
    // Cut the follower off for less than an election timeout (it still knows the leader), write.
    sim.net.partition([[follower.id], sim.nodes.filter((n) => n !== follower).map((n) => n.id)]);
    for (let i = 0; i < 5; i++) void leader.member!.proposeKv({ type: "put", req: { key: Buffer.from("k"), value: Buffer.from(String(i)) } });
    const start = sim.world.now;
    await sim.world.run(start + 600, () => undefined, () => {
      const l = inside(leader);
      const behind = inside(follower).appliedIndex;
      // ... and has compacted its log past what the follower has: it must send the snapshot.
      return l.appliedIndex === l.raft.status().commit && l.lastSnapshotIndex === l.appliedIndex && l.appliedIndex > behind + 2 && l.raft.logTerm(behind + 1) === undefined;
    });
    const target = inside(leader).appliedIndex;
    assert.equal(inside(leader).lastSnapshotIndex, target, "the leader's newest snapshot is at its commit index");
    assert.equal(inside(leader).raft.logTerm(inside(follower).appliedIndex + 1), undefined, "and its log no longer has what the follower lacks");
    // Heal and read through the follower at once: its read index (the leader's commit) arrives
    // before the snapshot that brings it there (a snapshot takes longer than a message), and no
    // entry is applied after that snapshot.
    sim.net.snapshotDelayMs = 200;
    sim.net.heal();
    let read: "pending" | "ok" | string = "pending";
    follower.member!.readBarrier().then(
      () => (read = "ok"),
      (e: Error) => (read = e.message),
    );
    await sim.world.run(sim.world.now + 3000, () => undefined, () => read !== "pending");
    assert.equal(read, "ok", "the read through the follower was answered");
    assert.equal(inside(follower).lastSnapshotIndex, target, "the follower caught up by installing the leader's snapshot");
    assert.equal(inside(follower).appliedIndex, target, "and applied nothing after it");
    assert.equal(read, "ok", "the read waiting for that index was answered");
  });

  /**
   * Members m1-m3 running, m4's slot spare. The leader adds m4's URL as a learner under `oldId`
   * (m4 never starts, so every member lists it unnamed); then m1 is cut off, and m2 and m3 remove
   * `oldId` and add the URL again as `newId`. m1, behind, still lists `oldId` unnamed; it is also
   * the first member m4's --initial-cluster names.
   */
  async function staleListing(seed: number): Promise<{ sim: MemberSimulation; nodes: MemberSimulation["nodes"]; oldId: number; newId: number }> {
    const sim = new MemberSimulation(seed, { size: 3, leases: false });
    sim.quiet();
    const nodes = sim.nodes;
    const [m1, m2, m3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    for (const n of [m1, m2, m3]) sim.start(n);
    await sim.world.run(3000, () => undefined, () => sim.settled());
    assert.ok(sim.settled(), "a leader serves m1-m3");
    const url4 = "https://10.0.0.4:2380";
    const [oldId, newId] = [0x1a2b3c4d5e6f, 0x6f5e4d3c2b1a];
    // As a client would: asked again while refused (a new leader takes no conf change before its first entry applies).
    const change = async (among: typeof nodes, type: "addLearner" | "removeNode", id: number, done: (n: (typeof nodes)[0]) => boolean): Promise<void> => {
      for (let attempt = 0; attempt < 20 && !among.every(done); attempt++) {
        const leader = among.find((n) => n.member?.isLeader());
        let failed = leader === undefined;
        leader?.member!.proposeMemberChange(type, id, type === "addLearner" ? { name: "", peerURLs: [url4] } : undefined).catch(() => (failed = true));
        await sim.world.run(sim.world.now + 2000, () => undefined, () => failed || among.every(done));
        if (failed) await sim.world.run(sim.world.now + 200, () => undefined);
      }
      assert.ok(among.every(done), `${type} ${id} applied by ${among.map((n) => n.id).join(", ")}`);
    };
    await change([m1, m2, m3], "addLearner", oldId, (n) => n.member!.membership.has(oldId));
    sim.net.partition([[m1.id], [m2.id, m3.id]]);
    await sim.world.run(sim.world.now + 5000, () => undefined, () => [m2, m3].some((n) => n.member!.isLeader()));
    await change([m2, m3], "removeNode", oldId, (n) => n.member!.membership.isRemoved(oldId));
    await change([m2, m3], "addLearner", newId, (n) => n.member!.membership.has(newId));
    assert.ok(m1.member!.membership.has(oldId) && !m1.member!.membership.has(newId), "m1 still lists only the earlier addition");
    return { sim, nodes, oldId, newId };
  }
  const idOf = (n: MemberSimulation["nodes"][0]): number | undefined => n.member?.id;
  const join = (sim: MemberSimulation, n: MemberSimulation["nodes"][0], id: number): void => {
    (sim as unknown as { prepareJoin(n: unknown, id: number): void }).prepareJoin(n, id);
    sim.start(n);
  };

  it("a joiner takes the ID the most up-to-date members list, not an earlier, removed addition a member behind still lists at its URL (seed 4379)", async function () {
    this.timeout(60_000);
    const { sim, nodes, oldId, newId } = await staleListing(11);
    const m4 = nodes[3]!;
    assert.deepEqual(m4.cfg.initialCluster.map((m) => m.name), ["m1", "m2", "m3", "m4"], "m1, the member behind, is the first m4 asks");
    join(sim, m4, newId);
    await sim.world.run(sim.world.now + 5000, () => undefined, () => m4.started);
    assert.ok(m4.started, "m4 started");
    assert.notEqual(m4.member!.id, oldId, "not under the removed ID m1 listed");
    assert.equal(m4.member!.id, newId, "under the ID the cluster added it as");
    sim.net.heal();
    await sim.world.run(sim.world.now + 10_000, () => undefined, () => sim.settled());
    assert.ok(sim.settled(), "one leader serves all four, m4 included");
  });

  it("a joiner that could ask only a member behind the others, and took a removed ID, learns it was removed instead of waiting forever (seed 4379)", async function () {
    this.timeout(60_000);
    const { sim, nodes, oldId, newId } = await staleListing(12);
    const [m1, m2, m3, m4] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    // m4 reaches only m1 while it joins: nothing tells it that m1's answer is out of date.
    sim.net.partition([[m1.id, newId, oldId], [m2.id, m3.id]]);
    join(sim, m4, newId);
    await sim.world.run(sim.world.now + 5000, () => undefined, () => m4.started);
    assert.equal(idOf(m4), oldId, "m4 joined under the ID m1 listed");
    sim.net.heal();
    // Nobody contacts oldId: cut off from any leader, m4 asks the members, and they list it removed.
    await sim.world.run(sim.world.now + 10_000, () => undefined, () => m4.member === undefined && !m4.inCluster);
    assert.ok(m4.member === undefined && !m4.inCluster, "m4 stopped as removed (as main.ts exits on 'removed')");
    // Started again by its process manager with an empty data dir, it joins under newId.
    join(sim, m4, newId);
    await sim.world.run(sim.world.now + 10_000, () => undefined, () => sim.settled());
    assert.equal(idOf(m4), newId);
    assert.ok(sim.settled(), "one leader serves all four, m4 included");
  });

  it("the final read asks again when the member it asked loses power before answering (seed 14961)", async function () {
    this.timeout(60_000);
    const sim = new MemberSimulation(5, { size: 3, leases: false, membership: false });
    sim.quiet();
    for (const n of sim.nodes) sim.start(n);
    await sim.world.run(3000, () => undefined, () => sim.settled());
    assert.ok(sim.settled(), "a leader serves all three");
    const leader = sim.nodes.find((n) => n.member?.isLeader())!;
    // The read is sent to the leader at once (inside finalRead); the leader loses power before it answers.
    const read = sim.finalRead("a", 20_000);
    sim.crash(leader, "(directed)");
    assert.equal(await read, null, "answered (no write: no value) by the next leader");
  });

  // Seeds that failed on old code (put back locally, see the README): 18 with request IDs
  // restarting at 0 in each process (issue 12 bug 4), 197 with IDs continuing right after the
  // last logged one when the clock was set back across a restart (and 10189), 10025 with the
  // simulator giving a member that joined after the heal a faulty disk, 82 with a joiner that restarted before its
  // log named any member (empty registry: it never answered the leader), 143 with a lease
  // revoked 2 ms after a keep-alive (the renewal set the very deadline the expiry pass's retry
  // mark had, so the pass did not see it), 135 with a lease revoked 3.8 s into its 5 s TTL after
  // the leader's wall clock was stepped (deadlines were on the wall clock), 2008 with a member
  // removed long ago back in the leader's configuration (a member that installed a snapshot kept
  // its older configuration for its own next snapshot, which the leader then sent and restarts
  // loaded: liveness, a voter that does not exist), 2003 with a re-added member refusing to start
  // because the first member it asked had not applied the removal yet ("already bootstrapped"),
  // 2166 and 10115 with a founding member that fell behind through membership changes and never
  // heard of the new leader (liveness: nothing it could send reached a member that leads),
  // 12780 with a removed member back in the configuration (a promote forwarded before its removal
  // was appended after it), 4379 with a re-added member joining under the ID of its earlier,
  // removed addition that the first member it asked (behind the others) still listed, 14961 with
  // the simulator's final read waiting forever on a leader that lost power right after it was
  // asked (a simulator bug; the directed tests above do not depend on seed drift). A seed replays the run it names only on the code it
  // was found on: 18, 197 and 10189 ran before incarnations were saved (one more disk call per start).
  for (const [seed, what] of [
    [18, "request IDs unique across restarts: a write is never answered with an entry of the previous incarnation"],
    [197, "request IDs unique across a restart that set the clock back: a write is never answered with an entry of the previous incarnation"],
    [10189, "request IDs unique across a restart that set the clock back (a second case)"],
    [10025, "a member joining after the heal runs on a disk without faults, and every lease is revoked once unkept"],
    [82, "a joiner restarting with a term but no entry asks the cluster for the member list and catches up"],
    [143, "a keep-alive answered while the leader confirms its leadership for an expiry pass is not followed by the revoke"],
    [2008, "a member that installed the leader's snapshot records the snapshot's configuration in its own next snapshot (a removed member did not come back)"],
    [2003, "a member removed and added again joins although a member that has not applied that yet still lists it as started"],
    [2166, "a founding member cut off while members were added and the ones it knew left learns the new members from the cluster and catches up"],
    [10115, "a founding member that fell behind through membership changes catches up (a second case)"],
    [12780, "a forwarded promote that reaches the leader after the member's removal does not add it back"],
    [135, "a leader whose wall clock is stepped forward 8.6 s does not revoke a lease early (deadlines on the monotonic clock)"],
    [4379, "a member re-added at its URL joins under its new ID although a member behind the others lists the removed one"],
    [14961, "the final read is asked again when the member it went to loses power"],
  ] as const) {
    it(`seed ${seed}: ${what}`, async function () {
      this.timeout(120_000);
      const r = await runMemberSeed(seed);
      assert.ok(r.writesAcked > 0, "clients got writes acknowledged");
    });
  }

  it("a lease lives its TTL although the leader's wall clock is stepped forward (deadlines on the monotonic clock; seed 135)", async function () {
    this.timeout(60_000);
    const sim = new MemberSimulation(5, { size: 1, leases: false, membership: false });
    sim.quiet();
    const [m1] = sim.nodes;
    sim.start(m1!);
    await sim.world.run(3000, () => undefined, () => m1!.started && m1!.member!.isLeader());
    const member = m1!.member!;
    let answered = false;
    void member.proposeKv({ type: "leaseGrant", req: { ID: "42", TTL: 5 } }).then(() => (answered = true));
    await sim.world.run(sim.world.now + 3000, () => undefined, () => answered);
    assert.ok(answered, "the grant was answered");
    const granted = sim.world.now;
    await sim.world.run(granted + 1000, () => undefined);
    m1!.owner!.skewMs += 10_000;
    await sim.world.run(granted + 4500, () => undefined);
    assert.ok(member.kv.lessor.get("42") !== undefined, "not revoked 4.5 s into a 5 s TTL after a 10 s step of the wall clock");
    await sim.world.run(granted + 8000, () => undefined);
    assert.equal(member.kv.lessor.get("42"), undefined, "revoked once its TTL passed");
  });

  it("replays a seed exactly", async () => {
    assert.deepEqual(await runMemberSeed(77), await runMemberSeed(77));
  });

  it("a member whose first save was torn after its first founding conf change starts over instead of leading a cluster of its own (seed 9)", async () => {
    const sim = new MemberSimulation(1, { size: 3 });
    const m3 = sim.nodes[2]!;
    m3.disk.faultsOn = false;
    sim.start(m3);
    await sim.world.run(50, () => undefined);
    assert.ok(m3.started, "bootstrapped and saved its founding configuration");
    sim.crash(m3, "(directed)");
    // What a torn first write leaves: the segment header and the first of the three conf changes.
    const segment = m3.disk.files().find((f) => f.startsWith("/data/m3/wal/") && f.endsWith(".wal"))!;
    const bytes = m3.disk.contents(segment)!;
    let off = 0;
    for (let i = 0; i < 2; i++) {
      const fr = readFrame(bytes, off, bytes.length);
      assert.ok(fr.ok);
      off = fr.payloadEnd;
    }
    assert.ok(off < bytes.length);
    m3.disk.cutDurably(segment, off);
    let ledAlone = false;
    await sim.world.run(8000, () => {
      if (m3.member?.isLeader()) ledAlone = true;
    });
    assert.equal(m3.incarnation, 2);
    assert.ok(m3.started, "restarted");
    assert.equal(ledAlone, false, "with the other two members down it must not lead");
  });
});

