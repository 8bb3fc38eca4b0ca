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
import { X509Certificate } from "node:crypto";
import { ApplyError, type StepReport } from "./apply";
import type { LabHost } from "./apply/contract";
import type { ScenarioWorkloads } from "./lib/scenario-workloads";
import { StackFixture } from "./lib/stack-fixture";
import { suiteLog, urnName as short } from "./lib/suite-log";
import type { WorkloadCounts } from "./workload";

const VPC_CIDR = "10.84.0.0/16";
const LEAF = "tls:index/locallySignedCert:LocallySignedCert";
const PKI_DIR = "/etc/raftkv/pki";

const log = suiteLog("certs");

/** Every certificate of a PEM bundle, in order. */
function certs(bundle: string): X509Certificate[] {
  return (bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}
const cn = (dn: string) => /^CN=(.*)$/m.exec(dn)?.[1] ?? dn;

describe("certificates on a running stack end to end (issue 11)", function () {
  this.timeout(20 * 60_000);
  this.bail(true);

  let stack: StackFixture;
  let workloads: ScenarioWorkloads;

  const ran = (runs: StepReport[], name: string) => runs.some((r) => short(r.urn) === name);
  async function file(h: LabHost, f: string): Promise<string> {
    const r = await h.exec(["cat", f]);
    assert.equal(r.code, 0, `${h.name}:${f}: ${r.stderr}`);
    return r.stdout;
  }
  async function clusterHealthy(): Promise<void> {
    const r = await stack.host("raftkv-1").exec(["raftkvctl", "endpoint", "health", "--cluster"], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `endpoint health --cluster: ${r.stdout}${r.stderr}`);
  }
  /** What a user on the worker does: new connections through the load balancer with the files the stack put there. */
  async function etcdctlOnWorker(key: string): Promise<void> {
    const line = `set -a; . /etc/raftkv/raftkv.env; set +a; etcdctl put ${key} ok >/dev/null && etcdctl get ${key} --print-value-only`;
    const r = await stack.worker().exec(["bash", "-c", line], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `etcdctl on the worker: ${r.stderr}`);
    assert.equal(r.stdout, "ok\n");
  }

  /** The counts so far, recorded for the report under `what`; asserts none failed. */
  function noFailures(what: string, c: WorkloadCounts): void {
    workloads.record(c, what);
    assert.deepEqual([c.writes.failed, c.reads.failed, c.reads.stale], [0, 0, 0], `failed requests: ${c.errors.join(" | ")}`);
  }
  /** Stops the workload (every member holds its acknowledged writes); asserts none failed. */
  async function finishWorkload(what: string): Promise<void> {
    const f = await workloads.finish(what);
    assert.deepEqual([f.writes.failed, f.reads.failed, f.reads.stale], [0, 0, 0], `failed requests: ${f.errors.join(" | ")}`);
  }

  before(async () => {
    // No S3 in this lab (backups off): backups have their own scenario (backup.e2e.ts).
    stack = await StackFixture.open({ labName: `ce${process.pid % 100000}`, vpcCidr: VPC_CIDR, keyLabel: "raftkv-certs", log });
    // The worker's own credentials: a client connected before the rotations, kept through them.
    workloads = stack.workloads({ prefix: "/certs/", log });
  });

  after(async () => {
    await stack?.close();
    log("certificates suite done");
  });

  it("up: 3 masters and 1 worker, one client CA and one peer CA", async () => {
    await stack.up(stack.config());
    assert.deepEqual(stack.masterNames(), ["raftkv-1", "raftkv-2", "raftkv-3"]);
    await clusterHealthy();
    await workloads.start("bad leaf, then a good generation + CA rotation step 1");
  });

  it("a bad leaf (raftkv-1's new peer certificate forged: the peer CA's name, another key) stops the roll at raftkv-1 before anything is activated; the cluster stays healthy, zero failed requests", async () => {
    const peerLeaf = stack.resources(LEAF).find((r) => /-raftkv-1-peer-g1$/.test(r.name));
    assert.ok(peerLeaf, "raftkv-1's peer certificate resource");
    const forged = peerLeaf.name.replace(/-g1$/, "-g2");
    const activeBefore = await Promise.all(stack.masterNames().map((m) => file(stack.host(m), `${PKI_DIR}/peer.crt`)));
    await assert.rejects(stack.up(stack.config({ "raftkv:certGeneration": "2" }), { forgedCerts: [forged] }), (e: Error) => {
      assert.ok(e instanceof ApplyError, e.message);
      assert.match(e.message, /raftkv-1-roll/);
      assert.match(e.message, /peer\.crt \(.*CN=raftkv-1.*\) is not signed by any CA in peer-ca\.crt/);
      assert.match(e.message, /nothing was activated/);
      return true;
    });
    const runs = stack.applier.lastRun;
    assert.ok(!ran(runs, "raftkv-1-roll"), "raftkv-1's roll did not complete");
    for (const m of ["raftkv-2-roll", "raftkv-3-roll", "raftkv-worker-1-client"]) assert.ok(!ran(runs, m), `${m} never ran`);
    // The forged certificate is staged on raftkv-1, but every member still presents its own.
    const staged = new X509Certificate(await file(stack.host("raftkv-1"), `${PKI_DIR}/staged/peer.crt`));
    assert.equal(cn(staged.subject), "raftkv-1");
    const peerCa = certs(await file(stack.host("raftkv-1"), `${PKI_DIR}/peer-ca.crt`));
    assert.ok(!peerCa.some((ca) => staged.verify(ca.publicKey)), "the staged certificate really is forged");
    assert.deepEqual(await Promise.all(stack.masterNames().map((m) => file(stack.host(m), `${PKI_DIR}/peer.crt`))), activeBefore, "no member activated a new peer certificate");
    await clusterHealthy();
    noFailures("bad leaf (roll stopped at raftkv-1)", await workloads.current.waitForWrites(10));
  });

  it("a good generation with step 1 of both CA rotations (client CA 1 -> 2 and peer CA 1 -> 2, old ones still trusted): every host trusts both, then members roll one at a time to leaves of the new CAs; zero failed requests for a client connected before, new connections with the stack's files work", async () => {
    const step1 = {
      "raftkv:certGeneration": "3",
      "raftkv:caGeneration": "2",
      "raftkv:retiredCaGenerations": "[1]",
      "raftkv:peerCaGeneration": "2",
      "raftkv:retiredPeerCaGenerations": "[1]",
    };
    await stack.up(stack.config(step1));
    const rolls = stack.applier.lastRun.filter((r) => /::raftkv-\d+-roll$/.test(r.urn)).sort((a, b) => a.startedMs - b.startedMs);
    assert.deepEqual(rolls.map((r) => short(r.urn)), ["raftkv-1-roll", "raftkv-2-roll", "raftkv-3-roll"]);
    for (let i = 1; i < rolls.length; i++) assert.ok(rolls[i]!.startedMs >= rolls[i - 1]!.endedMs, `${rolls[i]!.urn} overlapped the previous roll`);
    const trusts = stack.applier.lastRun.filter((r) => /-trust$/.test(short(r.urn)));
    assert.ok(trusts.length >= 4 && trusts.every((t) => t.endedMs <= rolls[0]!.startedMs), "every host trusted both CAs before the first member rolled");
    for (const m of stack.masterNames()) {
      const h = stack.host(m);
      assert.deepEqual(certs(await file(h, `${PKI_DIR}/ca.crt`)).map((c) => cn(c.subject)), ["raftkv CA generation 2", "raftkv CA generation 1"], `${m} ca.crt`);
      assert.deepEqual(certs(await file(h, `${PKI_DIR}/peer-ca.crt`)).map((c) => cn(c.subject)), ["raftkv peer CA generation 2", "raftkv peer CA generation 1"], `${m} peer-ca.crt`);
      for (const [f, issuer] of [["server.crt", "raftkv CA generation 2"], ["peer.crt", "raftkv peer CA generation 2"], ["client.crt", "raftkv CA generation 2"]] as const) {
        assert.equal(cn(new X509Certificate(await file(h, `${PKI_DIR}/${f}`)).issuer), issuer, `${m} ${f}`);
      }
      const staged = await h.exec(["sh", "-c", `ls -A ${PKI_DIR}/staged 2>/dev/null`]);
      assert.equal(staged.stdout, "", `${m}: nothing left staged`);
    }
    assert.equal(cn(new X509Certificate(await file(stack.worker(), `${PKI_DIR}/client.crt`)).issuer), "raftkv CA generation 2", "the worker's client certificate");
    await clusterHealthy();
    await etcdctlOnWorker("/certs/step1");
    await finishWorkload("bad leaf, then a good generation + CA rotation step 1");
  });

  it("step 2 of both CA rotations (the old CAs dropped) with clients on the new bundle: zero failed requests; only the new CAs are trusted", async () => {
    await workloads.start("CA rotation step 2 (old CAs dropped)");
    await stack.up(stack.config({ "raftkv:certGeneration": "3", "raftkv:caGeneration": "2", "raftkv:peerCaGeneration": "2" }));
    for (const name of [...stack.masterNames(), "raftkv-worker-1"]) {
      assert.deepEqual(certs(await file(stack.host(name), `${PKI_DIR}/ca.crt`)).map((c) => cn(c.subject)), ["raftkv CA generation 2"], `${name} ca.crt`);
    }
    for (const m of stack.masterNames()) {
      assert.deepEqual(certs(await file(stack.host(m), `${PKI_DIR}/peer-ca.crt`)).map((c) => cn(c.subject)), ["raftkv peer CA generation 2"], `${m} peer-ca.crt`);
    }
    assert.ok(!stack.resources("tls:index/selfSignedCert:SelfSignedCert").some((r) => /-g1$/.test(r.name)), "the old CAs are gone from the stack");
    await clusterHealthy();
    await etcdctlOnWorker("/certs/step2");
    await finishWorkload("CA rotation step 2 (old CAs dropped)");
  });
});
