/**
 * Corruption detection (issue 15): one member's data is made to differ for real (a committed
 * put's value rewritten in its WAL, checksums redone, so it replays without complaint), then
 * - the leader's periodic hash check (--experimental-corrupt-check-time) raises CORRUPT for it,
 *   and the cluster enforces the alarm as etcd 3.4 does (reads served, writes refused with
 *   DATA_LOSS "etcdserver: corrupt cluster");
 * - with --experimental-initial-corrupt-check the corrupt member refuses to start, in one line,
 *   while a healthy member with the same flag starts.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { sleep, TestCluster } from "../harness/cluster";
import { patchWalEntries } from "./wal-tamper";
import { etcdctlOn, eventually as until } from "./clients";

const GOOD = "value-AAAA-5f3a";
const BAD = "value-BBBB-5f3a";

/** Rewrites GOOD to BAD inside the WAL entries that carry it, keeping every record valid. */
function rewriteValue(walDir: string): number {
  return patchWalEntries(walDir, GOOD, (buf, _payloadStart, at) => {
    buf.write(BAD, at, "latin1");
  });
}

describe("cluster: corruption detection", function () {
  this.timeout(240_000);
  let c: TestCluster | undefined;
  const names = () => c!.members.map((m) => m.name);

  before(async () => {
    c = await TestCluster.start({ size: 3, extraFlags: ["--experimental-corrupt-check-time=1s"] });
  });
  after(async () => {
    await c?.destroy();
  });

  const etcdctl = (args: string[], endpoint: string) => etcdctlOn(c!, endpoint, args);
  const eventually = (what: string, f: () => Promise<boolean>) => until(what, async () => ((await f()) ? true : undefined), 60_000, 250);

  it("the leader's periodic check raises CORRUPT for a member whose data differs; the initial check refuses to start it", async () => {
    const leader = await c!.leader();
    const victim = names().find((n) => n !== leader)!;
    const healthy = names().find((n) => n !== leader && n !== victim)!;
    assert.equal((await etcdctl(["put", "ck", GOOD], leader)).code, 0);
    assert.equal((await etcdctl(["put", "after", "1"], leader)).code, 0);
    await eventually(`${victim} to apply`, async () => (await etcdctl(["get", "after", "--consistency=s", "--print-value-only"], victim)).stdout.trim() === "1");
    // All agree so far: no alarm from the periodic check.
    await sleep(2500);
    assert.equal((await etcdctl(["alarm", "list"], leader)).stdout.trim(), "");

    const victimId = BigInt(`0x${(await c!.status(victim))!.id}`).toString();
    await c!.kill(victim, "SIGKILL");
    assert.equal(rewriteValue(path.join(c!.dir, "data", victim, "wal")), 1);
    c!.startMember(victim);
    await eventually(`${victim} to serve the rewritten value`, async () => (await etcdctl(["get", "ck", "--consistency=s", "--print-value-only"], victim)).stdout.trim() === BAD);

    for (const n of [leader, healthy]) {
      await eventually(`CORRUPT alarm for ${victim} on ${n}`, async () => (await etcdctl(["alarm", "list"], n)).stdout.includes(`memberID:${victimId} alarm:CORRUPT`));
    }
    assert.match(c!.log(leader), /data differs from the leader's/);
    const get = await etcdctl(["get", "ck", "--print-value-only"], healthy);
    assert.equal(get.stdout.trim(), GOOD);
    const put = await etcdctl(["put", "blocked", "x"], healthy);
    assert.notEqual(put.code, 0);
    assert.match(put.stderr, /etcdserver: corrupt cluster/);

    // The initial check: the corrupt member refuses to start, in one line; a healthy one starts.
    await c!.kill(victim, "SIGKILL");
    const child = c!.startMember(victim, [...c!.flags(c!.member(victim)), "--experimental-initial-corrupt-check"]);
    const code = await new Promise<number | null>((resolve) => child.once("exit", (cd) => resolve(cd)));
    assert.equal(code, 1, c!.log(victim).slice(-2000));
    assert.match(c!.log(victim), /raftkv: [0-9a-f]+ found data inconsistency with peers/);

    await c!.kill(healthy, "SIGTERM");
    c!.startMember(healthy, [...c!.flags(c!.member(healthy)), "--experimental-initial-corrupt-check"]);
    // It waits (a request timeout) for the stopped victim before giving its verdict on the rest.
    await eventually(`${healthy} to pass its initial check`, async () => /initial corruption check passed/.test(c!.log(healthy)));
    assert.ok(c!.running(healthy));
    await c!.waitHealthy([leader, healthy], 60_000);
    assert.doesNotMatch(c!.log(healthy), /inconsistency/);
  });
});
