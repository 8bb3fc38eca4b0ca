/**
 * Certificates on a running stack (issue 11), run the way `pulumi up` runs them: the real
 * index.ts under the engine's mocks, each plan carried out on a lab of real Debian 13 hosts over
 * SSH through the stack's bastion. One lab and one stack for the whole file (one `up`, then the
 * steps build on each other; a failure stops the rest), with a background writer and a
 * linearizable reader through the load balancer counting every failed request:
 *  1. a deliberately bad leaf (raftkv-1's peer certificate from a forger: the peer CA's name
 *     and key ID, another key) stops the roll at the first member, nothing activated there,
 *     the cluster healthy;
 *  2. a good generation, together with step 1 of both CA rotations (new client CA and new peer
 *     CA signing, old ones still trusted), rolls every member;
 *  3. step 2 of both rotations drops the old CAs.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { publicSubnetCidr } from "../../components/addressing";
import { Applier, ApplyError, type StepReport } from "./apply";
import type { LabHost, Plan, RecordedResource, StackState } from "./apply/contract";
import { planUpdate, runProgram, summarizePlan as summarize, type RunOptions } from "./engine";
import { openLab, type Lab } from "./lab";
import { compareMembers, Workload, type WorkloadCounts } from "./workload";

const VPC_CIDR = "10.84.0.0/16";
const REGION = "eu-west-1";
const INSTANCE = "aws:ec2/instance:Instance";
const LEAF = "tls:index/locallySignedCert:LocallySignedCert";
const PKI_DIR = "/etc/raftkv/pki";

const t0 = Date.now();
const log = (line: string) => console.log(`      [certs ${((Date.now() - t0) / 1000).toFixed(0)} s ${new Date().toISOString().slice(11, 19)}] ${line}`);
const short = (urn: string) => urn.split("::").pop()!;

/** Every certificate of a PEM bundle, in order. */
function certs(bundle: string): X509Certificate[] {
  return (bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}
const cn = (dn: string) => /^CN=(.*)$/m.exec(dn)?.[1] ?? dn;

describe("certificates on a running stack end to end (issue 11)", function () {
  this.timeout(20 * 60_000);
  this.bail(true);

  let lab: Lab;
  let applier: Applier;
  let state: StackState | undefined;
  let keyDir: string;
  let sshPublicKey: string;
  let sshPrivateKey: string;
  let workload: Workload | undefined;
  let scenarioNo = 0;
  const report: Array<{ scenario: string; c: WorkloadCounts }> = [];

  const config = (extra: Record<string, string> = {}): Record<string, string> => ({
    "aws:region": REGION,
    "raftkv:masters": "3",
    "raftkv:workers": "1",
    "raftkv:vpcCidr": VPC_CIDR,
    "raftkv:adminCidrs": JSON.stringify([`${lab.runnerIp}/32`]),
    "raftkv:sshPublicKey": sshPublicKey,
    "raftkv:sshPrivateKey": sshPrivateKey,
    "raftkv:dataVolumeGiB": "1",
    // No S3 in this lab: backups have their own scenario (backup.e2e.ts).
    "raftkv:backup": "false",
    ...extra,
  });

  async function up(cfg: Record<string, string>, opts: RunOptions = {}): Promise<Plan> {
    const next = await runProgram(cfg, state, opts);
    const plan = planUpdate(state, next);
    log(`pulumi up: ${summarize(plan)}`);
    try {
      state = await applier.apply(plan, state);
    } catch (e) {
      // As Pulumi's checkpoint after a failed up: what completed is in the state.
      if (e instanceof ApplyError) state = e.state;
      throw e;
    }
    return plan;
  }

  const resources = (type: string): RecordedResource[] => (state?.resources ?? []).filter((r) => r.type === type);
  const masterNames = (): string[] => resources(INSTANCE).map((r) => r.name).filter((n) => /^raftkv-\d+$/.test(n)).sort();
  const host = (name: string): LabHost => {
    const h = applier.host(name);
    assert.ok(h, `no lab host ${name}`);
    return h;
  };
  const worker = () => host("raftkv-worker-1");
  const ran = (runs: StepReport[], name: string) => runs.some((r) => short(r.urn) === name);
  async function file(h: LabHost, f: string): Promise<string> {
    const r = await h.exec(["cat", f]);
    assert.equal(r.code, 0, `${h.name}:${f}: ${r.stderr}`);
    return r.stdout;
  }
  async function clusterHealthy(): Promise<void> {
    const r = await host("raftkv-1").exec(["raftkvctl", "endpoint", "health", "--cluster"], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `endpoint health --cluster: ${r.stdout}${r.stderr}`);
  }
  /** What a user on the worker does: new connections through the load balancer with the files the stack put there. */
  async function etcdctlOnWorker(key: string): Promise<void> {
    const line = `set -a; . /etc/raftkv/raftkv.env; set +a; etcdctl put ${key} ok >/dev/null && etcdctl get ${key} --print-value-only`;
    const r = await worker().exec(["bash", "-c", line], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `etcdctl on the worker: ${r.stderr}`);
    assert.equal(r.stdout, "ok\n");
  }

  async function startWorkload(name: string): Promise<void> {
    scenarioNo++;
    const lb = applier.loadBalancers();
    assert.equal(lb.length, 1);
    // The worker's own credentials as they are now (read once: a client that keeps its connection).
    workload = await Workload.start({ worker: worker(), address: lb[0]!.ips[0]!, serverName: lb[0]!.dnsName, prefix: `/certs/s${scenarioNo}/` });
    await workload.waitForWrites(5);
    report.push({ scenario: name, c: { writes: { ok: 0, failed: 0 }, reads: { ok: 0, failed: 0, stale: 0 }, errors: [], lastAcked: 0 } });
  }
  /** The counts so far, recorded for the report; asserts none failed. */
  async function noFailures(what: string, c: WorkloadCounts): Promise<void> {
    report[report.length - 1] = { scenario: what, c };
    log(`${what}: writes ${c.writes.ok} ok / ${c.writes.failed} failed, reads ${c.reads.ok} ok / ${c.reads.failed} failed / ${c.reads.stale} stale`);
    assert.deepEqual([c.writes.failed, c.reads.failed, c.reads.stale], [0, 0, 0], `failed requests: ${c.errors.join(" | ")}`);
  }
  async function finishWorkload(what: string): Promise<void> {
    const w = workload!;
    workload = undefined;
    const f = await w.stop();
    await noFailures(what, f);
    const data = await compareMembers(masterNames().map(host), w.prefix, f.acked);
    log(`${what}: every member holds the same ${data[0]!.keys} keys`);
  }

  before(async () => {
    keyDir = mkdtempSync(path.join(os.tmpdir(), "raftkv-certs-key-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "raftkv-certs", "-f", path.join(keyDir, "id")]);
    sshPrivateKey = readFileSync(path.join(keyDir, "id"), "utf8");
    sshPublicKey = readFileSync(path.join(keyDir, "id.pub"), "utf8").trim();
    lab = await openLab({ name: `ce${process.pid % 100000}`, vpcCidr: VPC_CIDR, publicCidr: publicSubnetCidr(VPC_CIDR) });
    applier = new Applier({ lab, log: (l) => (process.env["RAFTKV_E2E_VERBOSE"] ? log(l) : undefined) });
  });

  after(async () => {
    if (workload !== undefined) {
      const w = workload;
      workload = undefined;
      await w.stop().then(
        (f) => (report[report.length - 1]!.c = f),
        () => w.kill(),
      );
    }
    await applier?.close();
    await lab?.close();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    console.log("\n      failed requests per step (writes failed / reads failed / stale reads, of writes ok / reads ok):");
    for (const { scenario, c } of report) console.log(`        ${scenario.padEnd(52)} ${c.writes.failed} / ${c.reads.failed} / ${c.reads.stale}   of ${c.writes.ok} / ${c.reads.ok}`);
    log("certificates suite done");
  });

  it("up: 3 masters and 1 worker, one client CA and one peer CA", async () => {
    await up(config());
    assert.deepEqual(masterNames(), ["raftkv-1", "raftkv-2", "raftkv-3"]);
    await clusterHealthy();
    await startWorkload("bad leaf, then a good generation + CA rotation step 1");
  });

  it("a bad leaf (raftkv-1's new peer certificate forged: the peer CA's name, another key) stops the roll at raftkv-1 before anything is activated; the cluster stays healthy, zero failed requests", async () => {
    const peerLeaf = resources(LEAF).find((r) => /-raftkv-1-peer-g1$/.test(r.name));
    assert.ok(peerLeaf, "raftkv-1's peer certificate resource");
    const forged = peerLeaf.name.replace(/-g1$/, "-g2");
    const activeBefore = await Promise.all(masterNames().map((m) => file(host(m), `${PKI_DIR}/peer.crt`)));
    await assert.rejects(up(config({ "raftkv:certGeneration": "2" }), { forgedCerts: [forged] }), (e: Error) => {
      assert.ok(e instanceof ApplyError, e.message);
      assert.match(e.message, /raftkv-1-roll/);
      assert.match(e.message, /peer\.crt \(.*CN=raftkv-1.*\) is not signed by any CA in peer-ca\.crt/);
      assert.match(e.message, /nothing was activated/);
      return true;
    });
    const runs = applier.lastRun;
    assert.ok(!ran(runs, "raftkv-1-roll"), "raftkv-1's roll did not complete");
    for (const m of ["raftkv-2-roll", "raftkv-3-roll", "raftkv-worker-1-client"]) assert.ok(!ran(runs, m), `${m} never ran`);
    // The forged certificate is staged on raftkv-1, but every member still presents its own.
    const staged = new X509Certificate(await file(host("raftkv-1"), `${PKI_DIR}/staged/peer.crt`));
    assert.equal(cn(staged.subject), "raftkv-1");
    const peerCa = certs(await file(host("raftkv-1"), `${PKI_DIR}/peer-ca.crt`));
    assert.ok(!peerCa.some((ca) => staged.verify(ca.publicKey)), "the staged certificate really is forged");
    assert.deepEqual(await Promise.all(masterNames().map((m) => file(host(m), `${PKI_DIR}/peer.crt`))), activeBefore, "no member activated a new peer certificate");
    await clusterHealthy();
    await noFailures("bad leaf (roll stopped at raftkv-1)", await workload!.waitForWrites(10));
  });

  it("a good generation with step 1 of both CA rotations (client CA 1 -> 2 and peer CA 1 -> 2, old ones still trusted): every host trusts both, then members roll one at a time to leaves of the new CAs; zero failed requests for a client connected before, new connections with the stack's files work", async () => {
    const step1 = {
      "raftkv:certGeneration": "3",
      "raftkv:caGeneration": "2",
      "raftkv:retiredCaGenerations": "[1]",
      "raftkv:peerCaGeneration": "2",
      "raftkv:retiredPeerCaGenerations": "[1]",
    };
    await up(config(step1));
    const rolls = applier.lastRun.filter((r) => /::raftkv-\d+-roll$/.test(r.urn)).sort((a, b) => a.startedMs - b.startedMs);
    assert.deepEqual(rolls.map((r) => short(r.urn)), ["raftkv-1-roll", "raftkv-2-roll", "raftkv-3-roll"]);
    for (let i = 1; i < rolls.length; i++) assert.ok(rolls[i]!.startedMs >= rolls[i - 1]!.endedMs, `${rolls[i]!.urn} overlapped the previous roll`);
    const trusts = applier.lastRun.filter((r) => /-trust$/.test(short(r.urn)));
    assert.ok(trusts.length >= 4 && trusts.every((t) => t.endedMs <= rolls[0]!.startedMs), "every host trusted both CAs before the first member rolled");
    for (const m of masterNames()) {
      const h = host(m);
      assert.deepEqual(certs(await file(h, `${PKI_DIR}/ca.crt`)).map((c) => cn(c.subject)), ["raftkv CA generation 2", "raftkv CA generation 1"], `${m} ca.crt`);
      assert.deepEqual(certs(await file(h, `${PKI_DIR}/peer-ca.crt`)).map((c) => cn(c.subject)), ["raftkv peer CA generation 2", "raftkv peer CA generation 1"], `${m} peer-ca.crt`);
      for (const [f, issuer] of [["server.crt", "raftkv CA generation 2"], ["peer.crt", "raftkv peer CA generation 2"], ["client.crt", "raftkv CA generation 2"]] as const) {
        assert.equal(cn(new X509Certificate(await file(h, `${PKI_DIR}/${f}`)).issuer), issuer, `${m} ${f}`);
      }
      const staged = await h.exec(["sh", "-c", `ls -A ${PKI_DIR}/staged 2>/dev/null`]);
      assert.equal(staged.stdout, "", `${m}: nothing left staged`);
    }
    assert.equal(cn(new X509Certificate(await file(worker(), `${PKI_DIR}/client.crt`)).issuer), "raftkv CA generation 2", "the worker's client certificate");
    await clusterHealthy();
    await etcdctlOnWorker("/certs/step1");
    await finishWorkload("bad leaf, then a good generation + CA rotation step 1");
  });

  it("step 2 of both CA rotations (the old CAs dropped) with clients on the new bundle: zero failed requests; only the new CAs are trusted", async () => {
    await startWorkload("CA rotation step 2 (old CAs dropped)");
    await up(config({ "raftkv:certGeneration": "3", "raftkv:caGeneration": "2", "raftkv:peerCaGeneration": "2" }));
    for (const name of [...masterNames(), "raftkv-worker-1"]) {
      assert.deepEqual(certs(await file(host(name), `${PKI_DIR}/ca.crt`)).map((c) => cn(c.subject)), ["raftkv CA generation 2"], `${name} ca.crt`);
    }
    for (const m of masterNames()) {
      assert.deepEqual(certs(await file(host(m), `${PKI_DIR}/peer-ca.crt`)).map((c) => cn(c.subject)), ["raftkv peer CA generation 2"], `${m} peer-ca.crt`);
    }
    assert.ok(!resources("tls:index/selfSignedCert:SelfSignedCert").some((r) => /-g1$/.test(r.name)), "the old CAs are gone from the stack");
    await clusterHealthy();
    await etcdctlOnWorker("/certs/step2");
    await finishWorkload("CA rotation step 2 (old CAs dropped)");
  });
});
