/**
 * Grow 3 → 5 → 7 → 3 under a background writer, the way the deployment resizes (issue 14): each
 * new member joins as a learner (`member add --learner`, then started with
 * --initial-cluster-state=existing) and the leader promotes it once it has caught up; then members
 * leave one at a time, founders and the leader among them. After every step every member lists
 * the same voters; no acknowledged write is lost.
 */
import { strict as assert } from "node:assert";
import { TestCluster } from "../harness/cluster";
import { MembershipOps } from "./membership-ops";

describe("cluster: resize 3 → 5 → 7 → 3 with learner-first joins", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let ops: MembershipOps | undefined;

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    ops = new MembershipOps(c, "resize/");
  });
  after(async () => {
    await ops?.close();
    await c?.destroy();
  });

  it("grows to 5 and 7 one learner at a time, shrinks to 3 one member at a time, losing no write", async () => {
    const cl = c!;
    const o = ops!;
    let voters = ["raftkv-1", "raftkv-2", "raftkv-3"];
    const writer = o.startWriter();
    await writer.progress(20);

    for (const n of [4, 5, 6, 7]) {
      const name = `raftkv-${n}`;
      await cl.planExtraMember(name);
      await o.addAndStart(name, voters, [...voters, name], { learner: true });
      voters = [...voters, name];
      // promoted by the leader, not by us; the next learner may only be added after that
      await o.votersAre(voters, [name, await cl.leader()]);
      await writer.progress(10);
      if (n === 5) await o.votersAre(voters, voters);
    }
    await o.votersAre(voters, voters);

    // shrink: the leader first, then founders and joiners alike, one at a time
    const leader = await cl.leader();
    const founders = ["raftkv-1", "raftkv-2", "raftkv-3"].filter((n) => n !== leader);
    const joiners = ["raftkv-4", "raftkv-5", "raftkv-6", "raftkv-7"].filter((n) => n !== leader);
    const keep = [founders.at(-1)!, joiners.at(-2)!, joiners.at(-1)!].sort();
    const order = [leader, ...voters.filter((n) => n !== leader && !keep.includes(n))];
    for (const name of order) {
      const via = voters.filter((n) => n !== name);
      await o.remove(name, via);
      voters = via;
      await o.votersAre(voters, [voters[0]!]);
      await writer.progress(10);
    }
    assert.deepEqual([...voters].sort(), keep);
    await o.votersAre(keep, keep);
    await o.assertNoWriteLost(keep);
  });
});
