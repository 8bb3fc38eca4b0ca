/**
 * Membership changes as an operator makes them, for the membership test files: Debian's etcdctl
 * for add/remove/promote, real member processes started with --initial-cluster-state=existing,
 * and a background writer rotating over the members that are up.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { peerUrl } from "../../../components/topology";
import type { TestCluster } from "../harness/cluster";
import { BackgroundWriter, RawPool, eventually, missingWrites, type WireMember } from "./clients";

export interface CtlResult {
  ok: boolean;
  out: string;
}

export class MembershipOps {
  readonly pool: RawPool;
  /** Members the writer may use; it rotates over them and moves on after a failure. */
  writable: string[];
  writer: BackgroundWriter | undefined;
  private turn = 0;

  constructor(
    readonly c: TestCluster,
    readonly prefix: string,
  ) {
    this.pool = new RawPool(c);
    this.writable = c.members.map((m) => m.name);
  }

  startWriter(): BackgroundWriter {
    this.writer = new BackgroundWriter(async (k, v) => {
      const n = this.writable[this.turn++ % this.writable.length]!;
      return this.pool.of(n).put(k, v, 5000);
    }, this.prefix).start();
    return this.writer;
  }

  async close(): Promise<void> {
    await this.writer?.stop();
    this.pool.closeAll();
  }

  etcdctl(args: string[], via: string[]): Promise<CtlResult> {
    return new Promise((resolve) => {
      execFile("etcdctl", [...args, "--command-timeout=20s"], { env: { ...process.env, ...this.c.ctlEnv(via) }, encoding: "utf8" }, (err, stdout, stderr) =>
        resolve({ ok: err === null, out: `${stdout}${stderr}`.trim() }),
      );
    });
  }

  members(via: string): Promise<WireMember[]> {
    return this.pool.of(via).members();
  }

  async hexIdOf(name: string, via: string): Promise<string> {
    const m = (await this.members(via)).find((x) => x.name === name);
    assert.ok(m, `${name} is not in the member list on ${via}`);
    return BigInt(m.ID).toString(16);
  }

  /** Every member in `on` lists exactly `names` as voters and no learner. */
  async votersAre(names: string[], on: string[], timeoutMs = 60_000): Promise<WireMember[]> {
    const want = [...names].sort();
    let list: WireMember[] = [];
    for (const via of on) {
      list = await eventually(
        `voters on ${via} to be ${want.join(",")}`,
        async () => {
          const ms = await this.members(via);
          const got = ms.map((m) => `${m.name}${m.isLearner ? "(learner)" : ""}`).sort();
          return JSON.stringify(got) === JSON.stringify(want) ? ms : undefined;
        },
        timeoutMs,
        200,
      );
    }
    return list;
  }

  /** `member remove` through `via`; waits for the removed process to exit on its own. */
  async remove(name: string, via: string[]): Promise<void> {
    const id = await this.hexIdOf(name, via[0]!);
    this.writable = this.writable.filter((n) => n !== name);
    const r = await this.etcdctl(["member", "remove", id], via);
    assert.ok(r.ok, `member remove ${name}: ${r.out}`);
    await eventually(`${name} to stop after its removal`, async () => (this.c.running(name) ? undefined : true), 30_000, 100);
    this.pool.reset(name);
  }

  /**
   * `member add` (a voter, or a learner with `learner`), then the new process is started with an
   * empty data dir and --initial-cluster-state=existing naming `initialCluster`. Returns the ID
   * (hex) the add answered with. With one voter the add commits only once the new member runs and
   * votes, so the process starts while the add is still waiting.
   */
  async addAndStart(name: string, via: string[], initialCluster: string[], opts: { learner?: boolean } = {}): Promise<string> {
    const m = this.c.member(name);
    fs.rmSync(path.join(this.c.dir, "data", name), { recursive: true, force: true });
    const add = this.etcdctl(["member", "add", name, `--peer-urls=${peerUrl(m)}`, ...(opts.learner ? ["--learner"] : [])], via);
    const early = await Promise.race([add, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000))]);
    this.c.startMember(name, this.c.flags(m, "existing", initialCluster.map((n) => this.c.member(n))));
    const r = early ?? (await add);
    // With one voter the add commits only once the new member has started and voted; on a slow
    // machine that can outlast the request timeout. The change is in the log then and must take
    // effect: callers check the member list either way.
    assert.ok(r.ok || /etcdserver: request timed out/.test(r.out), `member add ${name}: ${r.out}`);
    await this.c.waitHealthy([name], 60_000);
    this.writable.push(name);
    const id = /Member\s+([0-9a-f]+) added/.exec(r.out)?.[1];
    return id ?? (await this.hexIdOf(name, name));
  }

  async assertNoWriteLost(on: string[]): Promise<void> {
    const w = this.writer!;
    await w.stop();
    assert.ok(w.acked.size > 0, "the writer got no write acknowledged");
    for (const n of on) assert.deepEqual(await missingWrites(this.pool.of(n), this.prefix, w.acked), [], `acknowledged writes missing on ${n}`);
  }
}
