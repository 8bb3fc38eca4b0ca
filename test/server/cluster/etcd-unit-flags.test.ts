/**
 * Operators bring etcd unit files (issue 14 #6): boolean flags bare (`--client-cert-auth`,
 * `--peer-client-cert-auth`, as Kubernetes The Hard Way writes them) and values after a space.
 * The same ExecStart line with the binary swapped must start a member: here the real bundle is
 * restarted with its own flags rewritten into that style, and serves etcdctl afterwards.
 */
import { strict as assert } from "node:assert";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { cleanCtlEnv, runCli } from "../../helpers/run-cli";
import { TestCluster } from "../harness/cluster";

/** `--a=b` → `--a b`; `--x=true` of etcd's boolean flags → bare `--x`. */
function etcdUnitStyle(flags: readonly string[]): string[] {
  const bare = new Set(["client-cert-auth", "peer-client-cert-auth"]);
  return flags.flatMap((f) => {
    const m = /^--([^=]+)=(.*)$/.exec(f);
    if (!m) return [f];
    if (bare.has(m[1]!) && m[2] === "true") return [`--${m[1]!}`];
    return [`--${m[1]!}`, m[2]!];
  });
}

describe("cluster: an etcd-style unit's flags", function () {
  this.timeout(120_000);
  let c: TestCluster | undefined;
  after(async () => {
    await c?.destroy();
  });

  it("start a member: bare boolean flags, values after a space", async () => {
    c = await TestCluster.start({ size: 3 });
    const m = c.members[0]!;
    const flags = etcdUnitStyle(c.flags(m));
    assert.ok(flags.includes("--client-cert-auth") && flags.includes("--peer-client-cert-auth"), flags.join(" "));
    await c.kill(m.name, "SIGTERM");
    c.startMember(m.name, flags);
    await c.waitHealthy([m.name], 60_000);
    const env = { ...cleanCtlEnv(), ...c.ctlEnv([m.name]) };
    assert.equal((await runCli(ETCDCTL_BIN, ["put", "unit", "ok"], env, { timeoutMs: 30_000 })).code, 0);
    // Client certificates are still required: the bare flag meant true.
    const noCert = await runCli(ETCDCTL_BIN, ["--dial-timeout=2s", "--command-timeout=3s", "get", "unit"], { ...env, ETCDCTL_CERT: undefined, ETCDCTL_KEY: undefined }, { timeoutMs: 30_000 });
    assert.notEqual(noCert.code, 0);
  });
});
