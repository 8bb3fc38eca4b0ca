/**
 * The applier: carries out an engine Plan on a lab, the way `pulumi up` / `pulumi destroy`
 * carries out its steps.
 *  - A step starts as soon as every step in its `after` list finished, so independent steps
 *    run concurrently (bootstrap members install in parallel, as with the real engine).
 *  - The first failure stops the run like `pulumi up`: steps already running finish, no new
 *    step starts, and the error names the step, the resource and the command's stderr tail.
 *  - A replacement step creates the new resource; the old one is deleted by its own delete
 *    step, which the engine orders (after every other step, or first with deleteBeforeReplace).
 *  - The returned (and, with stateFile, persisted) StackState holds what really exists: the
 *    completed steps applied to the prior state, with real outputs such as a command's stdout.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { LabHost, LabLike, Plan, RecordedResource, StackState, Step } from "./contract";
import { ProviderError, recordedOnly, type ApplyContext, type Provider } from "./provider";
import { copyToRemoteProvider, remoteCommand } from "./providers/command";
import { hostName, instance } from "./providers/instance";
import { LoadBalancers } from "./providers/loadBalancer";
import { volume, volumeAttachment } from "./providers/volume";

export { ProviderError, type Provider, type ApplyContext } from "./provider";

export class ApplyError extends Error {
  override readonly name = "ApplyError";
  constructor(
    message: string,
    /** What exists after the failed run: prior state plus the steps that completed. */
    readonly state: StackState,
  ) {
    super(message);
  }
}

export interface ApplierOptions {
  lab: LabLike;
  /** Where to write the state after every run (JSON). */
  stateFile?: string;
  log?: (line: string) => void;
  /** Replaces the provider of some types (tests of the scheduling itself). */
  providers?: Record<string, Provider>;
}

export interface StepReport {
  index: number;
  op: Step["op"];
  urn: string;
  startedMs: number;
  endedMs: number;
}

export class Applier {
  private readonly lab: LabLike;
  private readonly lbs = new LoadBalancers();
  private readonly providers: Record<string, Provider>;
  readonly workDir: string;
  private live = new Map<string, RecordedResource>();
  /** URNs this run deletes (removed, or the old half of a replacement): deletedWith skips its provider. */
  private deleting = new Set<string>();
  /** Instances whose host finished booting (a host being created gets its entries when done). */
  private readonly booted = new Set<string>();
  private dnsQueue: Promise<void> = Promise.resolve();
  /** Timing of the last run's steps, for the scenarios' assertions on ordering. */
  lastRun: StepReport[] = [];

  constructor(private readonly opts: ApplierOptions) {
    this.lab = opts.lab;
    this.workDir = mkdtempSync(path.join(os.tmpdir(), "raftkv-apply-"));
    this.providers = {
      "aws:ec2/instance:Instance": instance,
      "aws:ebs/volume:Volume": volume,
      "aws:ec2/volumeAttachment:VolumeAttachment": volumeAttachment,
      "aws:lb/loadBalancer:LoadBalancer": this.lbs.loadBalancer,
      "aws:lb/targetGroup:TargetGroup": this.lbs.configuration,
      "aws:lb/listener:Listener": this.lbs.configuration,
      "aws:lb/targetGroupAttachment:TargetGroupAttachment": this.lbs.configuration,
      "command:remote:Command": remoteCommand,
      "command:remote:CopyToRemote": copyToRemoteProvider,
      ...opts.providers,
    };
  }

  /** The load balancers' DNS names and addresses (clients in host namespaces use them). */
  loadBalancers(): Array<{ dnsName: string; ips: string[] }> {
    return this.lbs.list();
  }

  /** The lab host of the instance resource named `name` (its Pulumi resource name). */
  host(name: string): LabHost | undefined {
    return this.lab.host(name);
  }

  private providerFor(type: string): Provider {
    return this.providers[type] ?? recordedOnly;
  }

  private context(): ApplyContext {
    return {
      lab: this.lab,
      workDir: this.workDir,
      live: () => [...this.live.values()],
      hostBooted: (urn) => this.booted.add(urn),
      syncDns: () => this.syncDns(),
      log: (line) => this.opts.log?.(line),
    };
  }

  /**
   * Writes the current VPC DNS entries into every booted host, one sync at a time: a sync that
   * starts after a change (a new host, a new load balancer) always sees it.
   */
  private syncDns(): Promise<void> {
    const run = async () => {
      const entries = this.lbs.dnsEntries();
      for (const urn of this.booted) {
        const r = this.live.get(urn);
        const h = r === undefined ? undefined : this.lab.host(hostName(r));
        if (h === undefined) {
          this.booted.delete(urn);
          continue;
        }
        try {
          await h.setHostsEntries(entries);
        } catch (e) {
          // Terminated meanwhile (its delete step started after this sync did): nothing to write.
          if (this.live.get(urn) === r) throw e;
          this.booted.delete(urn);
        }
      }
    };
    this.dnsQueue = this.dnsQueue.then(run, run);
    return this.dnsQueue;
  }

