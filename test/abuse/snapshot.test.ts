/**
 * Maintenance.Snapshot under abuse (issue 15, "Medium/low"): ten Snapshot streams that are
 * never read must not each hold a copy of the store (the format and its consistency are
 * tested in test/snapshot/).
 */
import * as grpc from "@grpc/grpc-js";
import { strict as assert } from "node:assert";
import { loadEtcdGrpc } from "../../node-runtime/server/proto";
import { adminCredentials, clientAddress, RawPool } from "../server/cluster/clients";
import { sleep, TestCluster } from "../server/harness/cluster";
import { rssMiB, RssSampler, StallProbe } from "./support";

type SnapshotCall = grpc.ClientReadableStream<{ blob: Buffer; remaining_bytes: string }>;

function openSnapshot(c: TestCluster, name: string): { call: SnapshotCall; client: grpc.Client } {
  const { clients } = loadEtcdGrpc();
  const client = new clients.Maintenance(clientAddress(c, name), adminCredentials(c));
  const call = (client as unknown as { Snapshot: (req: object) => SnapshotCall }).Snapshot({});
  return { call, client };
}

describe("abuse: Maintenance.Snapshot", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool;

  before(async function () {
    this.timeout(60_000);
    c = await TestCluster.start({ size: 3 });
    pool = new RawPool(c);
    const m = pool.of(await c.leader());
    const value = Buffer.alloc(100 * 1024, "s");
    for (let i = 0; i < 300; i++) await m.put(`snap/${String(i).padStart(4, "0")}`, value);
  });

  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  it("10 unread Snapshot streams do not each copy the store (~30 MiB)", async () => {
    const name = "raftkv-2";
    const pid = c!.procs.get(name)!.pid!;
    const before = rssMiB(pid);
    const sampler = new RssSampler([pid]);
    const probe = new StallProbe(() => pool.of(name).get("snap/0000"));
    const streams = Array.from({ length: 10 }, () => openSnapshot(c!, name));
    for (const s of streams) {
      s.call.on("error", () => undefined);
      s.call.pause();
    }
    await sleep(4000);
    const peak = sampler.stop().get(pid)!;
    await probe.stop();
    for (const s of streams) {
      s.call.cancel();
      s.client.close();
    }
    assert.deepEqual(probe.errors, []);
    // The old handler built three copies of the state per call and kept them for the stream.
    assert.ok(peak - before < 120, `RSS grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  });
});
