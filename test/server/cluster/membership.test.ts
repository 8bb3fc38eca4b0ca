/**
 * Membership changes on a live 3-member TLS cluster while a client keeps writing through the
 * etcd3 npm client: add a learner, start it with --initial-cluster-state existing, let it catch
 * up, promote it, remove a follower, remove the leader. After every step the member list is
 * right on every running member and writes still succeed; at the end every acknowledged write
 * is present.
 */
import { strict as assert } from "node:assert";
import { peerUrl } from "../../../components/topology";
import { TestCluster } from "../harness/cluster";
import { BackgroundWriter, RawPool, etcd3Client, eventually, grpcDetails, missingWrites, type WireMember } from "./clients";
import type { Etcd3 } from "etcd3";

describe("cluster: membership changes under load", function () {
  this.timeout(90_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  let client: Etcd3 | undefined;
  let writer: BackgroundWriter | undefined;
  const running = () => c!.members.map((m) => m.name).filter((n) => c!.running(n));

  before(async () => {
    // etcd's manual promotion: with learner auto-promotion on, the leader could promote the
    // learner before the test does (membership-learners.test.ts covers that path).
    c = await TestCluster.start({ size: 3, extraFlags: ["--auto-promote-learners=false"] });
    pool = new RawPool(c);
  });
  after(async () => {
    await writer?.stop();
    client?.close();
    pool?.closeAll();
    await c?.destroy();
  });

  type Expected = Array<{ name: string; isLearner: boolean }>;
  /** Every expected member that runs reports exactly `expected` (lists are served locally, so poll). */
  async function membersAre(expected: Expected): Promise<WireMember[]> {
    const want = [...expected].sort((a, b) => a.name.localeCompare(b.name));
    let list: WireMember[] = [];
    for (const n of running().filter((r) => want.some((w) => w.name === r))) {
      list = await eventually(`member list on ${n} to be ${JSON.stringify(want)}`, async () => {
        const ms = await pool!.of(n).members();
        const got = ms.map((m) => ({ name: m.name, isLearner: m.isLearner })).sort((a, b) => a.name.localeCompare(b.name));
        return JSON.stringify(got) === JSON.stringify(want) ? ms : undefined;
      });
    }
    return list;
  }

  function idOf(list: WireMember[], name: string): string {
    const m = list.find((x) => x.name === name);
    assert.ok(m, `${name} not in member list`);
    return m.ID;
  }

  it("adds a learner, promotes it, removes a follower and then the leader while writes continue", async () => {
    const cl = c!;
    // The writer's hosts are the founding members; a call to a member that is gone fails and
    // the next one picks another host, so the writer keeps going through each step.
    const extra = await cl.planExtraMember("raftkv-4");
    client = etcd3Client(cl, ["raftkv-1", "raftkv-2", "raftkv-3"]);
    writer = new BackgroundWriter((k, v) => client!.put(k).value(v).exec(), "mem/").start();
    await writer.progress(30);
    const clusterId = (await pool!.of("raftkv-1").get("mem/", { prefix: true, serializable: true })).header.cluster_id;

    // 1. add a learner and start it
    const added = await pool!.of("raftkv-2").call<{ member: WireMember; members: WireMember[] }>("Cluster", "MemberAdd", {
      peerURLs: [peerUrl(extra)],
      isLearner: true,
    });
    assert.equal(added.member.isLearner, true);
    assert.equal(added.members.length, 4);
    const learnerId = added.member.ID;
    cl.startMember(extra.name, cl.flags(extra, "existing", cl.members));
    // The learner publishes its name once it has joined; until then it is listed unnamed.
    await membersAre([
      { name: "raftkv-1", isLearner: false },
      { name: "raftkv-2", isLearner: false },
      { name: "raftkv-3", isLearner: false },
      { name: "raftkv-4", isLearner: true },
    ]);
    await writer.progress(30);
    const leaderApplied = (await cl.status(await cl.leader()))!.appliedIndex;
    await eventually("the learner to catch up", async () => ((await cl.status(extra.name))?.appliedIndex ?? 0) >= leaderApplied || undefined);
    assert.equal((await pool!.of(extra.name).get("mem/", { prefix: true, serializable: true })).header.cluster_id, clusterId);

    // 2. promote it (etcd refuses until the learner is in sync; retry on exactly that answer)
    await eventually("the learner to be promoted", async () => {
      try {
        return await pool!.of("raftkv-3").call<{ members: WireMember[] }>("Cluster", "MemberPromote", { ID: learnerId });
      } catch (e) {
        if (grpcDetails(e) === "etcdserver: can only promote a learner member which is in sync with leader") return undefined;
        throw e;
      }
    });
    let list = await membersAre(["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-4"].map((name) => ({ name, isLearner: false })));
    await writer.progress(30);

    // 3. remove a follower (not the new member)
    const leader = await cl.leader();
    const follower = ["raftkv-1", "raftkv-2", "raftkv-3"].find((n) => n !== leader)!;
    const followerProc = cl.procs.get(follower)!;
    await pool!.of(leader).call("Cluster", "MemberRemove", { ID: idOf(list, follower) });
    list = await membersAre(["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-4"].filter((n) => n !== follower).map((name) => ({ name, isLearner: false })));
    await eventually(`removed member ${follower} to exit`, async () => (followerProc.exitCode !== null ? true : undefined)).catch((e) => {
      throw new Error(`${String(e)}\n${cl.log(follower).slice(-4000)}`);
    });
    assert.equal(followerProc.exitCode, 0);
    await writer.progress(30);

    // 4. remove the leader, asking another member
    const leader2 = await cl.leader();
    const asker = running().find((n) => n !== leader2)!;
    const leaderProc = cl.procs.get(leader2)!;
    await pool!.of(asker).call("Cluster", "MemberRemove", { ID: idOf(list, leader2) });
    const remaining = ["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-4"].filter((n) => n !== follower && n !== leader2);
    await eventually(`removed leader ${leader2} to exit`, async () => (leaderProc.exitCode !== null ? true : undefined));
    assert.equal(leaderProc.exitCode, 0);
    await membersAre(remaining.map((name) => ({ name, isLearner: false })));
    const leader3 = await cl.leader(15_000, remaining);
    assert.ok(remaining.includes(leader3));
    await writer.progress(30);
    await writer.stop();

    for (const n of remaining) {
      assert.deepEqual(await missingWrites(pool!.of(n), "mem/", writer.acked), [], `acknowledged writes missing on ${n}`);
      assert.equal((await pool!.of(n).get("mem/", { prefix: true })).header.cluster_id, clusterId);
    }
  });
});
