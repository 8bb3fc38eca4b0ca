/**
 * A watch on a follower survives that follower installing a snapshot from the leader: the
 * member replaces its whole state, and every watcher must carry on from the revision it had
 * reached (catching up on the writes the snapshot brought in), as etcd's watchableStore.Restore
 * does. Before the fix the store object was swapped under the watch streams and they went silent.
 */
import { strict as assert } from "node:assert";
import type { Etcd3, Watcher } from "etcd3";
import { TestCluster } from "../harness/cluster";
import { RawPool, etcd3Client, eventually } from "./clients";

describe("cluster: watches across a snapshot install", function () {
  this.timeout(120_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  let client: Etcd3 | undefined;
  let watcher: Watcher | undefined;
  let paused: string | undefined;

  before(async () => {
    c = await TestCluster.start({ size: 3, snapshotCount: 50 });
    pool = new RawPool(c);
  });
  after(async () => {
    if (paused) c?.procs.get(paused)?.kill("SIGCONT");
    await watcher?.cancel().catch(() => undefined);
    client?.close();
    pool?.closeAll();
    await c?.destroy();
  });

  it("a follower's watcher gets every write made while it was behind, and the ones after", async () => {
    const cl = c!;
    const leader = await cl.leader();
    const follower = cl.members.map((m) => m.name).find((n) => n !== leader)!;
    const others = cl.members.map((m) => m.name).filter((n) => n !== follower);

    client = etcd3Client(cl, [follower]);
    const seen: string[] = [];
    let reconnects = 0;
    watcher = await client.watch().prefix("w/").create();
    watcher.on("put", (kv) => seen.push(kv.key.toString()));
    watcher.on("disconnected", () => reconnects++);

    const keys: string[] = [];
    const put = async (via: string, i: number, bytes = 8): Promise<void> => {
      const key = `w/${String(i).padStart(4, "0")}`;
      await pool!.of(via).put(key, `v${i}-`.padEnd(bytes, "x"));
      keys.push(key);
    };
    await put(leader, 0);
    await eventually("the first event", async () => (seen.length === 1 ? true : undefined));

    // Freeze the follower (its watch stream stays open), write past several snapshots, and
    // restart the others so their in-memory log tail is gone: only a snapshot can catch it up.
    // The writes outsize what the kernel's socket buffers can hold for the frozen member (it
    // would otherwise read the old leader's appends from them on waking, and need no snapshot).
    cl.procs.get(follower)!.kill("SIGSTOP");
    paused = follower;
    for (let i = 1; i <= 240; i++) await put(others[i % 2]!, i, 64 * 1024);
    for (const n of others) {
      await cl.kill(n, "SIGTERM");
      cl.startMember(n);
      pool!.reset(n);
      await cl.waitHealthy([n]).catch(() => undefined);
    }
    await cl.waitHealthy(others);
    cl.procs.get(follower)!.kill("SIGCONT");
    paused = undefined;
    await eventually(`${follower} to install a snapshot`, async () => (/installed snapshot from leader/.test(cl.log(follower)) ? true : undefined), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${cl.members.map((m) => cl.log(m.name).split("\n").filter((l) => !/peer connected|lost connection|cannot connect/.test(l)).slice(-12).join("\n")).join("\n---\n")}`);
    });

    await put(others[0]!, 241);
    await eventually(
      `the watcher on ${follower} to see all ${keys.length} writes (saw ${seen.length}, reconnects ${reconnects})`,
      async () => (seen.length >= keys.length ? true : undefined),
      30_000,
    );
    assert.deepEqual(seen, keys);
    assert.equal(reconnects, 0, "the watch stream was reconnected: the test would not show the store swap");
  });
});
