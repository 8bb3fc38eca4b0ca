/**
 * Learners promote themselves (issue 14): a member added with `member add --learner` is promoted
 * by the leader once its log has caught up (README: "Learners promote themselves"), so nobody
 * times a `member promote` by hand. A manual promotion still answers etcd's errors: a learner
 * that has not caught up is refused as not in sync, a voter as not a learner. Debian's etcdctl
 * 3.4 against real member processes under a background writer; no acknowledged write is lost.
 */
import { strict as assert } from "node:assert";
import { peerUrl } from "../../../components/topology";
import { TestCluster } from "../harness/cluster";
import { MembershipOps } from "./membership-ops";

describe("cluster: learners promote themselves", function () {
  this.timeout(120_000);
  let c: TestCluster | undefined;
  let ops: MembershipOps | undefined;

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    ops = new MembershipOps(c, "learn/");
  });
  after(async () => {
    await ops?.close();
    await c?.destroy();
  });

  it("promotes a caught-up learner; manual promotion answers etcd's errors", async () => {
    const cl = c!;
    const o = ops!;
    const all = ["raftkv-1", "raftkv-2", "raftkv-3"];
    const writer = o.startWriter();
    await writer.progress(50);

    // 1. a learner that is added but not started has no log: a manual promotion is refused
    const m = await cl.planExtraMember("raftkv-4");
    const add = await o.etcdctl(["member", "add", "raftkv-4", `--peer-urls=${peerUrl(m)}`, "--learner"], all);
    assert.ok(add.ok, `member add --learner: ${add.out}`);
    const id = /Member\s+([0-9a-f]+) added/.exec(add.out)?.[1];
    assert.ok(id, add.out);
    const listed = (await o.members("raftkv-1")).find((x) => BigInt(x.ID).toString(16) === id);
    assert.equal(listed?.isLearner, true, "added as a learner");
    const early = await o.etcdctl(["member", "promote", id], all);
    assert.ok(!early.ok, `promoting a learner without a log was accepted: ${early.out}`);
    assert.match(early.out, /etcdserver: can only promote a learner member which is in sync with leader/);
    // ...and the leader does not promote it on its own either, while the writes go on
    await writer.progress(30);
    assert.equal((await o.members("raftkv-1")).find((x) => BigInt(x.ID).toString(16) === id)?.isLearner, true);

    // 2. started, it catches up and the leader promotes it: four voters everywhere
    cl.startMember("raftkv-4", cl.flags(m, "existing", cl.members));
    await cl.waitHealthy(["raftkv-4"], 60_000);
    o.writable.push("raftkv-4");
    const voters = [...all, "raftkv-4"];
    await o.votersAre(voters, voters);
    const leader = await cl.leader();
    assert.match(cl.log(leader), /promoted a caught-up learner to voter/);
    await writer.progress(30);

    // 3. a manual promotion of a voter is refused as etcd refuses it
    const again = await o.etcdctl(["member", "promote", id], voters);
    assert.ok(!again.ok, `promoting a voter was accepted: ${again.out}`);
    assert.match(again.out, /etcdserver: can only promote a learner member/);

    await o.assertNoWriteLost(voters);
  });
});
