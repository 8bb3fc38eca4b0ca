/**
 * Writes through every member and reads everywhere, on real 3- and 5-member TLS clusters:
 * followers forward writes, reads are linearizable by default (a value acknowledged by one
 * member is visible at once on every other) and serializable on request. The 5-member cluster
 * then loses 3 members: with no quorum there are no writes and no linearizable reads.
 */
import { strict as assert } from "node:assert";
import { TestCluster } from "../harness/cluster";
import { RawPool, etcd3Client, eventually, rejection } from "./clients";

const NO_QUORUM_ERRORS = ["etcdserver: no leader", "etcdserver: request timed out"];

function describeCluster(size: number, extra?: (ctx: () => { c: TestCluster; pool: RawPool }) => void): void {
  describe(`${size}-member cluster`, function () {
    this.timeout(60_000);
    let c: TestCluster | undefined;
    let pool: RawPool | undefined;
    const names = () => c!.members.map((m) => m.name);

    before(async () => {
      c = await TestCluster.start({ size });
      pool = new RawPool(c);
    });
    after(async () => {
      pool?.closeAll();
      await c?.destroy();
    });

    it("accepts writes through every member and reads them back linearizably from every other member at once", async () => {
      for (const writer of names()) {
        const key = `via/${writer}`;
        const value = `written through ${writer}`;
        await pool!.of(writer).put(key, value);
        // No waiting: a linearizable read on any member must already see an acknowledged write.
        for (const reader of names()) {
          assert.equal(await pool!.of(reader).value(key), value, `${reader} reading ${key} written through ${writer}`);
        }
      }
      const all = await pool!.of(names()[0]!).get("via/", { prefix: true });
      assert.deepEqual(
        all.kvs.map((kv) => kv.key.toString()),
        names().map((n) => `via/${n}`).sort(),
      );
    });

    it("answers serializable reads from each member's own state", async () => {
      const leader = await c!.leader();
      const res = await pool!.of(leader).put("ser/key", "v1");
      for (const n of names()) {
        // A follower may lag by a heartbeat; it must converge to the leader's value and revision.
        const got = await eventually(`serializable read on ${n}`, async () => {
          const r = await pool!.of(n).get("ser/key", { serializable: true });
          return r.kvs[0]?.value.toString() === "v1" ? r : undefined;
        });
        assert.equal(got.kvs[0]!.mod_revision, res.header.revision);
      }
    });

    it("serves the etcd3 client through each member", async () => {
      for (const n of names()) {
        const client = etcd3Client(c!, [n]);
        try {
          await client.put(`etcd3/${n}`).value(n);
          for (const reader of names()) {
            const other = etcd3Client(c!, [reader]);
            try {
              assert.equal(await other.get(`etcd3/${n}`).string(), n);
              await eventually(`serializable etcd3 read on ${reader}`, async () => ((await other.get(`etcd3/${n}`).serializable(true).string()) === n ? true : undefined));
            } finally {
              other.close();
            }
          }
        } finally {
          client.close();
        }
      }
    });

    if (extra) extra(() => ({ c: c!, pool: pool! }));
  });
}

describe("cluster: replication across members", function () {
  describeCluster(3);
  describeCluster(5, (ctx) => {
    it("stops writes and linearizable reads when 3 of 5 members are down, and resumes when they return", async () => {
      const { c, pool } = ctx();
      await pool.of("raftkv-1").put("q/before", "kept");
      const leader = await c.leader();
      // Keep the leader among the two survivors: it must notice on its own that it lost quorum.
      const victims = c.members.map((m) => m.name).filter((n) => n !== leader).slice(0, 3);
      const survivors = c.members.map((m) => m.name).filter((n) => !victims.includes(n));
      await Promise.all(survivors.map((n) => eventually(`${n} applied q/before`, async () => ((await pool.of(n).value("q/before", { serializable: true })) === "kept" ? true : undefined))));
      await Promise.all(victims.map((n) => c.kill(n)));
      // The leader steps down once it misses a quorum of heartbeat answers (check-quorum).
      for (const n of survivors) await eventually(`${n} to see no leader`, async () => ((await c.status(n))?.leader === "" ? true : undefined));
      for (const n of survivors) {
        assert.ok(NO_QUORUM_ERRORS.includes(await rejection(pool.of(n).put("q/lost", "x", 15_000))), `write through ${n}`);
      }
      for (const n of survivors) {
        const msg = await rejection(pool.of(n).get("q/before", {}, 15_000));
        assert.ok(NO_QUORUM_ERRORS.includes(msg), `linearizable read on ${n} failed with ${msg}`);
        assert.equal(await pool.of(n).value("q/before", { serializable: true }), "kept");
        assert.equal(await pool.of(n).value("q/lost", { serializable: true }), undefined);
      }
      for (const n of victims) {
        c.startMember(n);
        pool.reset(n);
      }
      await c.waitHealthy();
      await eventually("a write after the quorum returned", () => pool.of(survivors[0]!).put("q/after", "ok"));
      for (const n of c.members.map((m) => m.name)) {
        assert.equal(await pool.of(n).value("q/after"), "ok");
        assert.equal(await pool.of(n).value("q/before"), "kept");
      }
    });
  });
});
