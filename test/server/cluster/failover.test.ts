/**
 * Failures of real member processes in a 3-member TLS cluster: kill -9 of the leader while a
 * client keeps writing, graceful SIGTERM of the leader (leadership handed over before exit),
 * and the loss of a quorum. Every acknowledged write must survive all of it.
 */
import { strict as assert } from "node:assert";
import { TestCluster } from "../harness/cluster";
import { BackgroundWriter, RawPool, eventually, missingWrites, rejection } from "./clients";

const NO_QUORUM_ERRORS = ["etcdserver: no leader", "etcdserver: request timed out"];

interface LogLine {
  msg?: string;
  leader?: string;
  to?: string;
}

function logLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a line cut by SIGKILL
    }
  }
  return out;
}

describe("cluster: failover of member processes", function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  const names = () => c!.members.map((m) => m.name);

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    pool = new RawPool(c);
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  async function restart(name: string): Promise<void> {
    c!.startMember(name);
    pool!.reset(name);
    await c!.waitHealthy();
  }

  /** Waits until `name` has applied everything the others had applied when we started waiting. */
  async function caughtUp(name: string): Promise<void> {
    const others = await Promise.all(names().filter((n) => n !== name).map((n) => c!.status(n)));
    const target = Math.max(...others.map((s) => s?.appliedIndex ?? 0));
    await eventually(`${name} to apply index ${target}`, async () => ((await c!.status(name))?.appliedIndex ?? 0) >= target || undefined);
  }

  it("elects a new leader after kill -9 of the leader and loses no acknowledged write; the restarted member catches up", async () => {
    const leader = await c!.leader();
    const via = names().find((n) => n !== leader)!;
    const writer = new BackgroundWriter((k, v) => pool!.of(via).put(k, v, 3000), "kill/", 0).start();
    try {
      await writer.progress(100);
      await c!.kill(leader, "SIGKILL");
      const next = await c!.leader(15_000);
      assert.notEqual(next, leader);
      await writer.progress(100);
    } finally {
      await writer.stop();
    }
    const survivors = names().filter((n) => n !== leader);
    for (const n of survivors) assert.deepEqual(await missingWrites(pool!.of(n), "kill/", writer.acked), [], `acknowledged writes missing on ${n}`);

    await restart(leader);
    await caughtUp(leader);
    assert.deepEqual(await missingWrites(pool!.of(leader), "kill/", writer.acked, true), [], "acknowledged writes missing on the restarted member");
  });

  it("hands leadership over on SIGTERM of the leader before exiting with code 0", async () => {
    const leader = await c!.leader();
    const before = (await c!.status(leader))!;
    await pool!.of(leader).put("term/key", "before");
    const proc = c!.procs.get(leader)!;
    await c!.kill(leader, "SIGTERM");
    assert.equal(proc.exitCode, 0, c!.log(leader).slice(-2000));

    // Proof of a hand-over rather than an election after silence: the old leader itself saw
    // another member lead before it stopped.
    const lines = logLines(c!.log(leader));
    const from = lines.map((l) => l.msg).lastIndexOf("shutting down");
    const tail = lines.slice(from);
    const transfer = tail.findIndex((l) => l.msg === "transferring leadership before shutdown");
    assert.ok(transfer >= 0, "no leadership transfer logged");
    const seen = tail.slice(transfer).find((l) => l.msg === "leader changed" && l.leader !== "none" && l.leader !== before.id);
    assert.ok(seen, `the stopping leader never saw a successor:\n${JSON.stringify(tail, null, 1)}`);
    const stoppedAt = tail.findIndex((l) => l.msg === "stopped");
    assert.ok(stoppedAt > tail.indexOf(seen), "the successor appeared only after the member stopped");
    assert.equal(tail[transfer]!.to, seen.leader);

    const next = await c!.leader();
    assert.equal((await c!.status(next))!.id, seen.leader);
    assert.equal(await pool!.of(next).value("term/key"), "before");
    await pool!.of(next).put("term/key", "after");
    await restart(leader);
    await caughtUp(leader);
    assert.equal(await pool!.of(leader).value("term/key"), "after");
  });

  it("refuses writes and linearizable reads without a quorum but answers serializable reads, then resumes", async () => {
    await pool!.of(names()[0]!).put("quorum/key", "committed");
    const leader = await c!.leader();
    const survivor = leader;
    const down = names().filter((n) => n !== survivor);
    await eventually("every member applied quorum/key", async () => {
      const vals = await Promise.all(names().map((n) => pool!.of(n).value("quorum/key", { serializable: true })));
      return vals.every((v) => v === "committed") || undefined;
    });
    await Promise.all(down.map((n) => c!.kill(n, "SIGKILL")));

    const s = pool!.of(survivor);
    // Even while it still believes it leads, nothing can commit: the write must fail, not hang.
    const first = await rejection(s.put("quorum/lost", "x", 20_000));
    assert.ok(NO_QUORUM_ERRORS.includes(first), `write failed with ${first}`);
    await eventually("the survivor to step down", async () => ((await c!.status(survivor))?.leader === "" ? true : undefined));
    assert.equal(await rejection(s.put("quorum/lost", "y", 20_000)), "etcdserver: no leader");
    const read = await rejection(s.get("quorum/key", {}, 20_000));
    assert.ok(NO_QUORUM_ERRORS.includes(read), `linearizable read failed with ${read}`);
    assert.equal(await s.value("quorum/key", { serializable: true }), "committed");

    for (const n of down) {
      c!.startMember(n);
      pool!.reset(n);
    }
    await c!.waitHealthy();
    await eventually("a write after the quorum returned", () => s.put("quorum/after", "ok", 3000));
    for (const n of names()) {
      assert.equal(await pool!.of(n).value("quorum/key"), "committed");
      assert.equal(await pool!.of(n).value("quorum/after"), "ok");
    }
  });
});
