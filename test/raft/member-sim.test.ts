import assert from "node:assert/strict";
import { readFrame } from "../../node-runtime/storage/wal-record";
import { MemberSimulation, runMemberSeed } from "./sim/member/cluster";

// A few hundred seeds per `npm test`; thousands: npm run sim:member -- --seeds 20000
const SEEDS = 250;

describe("whole-member simulator (real Member over simulated disk, network and clock)", () => {
  it(`passes seeds 1..${SEEDS}: safety after every event, acknowledged writes kept, linearizable history`, async function () {
    this.timeout(600_000);
    const failures: string[] = [];
    let acked = 0;
    let reads = 0;
    let crashes = 0;
    let cut = 0;
    let installs = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        const r = await runMemberSeed(seed);
        acked += r.writesAcked;
        reads += r.readsOk;
        crashes += r.crashes;
        cut += r.messagesCut;
        installs += r.snapshotsSent;
      } catch (e) {
        failures.push(`${(e as Error).message.split("\n")[0]} (replay: npm run sim:member -- --seed ${seed})`);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(acked > SEEDS * 10, `clients got writes acknowledged (${acked})`);
    assert.ok(reads > SEEDS * 10, `clients got linearizable reads (${reads})`);
    assert.ok(crashes > SEEDS / 2, `members crashed and recovered (${crashes})`);
    assert.ok(cut > SEEDS * 10, `partitions cut links (${cut} messages met a cut)`);
    assert.ok(installs > SEEDS / 10, `followers were sent snapshots (${installs})`);
  });

  it("replays a seed exactly", async () => {
    assert.deepEqual(await runMemberSeed(77), await runMemberSeed(77));
  });

  it("a member whose first save was torn after its first founding conf change starts over instead of leading a cluster of its own (seed 9)", async () => {
    const sim = new MemberSimulation(1, { size: 3 });
    const m3 = sim.nodes[2]!;
    m3.disk.faultsOn = false;
    sim.start(m3);
    await sim.world.run(50, () => undefined);
    assert.ok(m3.started, "bootstrapped and saved its founding configuration");
    sim.crash(m3, "(directed)");
    // What a torn first write leaves: the segment header and the first of the three conf changes.
    const segment = m3.disk.files().find((f) => f.startsWith("/data/m3/wal/") && f.endsWith(".wal"))!;
    const bytes = m3.disk.contents(segment)!;
    let off = 0;
    for (let i = 0; i < 2; i++) {
      const fr = readFrame(bytes, off, bytes.length);
      assert.ok(fr.ok);
      off = fr.payloadEnd;
    }
    assert.ok(off < bytes.length);
    m3.disk.cutDurably(segment, off);
    let ledAlone = false;
    await sim.world.run(8000, () => {
      if (m3.member?.isLeader()) ledAlone = true;
    });
    assert.equal(m3.incarnation, 2);
    assert.ok(m3.started, "restarted");
    assert.equal(ledAlone, false, "with the other two members down it must not lead");
  });
});

