/**
 * Watch backpressure against a real 3-member cluster (issue 15, "High" 3): many watches from
 * revision 1 on a stream that is never read must not copy the history into the member's memory
 * nor stall it; a slow watcher is moved aside and catches up (or is cancelled with
 * compact_revision when its history is compacted meanwhile), and no event is lost.
 */
import { strict as assert } from "node:assert";
import { adminCredentials, clientAddress, RawPool } from "../server/cluster/clients";
import { TestCluster } from "../server/harness/cluster";
import { RawWatch, rssMiB, RssSampler, StallProbe } from "./support";

const VALUE = Buffer.alloc(100 * 1024, "v");

describe("abuse: watch streams that are not read", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool;
  const watches: RawWatch[] = [];

  before(async function () {
    this.timeout(60_000);
    c = await TestCluster.start({ size: 3 });
    pool = new RawPool(c);
  });

  after(async () => {
    for (const w of watches) w.close();
    pool?.closeAll();
    await c?.destroy();
  });

  it("30 watches from revision 1 on an unread stream: memory stays bounded, the cluster keeps serving, nothing is lost", async () => {
    const leader = await c!.leader();
    const m = pool.of(leader);
    // ~16 MiB of history.
    for (let i = 0; i < 160; i++) await m.put(`hist/${String(i).padStart(4, "0")}`, VALUE);
    const pid = c!.procs.get(leader)!.pid!;
    const before = rssMiB(pid);
    const sampler = new RssSampler([pid]);
    const probe = new StallProbe(() => m.put("probe", "x"));

    const w = new RawWatch(clientAddress(c!, leader), adminCredentials(c!), { paused: true });
    watches.push(w);
    for (let i = 0; i < 30; i++) w.create({ key: "hist/", range_end: "hist0", start_revision: 1 });
    // More history while the stream is stuck: these watchers are behind and must get it too.
    for (let i = 160; i < 200; i++) await m.put(`hist/${String(i).padStart(4, "0")}`, VALUE);
    await new Promise((r) => setTimeout(r, 3000));
    const peak = sampler.stop().get(pid)!;
    await probe.stop();

    assert.deepEqual(probe.errors, [], "writes kept succeeding during the attack");
    // The old code queued 30 copies of the history (30 x 20 MiB plus protobuf objects).
    assert.ok(peak - before < 150, `leader RSS grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);

    w.call.resume();
    const head = Number((await m.get("hist/0199")).kvs[0]!.mod_revision);
    await w.until(
      "every watcher to reach the last put",
      (rs) => {
        const last = new Map<string, number>();
        for (const r of rs) for (const e of r.events) last.set(r.watch_id, Number(e.kv.mod_revision));
        return last.size === 30 && [...last.values()].every((v) => v === head);
      },
      90_000,
    );
    const byWatch = new Map<string, string[]>();
    for (const r of w.responses) {
      assert.equal(r.canceled, false, `watch ${r.watch_id} cancelled: ${r.cancel_reason}`);
      for (const e of r.events) {
        const list = byWatch.get(r.watch_id) ?? [];
        list.push(e.kv.key.toString());
        byWatch.set(r.watch_id, list);
      }
    }
    const want = Array.from({ length: 200 }, (_, i) => `hist/${String(i).padStart(4, "0")}`);
    for (const [id, keys] of byWatch) assert.deepEqual(keys, want, `events of watch ${id}`);
  });

  it("a watcher left behind while its history is compacted is cancelled with compact_revision", async () => {
    const leader = await c!.leader();
    const m = pool.of(leader);
    const first = Number((await m.put("compact-me/0", VALUE)).header.revision);
    for (let i = 1; i < 100; i++) await m.put(`compact-me/${i}`, VALUE);
    const w = new RawWatch(clientAddress(c!, leader), adminCredentials(c!), { paused: true });
    watches.push(w);
    w.create({ key: "compact-me/", range_end: "compact-me0", start_revision: first });
    await new Promise((r) => setTimeout(r, 1000));
    const head = Number((await m.put("compact-me/last", "x")).header.revision);
    await m.call("KV", "Compact", { revision: String(head), physical: false });
    w.call.resume();
    await w.until("the compaction cancel", (rs) => rs.some((r) => r.canceled));
    const cancel = w.responses.find((r) => r.canceled)!;
    assert.equal(cancel.compact_revision, String(head));
    const delivered = w.responses.flatMap((r) => r.events).length;
    assert.ok(delivered < 100, `the stream was not stuck: ${delivered} events arrived before the compaction`);
  });
});
