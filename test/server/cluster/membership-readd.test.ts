/**
 * Issue 14 item 1: a member removed and added again at its old peer URL is a new member with a
 * new ID (etcd mixes the time into `member add`'s ID). Before, the add derived the removed
 * member's ID again: it committed, peers refused the new process as removed, it exited, and the
 * cluster kept a voter that could never join. The joining process learns its ID from the members
 * listed in --initial-cluster. Also re-adding under a new URL. Under a background writer; no
 * acknowledged write is lost.
 */
import { strict as assert } from "node:assert";
import { TestCluster } from "../harness/cluster";
import { MembershipOps } from "./membership-ops";

describe("cluster: remove and re-add a member (same URL, new URL)", function () {
  this.timeout(120_000);
  let c: TestCluster | undefined;
  let ops: MembershipOps | undefined;

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    ops = new MembershipOps(c, "readd/");
  });
  after(async () => {
    await ops?.close();
    await c?.destroy();
  });

  it("re-adds a removed member at its old peer URL under a new ID, then another under a new URL", async () => {
    const cl = c!;
    const o = ops!;
    const all = ["raftkv-1", "raftkv-2", "raftkv-3"];
    const writer = o.startWriter();
    await writer.progress(20);

    // 1. remove a follower, add it again at the same peer URL with an empty data dir
    const leader = await cl.leader();
    const gone = all.find((n) => n !== leader)!;
    const oldId = await o.hexIdOf(gone, leader);
    await o.remove(gone, [leader]);
    await o.votersAre(all.filter((n) => n !== gone), [leader]);
    await writer.progress(20);
    const newId = await o.addAndStart(gone, [leader], all);
    assert.notEqual(newId, oldId, "the re-added member got the removed member's ID");
    const list = await o.votersAre(all, all);
    assert.equal(BigInt(list.find((m) => m.name === gone)!.ID).toString(16), newId);
    assert.equal((await cl.status(gone))?.id, newId, "the new process runs under the ID the add gave it");
    await writer.progress(20);

    // it restarts from its data dir under that ID (not one derived from its URL)
    await cl.kill(gone);
    cl.startMember(gone, cl.flags(cl.member(gone), "existing", all.map((n) => cl.member(n))));
    await cl.waitHealthy([gone], 60_000);
    assert.equal((await cl.status(gone))?.id, newId);
    await o.votersAre(all, all);
    await writer.progress(20);

    // 2. remove another member and add its replacement under a new URL
    const leader2 = await cl.leader();
    const second = all.find((n) => n !== leader2 && n !== gone)!;
    await o.remove(second, [leader2]);
    await cl.planExtraMember("raftkv-4");
    const voters = [...all.filter((n) => n !== second), "raftkv-4"];
    await o.addAndStart("raftkv-4", [leader2], voters);
    await o.votersAre(voters, voters);
    await writer.progress(20);

    await o.assertNoWriteLost(voters);
  });
});
