/**
 * Misconfiguration fails at start: the `raftkv` bundle exits with code 1 and writes exactly one
 * plain line to stderr (besides its JSON log lines) that names the problem, without touching
 * the cluster it was meant to join.
 */
import { strict as assert } from "node:assert";
import * as net from "node:net";
import * as path from "node:path";
import { BUNDLE, TestCluster } from "../harness/cluster";
import { runCli } from "../../helpers/run-cli";
import { RawPool } from "./clients";

function withFlag(flags: string[], name: string, value: string): string[] {
  const out = flags.filter((f) => !f.startsWith(`--${name}=`));
  out.push(`--${name}=${value}`);
  return out;
}

describe("cluster: misconfiguration fails at start", function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  // raftkv-3 is stopped: its ports and data dir are what the bad starts below try to use.
  const victim = "raftkv-3";

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    pool = new RawPool(c);
    await pool.of("raftkv-1").put("mis/key", "kept");
    await c.kill(victim, "SIGTERM");
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  async function failsWith(flags: string[], pattern: RegExp): Promise<string> {
    const r = await runCli(process.execPath, [BUNDLE, ...flags], {}, { timeoutMs: 20_000 });
    // stderr also carries the structured JSON log (as etcd's does); the human line is the rest.
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("{"));
    assert.equal(r.code, 1, `exit code ${String(r.code)} (signal ${String(r.signal)}); stderr:\n${r.stderr}\nstdout:\n${r.stdout.slice(-2000)}`);
    assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
    assert.match(lines[0]!, /^raftkv: /);
    assert.match(lines[0]!, pattern);
    return lines[0]!;
  }

  it("names an unknown --name", async () => {
    const flags = withFlag(c!.flags(c!.member(victim)), "name", "raftkv-9");
    await failsWith(withFlag(flags, "data-dir", path.join(c!.dir, "data", "nobody")), /--initial-cluster has no member named "raftkv-9"/);
  });

  it("names the address of a client, peer or metrics port in use", async () => {
    const m = c!.member(victim);
    for (const port of [m.clientPort, m.peerPort, m.metricsPort]) {
      // Other members keep dialing this member's peer port: drop what they open, or close() waits forever.
      const blocker = net.createServer((s) => s.destroy());
      await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", () => resolve()));
      try {
        await failsWith(c!.flags(m), new RegExp(`127\\.0\\.0\\.1:${port}.*address already in use`));
      } finally {
        await new Promise<void>((resolve) => blocker.close(() => resolve()));
      }
    }
  });

  it("names an unreadable certificate path", async () => {
    const missing = path.join(c!.dir, "pki", "no-such-file.crt");
    for (const flag of ["cert-file", "peer-key-file", "trusted-ca-file"]) {
      await failsWith(withFlag(c!.flags(c!.member(victim)), flag, missing), new RegExp(missing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    }
  });

  it("refuses a data dir that belongs to another cluster", async () => {
    await failsWith(withFlag(c!.flags(c!.member(victim)), "initial-cluster-token", "some-other-cluster"), /data dir .* cluster token/);
  });

  it("leaves the member able to start with its own configuration, and the cluster intact", async () => {
    c!.startMember(victim);
    await c!.waitHealthy();
    assert.equal(await pool!.of(victim).value("mis/key"), "kept");
  });
});
