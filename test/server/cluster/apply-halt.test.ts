/**
 * A committed entry that a member cannot apply must stop only that member's applying (issue 15,
 * critical #1): it raises a CORRUPT alarm for itself, logs one clear line, keeps running (its
 * reads answer "corrupt cluster", /health says unhealthy), and the rest of the cluster serves on;
 * it once called die() and every member crash-looped on the same entry. The bad entry is made for
 * real: one follower's WAL gets a committed entry rewritten (checksums redone, as a faulty or
 * hostile peer would have sent it), then the follower restarts and replays it.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { sleep, TestCluster } from "../harness/cluster";
import { patchWalEntries } from "./wal-tamper";
import { etcdctlOn, eventually as until } from "./clients";

const MARKER = "poison-key-5f3a";

/** Rewrites the command inside the WAL entry that puts MARKER so that it no longer decodes. */
function poisonWal(walDir: string): number {
  // Entry payload: term u64, index u64, type u8, then the data: the 17-byte envelope header,
  // then the command, whose first byte is its format version.
  return patchWalEntries(walDir, MARKER, (buf, payloadStart) => {
    buf[payloadStart + 17 + 17] = 0x7f;
  });
}

describe("cluster: a committed entry that cannot be applied", function () {
  this.timeout(240_000);
  let c: TestCluster | undefined;
  const names = () => c!.members.map((m) => m.name);

  before(async () => {
    c = await TestCluster.start({ size: 3 });
  });
  after(async () => {
    await c?.destroy();
  });

  const etcdctl = (args: string[], endpoint: string) => etcdctlOn(c!, endpoint, args);
  const eventually = (what: string, f: () => Promise<boolean>) => until(what, async () => ((await f()) ? true : undefined), 60_000, 250);

  it("halts only that member, which raises CORRUPT, keeps running and survives restarts", async () => {
    const leader = await c!.leader();
    const victim = names().find((n) => n !== leader)!;
    const others = names().filter((n) => n !== victim);
    assert.equal((await etcdctl(["put", MARKER, "v"], leader)).code, 0);
    assert.equal((await etcdctl(["put", "after", "1"], leader)).code, 0);
    await eventually(`${victim} to apply both puts`, async () => (await etcdctl(["get", "after", "--consistency=s", "--print-value-only"], victim)).stdout.trim() === "1");

    const victimId = BigInt(`0x${await memberId(victim)}`).toString();
    await c!.kill(victim, "SIGKILL");
    assert.equal(poisonWal(path.join(c!.dir, "data", victim, "wal")), 1);
    c!.startMember(victim);

    // The alarm is committed through a member that can still apply, so everyone lists it.
    for (const n of others) {
      await eventually(`CORRUPT alarm on ${n}`, async () => (await etcdctl(["alarm", "list"], n)).stdout.includes(`memberID:${victimId} alarm:CORRUPT`));
    }
    const halted = c!.log(victim).split("\n").filter((l) => l.includes("cannot apply committed entry"));
    assert.equal(halted.length, 1, c!.log(victim).slice(-3000));
    assert.match(halted[0]!, /unknown format 127/);
    assert.ok(c!.running(victim));
    assert.equal((await c!.status(victim))?.healthy, false);
    const read = await etcdctl(["get", "after"], victim);
    assert.notEqual(read.code, 0);
    assert.match(read.stderr, /etcdserver: corrupt cluster/);
    assert.match((await etcdctl(["alarm", "list"], victim)).stdout, new RegExp(`memberID:${victimId} alarm:CORRUPT`));

    // etcd's rule while CORRUPT is raised: reads served, writes refused with DATA_LOSS.
    for (const n of others) {
      const get = await etcdctl(["get", "after", "--print-value-only"], n);
      assert.equal(get.stdout.trim(), "1", get.stderr);
      const put = await etcdctl(["put", "blocked", "x"], n);
      assert.notEqual(put.code, 0);
      assert.match(put.stderr, /etcdserver: corrupt cluster/);
    }
    const disarm = await etcdctl(["alarm", "disarm"], leader);
    assert.equal(disarm.code, 0, disarm.stderr);
    for (const n of others) assert.equal((await etcdctl(["put", `again/${n}`, "y"], n)).code, 0);

    // No crash loop: the member restarts, stops at the same entry, and stays up; the others serve.
    await c!.kill(victim, "SIGKILL");
    c!.startMember(victim);
    await eventually(`${victim} to halt again after restart`, async () => c!.log(victim).split("\n").filter((l) => l.includes("cannot apply committed entry")).length === 2);
    await sleep(2000);
    assert.ok(c!.running(victim), c!.log(victim).slice(-2000));
    for (const n of others) assert.equal((await etcdctl(["get", "again/", "--prefix", "--keys-only"], n)).code, 0);
  });

  async function memberId(name: string): Promise<string> {
    const st = await c!.status(name);
    if (st?.id) return st.id;
    throw new Error(`no status from ${name}`);
  }
});
