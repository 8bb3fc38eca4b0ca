/**
 * Durability across processes: a member that was down while the others compacted their logs
 * catches up through a snapshot install, and a whole cluster stopped with SIGTERM comes back
 * with the same data, member IDs and cluster ID.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { TestCluster } from "../harness/cluster";
import { RawPool, eventually, missingWrites } from "./clients";

describe("cluster: snapshots and restarts", function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  const names = () => c!.members.map((m) => m.name);
  const snapDir = (name: string) => path.join(c!.dir, "data", name, "snap");

  before(async () => {
    c = await TestCluster.start({ size: 3, snapshotCount: 50 });
    pool = new RawPool(c);
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  const written = new Map<string, string>();

  it("brings a member that missed compacted entries up to date by installing a snapshot", async () => {
    const leader = await c!.leader();
    const down = names().find((n) => n !== leader)!;
    await c!.kill(down, "SIGKILL");
    const snapsBefore = fs.existsSync(snapDir(down)) ? fs.readdirSync(snapDir(down)) : [];

    const via = names().filter((n) => n !== down);
    for (let i = 0; i < 300; i++) {
      const key = `snap/${String(i).padStart(4, "0")}`;
      const value = `v${i}-${"x".repeat(i % 40)}`;
      await pool!.of(via[i % via.length]!).put(key, value);
      written.set(key, value);
    }
    // Members keep a tail of 5000 entries in memory after a snapshot (etcd's catch-up entries)
    // and their peer links may still hold appends queued for the down member; a restart drops
    // both, so the survivors' logs now begin at their last snapshot and only a snapshot helps.
    for (const n of via) {
      await c!.kill(n, "SIGTERM");
      c!.startMember(n);
      pool!.reset(n);
    }
    await c!.waitHealthy(via);
    for (const n of via) assert.ok(fs.readdirSync(snapDir(n)).length > 0, `${n} saved no snapshot`);

    c!.startMember(down);
    pool!.reset(down);
    await c!.waitHealthy();
    const target = Math.max(...(await Promise.all(via.map(async (n) => (await c!.status(n))?.appliedIndex ?? 0))));
    await eventually(`${down} to apply index ${target}`, async () => (((await c!.status(down))?.appliedIndex ?? 0) >= target ? true : undefined));
    assert.deepEqual(await missingWrites(pool!.of(down), "snap/", written, true), []);
    assert.ok(/installed snapshot from leader/.test(c!.log(down)), "the member caught up without a snapshot install");
    const snapsAfter = fs.readdirSync(snapDir(down));
    assert.ok(snapsAfter.some((f) => !snapsBefore.includes(f)), `no new snapshot file in ${snapDir(down)}: ${snapsAfter.join(", ")}`);
  });

  it("restarts a whole cluster stopped with SIGTERM with the same data, member IDs and cluster ID", async () => {
    // A restarted member re-publishes its client URLs if its first publish never committed;
    // compare lists only once every member is published.
    const before = await eventually("every member published", async () => {
      const ms = await pool!.of(names()[0]!).members();
      return ms.every((m) => m.clientURLs.length > 0) ? ms : undefined;
    });
    const header = (await pool!.of(names()[0]!).get("snap/", { prefix: true, serializable: true })).header;
    const ids = new Map(await Promise.all(names().map(async (n) => [n, (await c!.status(n))!.id] as const)));

    const procs = names().map((n) => c!.procs.get(n)!);
    await Promise.all(names().map((n) => c!.kill(n, "SIGTERM")));
    assert.deepEqual(procs.map((p) => p.exitCode), names().map(() => 0));
    pool!.closeAll();

    for (const n of names()) c!.startMember(n);
    await c!.waitHealthy();
    for (const n of names()) {
      assert.equal((await c!.status(n))!.id, ids.get(n));
      const r = await pool!.of(n).get("snap/", { prefix: true });
      assert.equal(r.header.cluster_id, header.cluster_id);
      assert.equal(r.kvs.length, written.size);
      assert.deepEqual(await missingWrites(pool!.of(n), "snap/", written), []);
      const after = await pool!.of(n).members();
      const shape = (ms: typeof after) => ms.map((m) => [m.ID, m.name, m.peerURLs.join(","), m.clientURLs.join(","), m.isLearner]).sort();
      assert.deepEqual(shape(after), shape(before), `member list on ${n}`);
    }
    // And it still takes writes.
    await pool!.of(names()[1]!).put("after/restart", "ok");
    assert.equal(await pool!.of(names()[2]!).value("after/restart"), "ok");
  });
});
