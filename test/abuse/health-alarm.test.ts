/**
 * /health while an alarm is active: etcd answers 503 {"health":"false"} on every member, not
 * only the one the alarm names, because alarms are cluster state (measured on etcd 3.4.23 with
 * --quota-backend-bytes=1048576 filled up: 503 {"health":"false"}, `alarm list` NOSPACE). Ours
 * answered 200 on every member that still had a leader and could read. The side port's /health
 * also says why (etcd 3.5's reason "ALARM NOSPACE"); the client port's matches etcd 3.4's body.
 * Once the alarm is disarmed every member is healthy again.
 */
import { strict as assert } from "node:assert";
import { etcdctlOn, eventually, grpcDetails, RawPool } from "../server/cluster/clients";
import { curl } from "../server/gateway/support";
import { TestCluster } from "../server/harness/cluster";

describe("abuse: /health during a NOSPACE alarm", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;

  before(async function () {
    this.timeout(60_000);
    c = await TestCluster.start({ size: 3, extraFlags: ["--quota-backend-bytes=1048576"] });
    pool = new RawPool(c);
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  const side = (name: string) => curl(`http://127.0.0.1:${c!.member(name).metricsPort}`, "/health", undefined);
  const gateway = (name: string) => curl(`https://127.0.0.1:${c!.member(name).clientPort}`, "/health", undefined, c!.pki.clients["admin"]!);

  it("every member reports unhealthy while the alarm is active, and healthy once it is disarmed", async () => {
    const names = c!.members.map((m) => m.name);
    for (const n of names) assert.equal((await side(n)).status, 200);
    const leader = await c!.leader();
    const value = Buffer.alloc(60 * 1024, "q");
    let refusal = "";
    for (let i = 0; i < 100 && refusal === ""; i++) {
      await pool!.of(leader).put(`fill/${i}`, value).catch((e: unknown) => (refusal = grpcDetails(e)));
    }
    assert.match(refusal, /database space exceeded/);

    for (const n of names) {
      const h = await eventually(`${n} /health to report the alarm`, async () => {
        const r = await side(n);
        return r.status === 503 ? r : undefined;
      });
      assert.deepEqual(JSON.parse(h.body), { health: "false", reason: "ALARM NOSPACE" });
      const g = await gateway(n);
      assert.equal(g.status, 503, g.body + g.stderr);
      assert.deepEqual(JSON.parse(g.body), { health: "false" });
    }

    const disarm = await etcdctlOn(c!, leader, ["alarm", "disarm"]);
    assert.equal(disarm.code, 0, disarm.stderr);
    for (const n of names) {
      await eventually(`${n} /health to recover`, async () => ((await side(n)).status === 200 ? true : undefined));
      assert.equal((await gateway(n)).status, 200);
    }
  });
});
