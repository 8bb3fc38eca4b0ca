/**
 * One stack on one lab, as the deployment scenarios (certs, day2, deployment, backup .e2e.ts)
 * use it: an SSH key for the stack, a lab of real hosts, the applier, optionally s3rver for the
 * backups, the stack config every scenario starts from, `pulumi up` / `pulumi destroy` (program
 * run under the engine's mocks, plan, apply) and the state's resources and hosts.
 *
 * Each file keeps its own lab name and VPC CIDR (they must not collide when files run one
 * after the other with leftovers, see the team's table) and its own scenarios and assertions.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { hostAddress, publicSubnetCidr } from "../../../components/addressing";
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from "../../helpers/s3-server";
import { Applier, ApplyError } from "../apply";
import type { LabHost, Plan, RecordedResource, StackState } from "../apply/contract";
import { planDestroy, planUpdate, runProgram, summarizePlan, type RunOptions } from "../engine";
import { openLab, type Lab, type NetNs } from "../lab";
import { ScenarioWorkloads, type ScenarioWorkloadsOptions } from "./scenario-workloads";

export const REGION = "eu-west-1";
export const INSTANCE = "aws:ec2/instance:Instance";
const BUCKET = "aws:s3/bucket:Bucket";

export interface StackFixtureOptions {
  /** The file's own lab name ([a-z0-9]{1,8}: its prefix and the runner's pid). */
  labName: string;
  /** The file's own VPC; the lab's public subnet is the stack's (publicSubnetCidr). */
  vpcCidr: string;
  /** Names the SSH key (its comment) and its temp directory, e.g. "raftkv-certs". */
  keyLabel: string;
  log: (line: string) => void;
  /**
   * Backups on, to s3rver on this port at .200 of the public subnet (the hosts reach it through
   * the VPC, the runner directly). Without it the stack runs with raftkv:backup=false.
   */
  s3Port?: number;
}

export class StackFixture {
  /** What the last `up`/`destroy` left, as Pulumi's checkpoint (a failed run keeps what completed). */
  state: StackState | undefined;
  /** The bucket the last program run declared (it outlives destroy: retainOnDelete). */
  bucket: string | undefined;
  private lab_: Lab | undefined;
  private applier_: Applier | undefined;
  private s3ns: NetNs | undefined;
  private s3: S3Server | undefined;
  private readonly namespaces: NetNs[] = [];
  private readonly workloadSets: ScenarioWorkloads[] = [];
  private readonly keyDir: string;
  private readonly sshPublicKey: string;
  private readonly sshPrivateKey: string;