  private async runStep(step: Step): Promise<void> {
    const ctx = this.context();
    switch (step.op) {
      case "create": {
        const r = need(step.new, step);
        const placeholder = { ...r };
        this.live.set(r.urn, placeholder); // visible to its own provider (e.g. instance lookups)
        try {
          const outputs = await this.providerFor(r.type).create(r, ctx);
          this.live.set(r.urn, { ...r, outputs });
        } catch (e) {
          this.live.delete(r.urn);
          throw e;
        }
        return;
      }
      case "update": {
        const old = need(step.old, step);
        const next = need(step.new, step);
        const outputs = await this.providerFor(next.type).update(old, next, step.diffKeys, ctx);
        this.live.set(next.urn, { ...next, outputs });
        return;
      }
      case "replace": {
        // Creates the replacement only: the engine plans the old resource's deletion as its own
        // "delete" step (before this one when deleteBeforeReplace, in the final delete phase
        // otherwise), see test/e2e/engine/types.ts.
        const old = need(step.old, step);
        const next = need(step.new, step);
        this.live.set(next.urn, { ...next });
        try {
          this.live.set(next.urn, { ...next, outputs: await this.providerFor(next.type).create(next, ctx) });
        } catch (e) {
          if (step.deleteBeforeReplace) this.live.delete(next.urn);
          else this.live.set(old.urn, old);
          throw e;
        }
        return;
      }
      case "delete": {
        const old = need(step.old, step);
        // Gone from what the providers see before its provider runs, as in the cloud: e.g. a
        // TargetGroupAttachment's delete reconfigures the load balancer from the live resources,
        // and the target must be deregistered by it, not by the next reconfiguration. (The old
        // half of a create-before-delete replacement: the URN already names the replacement.)
        const current = this.live.get(old.urn);
        const itself = current?.id === old.id;
        if (itself) this.live.delete(old.urn);
        try {
          // deletedWith: the provider's delete is not called when the named resource is deleted
          // in the same run, removed or replaced (pulumi's DeleteStep.Apply: isDeletedWith against
          // the step generator's deletes, the old halves of replacements included).
          const deletedWith = old.options.deletedWith !== undefined && this.deleting.has(old.options.deletedWith);
          if (old.options.retainOnDelete !== true && !deletedWith) await this.providerFor(old.type).delete(old, ctx);
        } catch (e) {
          if (itself && !this.live.has(old.urn)) this.live.set(old.urn, current);
          throw e;
        }
        return;
      }
    }
  }

  /** Carries out a plan; `prior` is the state the plan was computed from. */
  async apply(plan: Plan, prior: StackState | undefined): Promise<StackState> {
    this.live = new Map((prior?.resources ?? []).map((r) => [r.urn, r]));
    this.deleting = new Set(plan.steps.filter((s) => s.op === "delete").map((s) => s.urn));
    const steps = plan.steps;
    const done = new Set<number>();
    const started = new Set<number>();
    const running = new Map<number, Promise<void>>();
    let failure: string | undefined;
    this.lastRun = [];
    const t0 = Date.now();

    const startReady = () => {
      for (let i = 0; i < steps.length; i++) {
        if (started.has(i) || failure !== undefined) continue;
        const step = steps[i]!;
        if (!step.after.every((a) => done.has(a))) continue;
        started.add(i);
        const report: StepReport = { index: i, op: step.op, urn: step.urn, startedMs: Date.now() - t0, endedMs: 0 };
        this.opts.log?.(`[${report.startedMs} ms] step ${i} ${step.op} ${step.urn}`);
        running.set(
          i,
          this.runStep(step).then(
            () => {
              report.endedMs = Date.now() - t0;
              this.lastRun.push(report);
              done.add(i);
              running.delete(i);
            },
            (e: unknown) => {
              running.delete(i);
              failure ??= describeFailure(i, step, e);
            },
          ),
        );
      }
    };

    startReady();
    while (running.size > 0) {
      await Promise.race(running.values());
      startReady();
    }
    if (failure === undefined && done.size < steps.length) {
      failure = `steps ${steps.map((_, i) => i).filter((i) => !done.has(i)).join(", ")} never became ready (their "after" lists form a cycle or name missing steps)`;
    }
    const state = this.stateAfter(plan, prior, failure === undefined);
    if (this.opts.stateFile !== undefined) writeFileSync(this.opts.stateFile, JSON.stringify(state, null, 2));
    if (failure !== undefined) throw new ApplyError(failure, state);
    return state;
  }

  private stateAfter(plan: Plan, prior: StackState | undefined, complete: boolean): StackState {
    const order = [...plan.next.resources.map((r) => r.urn), ...(prior?.resources ?? []).map((r) => r.urn)];
    const seen = new Set<string>();
    const resources: RecordedResource[] = [];
    for (const urn of order) {
      if (seen.has(urn)) continue;
      seen.add(urn);
      const r = this.live.get(urn);
      if (r !== undefined) resources.push(r);
    }
    return { resources, outputs: complete ? plan.next.outputs : (prior?.outputs ?? {}) };
  }

  /** Stops the forwarders and removes the scratch directory (hosts belong to the lab). */
  async close(): Promise<void> {
    await this.lbs.close();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

function need(r: RecordedResource | undefined, step: Step): RecordedResource {
  if (r === undefined) throw new ProviderError(`a ${step.op} step for ${step.urn} lacks its ${step.op === "delete" ? "old" : "new"} resource`);
  return r;
}

function describeFailure(i: number, step: Step, e: unknown): string {
  const err = e as Error;
  const lines = [`step ${i} (${step.op} ${step.urn}) failed: ${err.message}`];
  if (e instanceof ProviderError && e.stderrTail !== undefined && e.stderrTail !== "") {
    lines.push("--- stderr (tail) ---", e.stderrTail);
  }
  return lines.join("\n");
}
