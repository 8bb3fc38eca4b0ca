/**
 * Watch IDs chosen by the client, side by side with etcd 3.4.23 (issue 15): a duplicate
 * watch_id is refused (created + canceled, watch_id -1, etcd's reason) rather than renumbered,
 * the largest int64 is answered exactly, automatic IDs count from 0 and an empty range is refused.
 */
import * as grpc from "@grpc/grpc-js";
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { startReferenceEtcd, type ReferenceEtcd } from "../helpers/etcd-reference";
import { adminCredentials, clientAddress } from "../server/cluster/clients";
import { TestCluster } from "../server/harness/cluster";
import { RawWatch } from "./support";

async function script(address: string, creds: grpc.ChannelCredentials): Promise<unknown[]> {
  const w = new RawWatch(address, creds);
  try {
    w.create({ key: "a", watch_id: "7" });
    w.create({ key: "b", watch_id: "7" });
    w.create({ key: "c", watch_id: "9223372036854775807" });
    w.create({ key: "d" });
    w.create({ key: "e" });
    w.create({ key: "z", range_end: "a" });
    w.create({ key: "f", watch_id: "-5" });
    w.cancel("9223372036854775807");
    await w.until("every answer", (rs) => rs.length >= 8, 10_000);
    // Identity and revision differ between the two servers; everything else must not.
    return w.responses.map(({ header: _h, ...rest }) => rest);
  } finally {
    w.close();
  }
}

describe("abuse: client-chosen watch IDs, as etcd 3.4 answers them", function () {
  this.timeout(90_000);
  let c: TestCluster | undefined;
  let etcd: ReferenceEtcd | undefined;

  before(async function () {
    this.timeout(60_000);
    etcd = await startReferenceEtcd();
    c = await TestCluster.start({ size: 3 });
  });

  after(async () => {
    await c?.destroy();
    await etcd?.stop();
  });

  it("duplicate, int64-max, automatic and empty-range watch IDs get etcd's answers", async () => {
    const e = etcd!;
    const etcdCreds = grpc.credentials.createSsl(fs.readFileSync(e.client.ca), fs.readFileSync(e.client.key), fs.readFileSync(e.client.cert));
    const want = await script(`127.0.0.1:${e.member.clientPort}`, etcdCreds);
    const got = await script(clientAddress(c!, "raftkv-1"), adminCredentials(c!));
    assert.deepEqual(got, want);
    // The facts the comparison rests on, stated plainly.
    const ids = (want as Array<{ watch_id: string; canceled: boolean }>).map((r) => `${r.watch_id}${r.canceled ? "x" : ""}`);
    assert.deepEqual(ids, ["7", "-1x", "9223372036854775807", "0", "1", "-1x", "-5", "9223372036854775807x"]);
  });
});
