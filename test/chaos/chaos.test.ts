/**
 * The short chaos run inside `npm test`: a 3-member raftkv cluster (the built bundle) in network
 * namespaces with mutual TLS, the register workload over every member, one cycle each of
 * kill -9/restart and a majority/minority partition; the history must be linearizable and every
 * member's HashKV equal. The full run (every nemesis, etcd side by side) is `npm run chaos`.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ensureBuilt } from "../server/harness/cluster";
import { ChaosNet } from "./net";
import { killRestart, partitionHalves } from "./nemesis";
import { runNemesis, type RunResult } from "./suite";

describe("chaos (short run): raftkv in network namespaces under faults", function () {
  this.timeout(300_000);
  let net: ChaosNet | undefined;
  let tmp: string | undefined;

  before(async () => {
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-chaos-test-"));
    net = await ChaosNet.open(4);
  });

  after(async () => {
    await net?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const lines: string[] = [];
  const expectClean = (r: RunResult): void => {
    const why = [r.checkDetail, ...r.errors, ...lines.slice(-40)].join("\n");
    assert.equal(r.verdict, "linearizable", why);
    assert.ok(r.converged, `members' HashKV differ: ${JSON.stringify(r.hashes)}\n${why}`);
    assert.equal(Object.keys(r.hashes).length, 3, why);
    assert.ok(r.ok > 50, `only ${r.ok} successful operations\n${why}`);
    assert.ok(r.heals.every((h) => h.recoveryMs !== null), `a member never took a write after the heal\n${why}`);
    assert.deepEqual(r.errors, []);
  };

  for (const nemesis of [killRestart, partitionHalves]) {
    it(`${nemesis.name}: linearizable, members converge, every member serves after the heal`, async () => {
      const r = await runNemesis({ impl: "raftkv", net: net!, size: 3, nemesis, cycles: 1, faultMs: 3000, dir: tmp!, seed: 14, log: (l) => lines.push(l) });
      expectClean(r);
    });
  }
});