  private constructor(private readonly opts: StackFixtureOptions) {
    this.keyDir = mkdtempSync(path.join(os.tmpdir(), `${opts.keyLabel}-key-`));
    try {
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", opts.keyLabel, "-f", path.join(this.keyDir, "id")]);
      this.sshPrivateKey = readFileSync(path.join(this.keyDir, "id"), "utf8");
      this.sshPublicKey = readFileSync(path.join(this.keyDir, "id.pub"), "utf8").trim();
    } catch (e) {
      rmSync(this.keyDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** The key, the lab, the applier and (with s3Port) s3rver; whatever was opened is closed again if a later part fails. */
  static async open(opts: StackFixtureOptions): Promise<StackFixture> {
    const f = new StackFixture(opts);
    try {
      f.lab_ = await openLab({ name: opts.labName, vpcCidr: opts.vpcCidr, publicCidr: publicSubnetCidr(opts.vpcCidr) });
      f.applier_ = new Applier({ lab: f.lab_, log: (l) => (process.env["RAFTKV_E2E_VERBOSE"] ? opts.log(l) : undefined) });
      if (opts.s3Port !== undefined) {
        const ip = hostAddress(publicSubnetCidr(opts.vpcCidr), 200);
        const ns = (f.s3ns = await f.lab_.addNamespace("s3", [ip]));
        f.s3 = await startS3Server({ address: ip, port: opts.s3Port, bucket: "raftkv-e2e-unused", spawner: (argv) => ns.spawn(argv, { stdio: ["ignore", "pipe", "pipe"] }) });
        process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] = "true";
      }
    } catch (e) {
      await f.close();
      throw e;
    }
    return f;
  }

  get lab(): Lab {
    assert.ok(this.lab_, "the lab is not open");
    return this.lab_;
  }
  get applier(): Applier {
    assert.ok(this.applier_, "the applier is not open");
    return this.applier_;
  }

  /**
   * The stack config the scenarios start from: 3 masters, 1 worker, 1 GiB data volumes, the
   * runner as the only admin CIDR, the stack's SSH key; backups to s3rver (or off without it);
   * then `settings` over all of it.
   */
  config(settings: Record<string, string> = {}): Record<string, string> {
    const backups: Record<string, string> =
      this.s3 === undefined
        ? { "raftkv:backup": "false" }
        : {
            "raftkv:backupS3Endpoint": this.s3.endpoint,
            "raftkv:backupS3AccessKeyId": S3RVER_CREDENTIALS.accessKeyId,
            "raftkv:backupS3SecretAccessKey": S3RVER_CREDENTIALS.secretAccessKey,
          };
    return {
      "aws:region": REGION,
      "raftkv:masters": "3",
      "raftkv:workers": "1",
      "raftkv:vpcCidr": this.opts.vpcCidr,
      "raftkv:adminCidrs": JSON.stringify([`${this.lab.runnerIp}/32`]),
      "raftkv:sshPublicKey": this.sshPublicKey,
      "raftkv:sshPrivateKey": this.sshPrivateKey,
      "raftkv:dataVolumeGiB": "1",
      ...backups,
      ...settings,
    };
  }

  /** `pulumi up` with this config: run the program, plan against the state, apply. */
  async up(cfg: Record<string, string>, opts: RunOptions = {}): Promise<Plan> {
    const next = await runProgram(cfg, this.state, opts);
    const plan = planUpdate(this.state, next);
    // The bucket the program declares exists in s3rver before any host talks to it (as S3 creates it first).
    const b = next.resources.find((r) => r.type === BUCKET);
    if (b !== undefined) {
      this.bucket = String(b.outputs["bucket"]);
      if (this.s3 !== undefined) await this.createBucket(this.bucket);
    }
    this.opts.log(`pulumi up: ${summarizePlan(plan)}`);
    await this.apply(plan);
    return plan;
  }

  /** `pulumi destroy`. */
  async destroy(): Promise<Plan> {
    assert.ok(this.state, "no stack to destroy");
    const plan = planDestroy(this.state);
    this.opts.log(`pulumi destroy: ${summarizePlan(plan)}`);
    await this.apply(plan);
    return plan;
  }

  private async apply(plan: Plan): Promise<void> {
    try {
      this.state = await this.applier.apply(plan, this.state);
    } catch (e) {
      // As Pulumi's checkpoint after a failed run: what completed is in the state.
      if (e instanceof ApplyError) this.state = e.state;
      throw e;
    }
  }

  resources(type: string): RecordedResource[] {
    return (this.state?.resources ?? []).filter((r) => r.type === type);
  }
  instances(): RecordedResource[] {
    return this.resources(INSTANCE);
  }
  /** raftkv-1, raftkv-2, ...: the masters' instance names, sorted. */
  masterNames(): string[] {
    return this.instances()
      .map((r) => r.name)
      .filter((n) => /^raftkv-\d+$/.test(n))
      .sort();
  }
  /** The lab host of the instance named `name`; fails the test when there is none. */
  host(name: string): LabHost {
    const h = this.applier.host(name);
    assert.ok(h, `no lab host ${name}`);
    return h;
  }
  worker(): LabHost {
    return this.host("raftkv-worker-1");
  }
  /** The stack's one load balancer. */
  loadBalancer(): { dnsName: string; ips: string[] } {
    const lbs = this.applier.loadBalancers();
    assert.equal(lbs.length, 1, "one load balancer");
    return lbs[0]!;
  }

  /** A bare namespace on the VPC bridge (e.g. a client outside the hosts), closed with the stack. */
  async addNamespace(name: string, ips: string[]): Promise<NetNs> {
    const ns = await this.lab.addNamespace(name, ips);
    this.namespaces.push(ns);
    return ns;
  }

  /** The scenarios' workloads on this stack: a running one is stopped, and their report printed, by close(). */
  workloads(opts: ScenarioWorkloadsOptions): ScenarioWorkloads {
    const w = new ScenarioWorkloads(this, opts);
    this.workloadSets.push(w);
    return w;
  }

  /** An S3 client of s3rver for `f` (destroyed afterwards). */
  async withS3<T>(f: (c: S3Client) => Promise<T>): Promise<T> {
    assert.ok(this.s3, "this stack has no S3 server");
    const client = new S3Client({ region: REGION, endpoint: this.s3.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
    try {
      return await f(client);
    } finally {
      client.destroy();
    }
  }
  private async createBucket(name: string): Promise<void> {
    await this.withS3((c) => c.send(new CreateBucketCommand({ Bucket: name }))).catch((e: Error) => {
      if (e.name !== "BucketAlreadyOwnedByYou" && e.name !== "BucketAlreadyExists") throw e;
    });
  }
  /** The object keys in the stack's bucket (the one in the state), sorted. */
  async bucketKeys(): Promise<string[]> {
    const bucket = this.resources(BUCKET)[0];
    assert.ok(bucket, "the stack has a backup bucket");
    const out = await this.withS3((c) => c.send(new ListObjectsV2Command({ Bucket: String(bucket.outputs["bucket"]) })));
    return (out.Contents ?? []).map((o) => o.Key!).sort();
  }

  /**
   * Everything the fixture opened, in reverse: a running workload (its counts still belong in the
   * report), the namespaces added, the forwarders, s3rver and its namespace, the lab (hosts,
   * network), the key; then the workloads' report.
   */
  async close(): Promise<void> {
    // Each part even when an earlier one failed (the lab's hosts above all); the first error is thrown.
    const errors: unknown[] = [];
    const parts = [
      ...this.workloadSets.map((w) => () => w.stop()),
      ...this.namespaces.map((ns) => () => ns.close()),
      () => this.applier_?.close(),
      () => this.s3?.stop(),
      () => this.s3ns?.close(),
      () => this.lab_?.close(),
    ];
    for (const part of parts) {
      await Promise.resolve()
        .then(part)
        .catch((e: unknown) => errors.push(e));
    }
    rmSync(this.keyDir, { recursive: true, force: true });
    for (const w of this.workloadSets) w.printReport();
    if (errors.length > 0) throw errors[0];
  }
}
