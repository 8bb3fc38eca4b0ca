/**
 * Issue 12, bug 3: lease keep-alives are answered only by a leader that a quorum has just
 * confirmed. A leader cut off from every follower still believes it leads for up to an election
 * timeout; a keep-alive it answered from its own clock in that window would tell the client its
 * lease is safe while the rest of the cluster may elect a leader that lets it expire.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { TestCluster } from "../harness/cluster";
import { eventually } from "./clients";

describe("cluster: lease keep-alives need a confirmed leader", function () {
  this.timeout(90_000);
  let c: TestCluster | undefined;
  const paused: string[] = [];

  before(async () => {
    c = await TestCluster.start({ size: 3 });
  });
  after(async () => {
    for (const n of paused) c?.procs.get(n)?.kill("SIGCONT");
    await c?.destroy();
  });

  function etcdctl(args: string[], via: string): { ok: boolean; out: string } {
    // keep-alive --once ignores --command-timeout while the server holds the stream open.
    const r = spawnSync("etcdctl", [...args, "--command-timeout=4s"], { env: { ...process.env, ...c!.ctlEnv([via]) }, encoding: "utf8", timeout: 15_000 });
    return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
  }

  it("a leader that cannot reach a quorum does not answer keep-alives; it does again once the quorum is back", async () => {
    const cl = c!;
    const leader = await cl.leader();
    const grant = etcdctl(["lease", "grant", "60"], leader);
    assert.ok(grant.ok, grant.out);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.out)?.[1];
    assert.ok(id, grant.out);
    assert.ok(etcdctl(["lease", "keep-alive", "--once", id], leader).ok);

    // Freeze both followers: the leader's links stay open, it just hears nothing back.
    for (const n of cl.members.map((m) => m.name).filter((n) => n !== leader)) {
      cl.procs.get(n)!.kill("SIGSTOP");
      paused.push(n);
    }
    const stale = etcdctl(["lease", "keep-alive", "--once", id], leader);
    assert.ok(!stale.ok, `a leader without a quorum answered a keep-alive: ${stale.out}`);

    for (const n of paused.splice(0)) cl.procs.get(n)!.kill("SIGCONT");
    await cl.waitHealthy();
    const next = await cl.leader();
    await eventually("a keep-alive once the quorum is back", async () => (etcdctl(["lease", "keep-alive", "--once", id], next).ok ? true : undefined), 20_000);
  });
});
