/**
 * The scenarios' background workload on a stack (certs, day2, deployment .e2e.ts): one writer
 * and one linearizable reader through the stack's load balancer per scenario, its counts kept
 * for the report printed at the end of the file, every member's copy of its keys compared when
 * the scenario finishes. What counts as a pass stays with each scenario's own assertions.
 */
import { strict as assert } from "node:assert";
import type { LabHost } from "../apply/contract";
import { compareMembers, Workload, type WorkloadCounts, type WorkloadFinal } from "../workload";
import type { StackFixture } from "./stack-fixture";

export interface ScenarioWorkloadsOptions {
  /** Key prefix of the file's workloads; scenario n writes under `${prefix}s${n}/`. */
  prefix: string;
  log: (line: string) => void;
  /** The host whose network namespace and client certificate the workload uses (default: the stack's worker). */
  client?: () => Promise<LabHost>;
}

interface Row {
  scenario: string;
  c: WorkloadCounts;
}

export class ScenarioWorkloads {
  private readonly rows: Row[] = [];
  private running: { w: Workload; row: Row } | undefined;
  private started = 0;

  constructor(
    private readonly stack: StackFixture,
    private readonly opts: ScenarioWorkloadsOptions,
  ) {}

  /** Starts the scenario's workload; resolves once the cluster acknowledged its first writes. */
  async start(scenario: string): Promise<Workload> {
    assert.equal(this.running, undefined, "a workload is already running");
    this.started++;
    const lb = this.stack.loadBalancer();
    const client = this.opts.client !== undefined ? await this.opts.client() : this.stack.worker();
    // The client's credentials as they are now (read once: a client that keeps its connection).
    const w = await Workload.start({ worker: client, address: lb.ips[0]!, serverName: lb.dnsName, prefix: `${this.opts.prefix}s${this.started}/` });
    const row: Row = { scenario, c: { writes: { ok: 0, failed: 0 }, reads: { ok: 0, failed: 0, stale: 0 }, errors: [], lastAcked: 0 } };
    this.rows.push(row);
    this.running = { w, row };
    await w.waitForWrites(5);
    return w;
  }

  /** The running scenario's workload. */
  get current(): Workload {
    assert.ok(this.running, "no workload is running");
    return this.running.w;
  }

  /** Records (and logs) the running scenario's counts so far, under `label` from now on when given. */
  record(c: WorkloadCounts, label?: string): void {
    assert.ok(this.running, "no workload is running");
    this.update(this.running.row, c, label);
  }

  /** Stops the workload, records its final counts, checks that every member holds the same keys and every acknowledged write. */
  async finish(label?: string): Promise<WorkloadFinal> {
    assert.ok(this.running, "no workload is running");
    const { w, row } = this.running;
    this.running = undefined;
    const f = await w.stop();
    this.update(row, f, label);
    const members = await compareMembers(
      this.stack.masterNames().map((m) => this.stack.host(m)),
      w.prefix,
      f.acked,
    );
    this.opts.log(`${row.scenario}: every member holds the same ${members[0]!.keys} keys: ${members.map((m) => `${m.host}@rev${m.revision}`).join(", ")}`);
    return f;
  }

  /** For `after`: a scenario failed with its workload running; its counts still belong in the report. */
  async stop(): Promise<void> {
    if (this.running === undefined) return;
    const { w, row } = this.running;
    this.running = undefined;
    await w.stop().then(
      (f) => this.update(row, f, `${row.scenario} (failed)`),
      () => w.kill(),
    );
  }

  /** The per-scenario table of failed requests. */
  printReport(): void {
    if (this.rows.length === 0) return;
    const width = Math.max(...this.rows.map((r) => r.scenario.length));
    console.log("\n      failed requests per scenario (writes failed / reads failed / stale reads, of writes ok / reads ok):");
    for (const { scenario, c } of this.rows) console.log(`        ${scenario.padEnd(width)} ${c.writes.failed} / ${c.reads.failed} / ${c.reads.stale}   of ${c.writes.ok} / ${c.reads.ok}`);
  }

  private update(row: Row, c: WorkloadCounts, label: string | undefined): void {
    row.scenario = label ?? row.scenario;
    row.c = c;
    this.opts.log(
      `${row.scenario}: writes ${c.writes.ok} ok / ${c.writes.failed} failed, linearizable reads ${c.reads.ok} ok / ${c.reads.failed} failed / ${c.reads.stale} stale${c.errors.length ? `; errors: ${c.errors.join(" | ")}` : ""}`,
    );
  }
}
