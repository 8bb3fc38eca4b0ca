import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { planUpdate, runProgram, type RecordedResource, type StackState } from "./index";

const CONFIG = {
  "aws:region": "eu-west-1",
  "raftkv:masters": "3",
  "raftkv:workers": "1",
  "raftkv:adminCidrs": JSON.stringify(["10.99.0.0/16"]),
  "raftkv:sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2e test",
  "raftkv:sshPrivateKey": "PRIVATE-SSH-KEY",
};

describe("e2e engine: runProgram runs the real index.ts under mocks", function () {
  this.timeout(300_000);
  let first: StackState;
  const named = (s: StackState, name: string): RecordedResource => {
    const r = s.resources.find((x) => x.name === name && x.custom);
    assert.ok(r, `no resource ${name}`);
    return r;
  };

  before(async () => {
    first = await runProgram(CONFIG, undefined);
  });

  it("records inputs, secrets, options and dependencies the way the engine sees them", () => {
    const roll = named(first, "raftkv-2-roll");
    assert.equal(roll.type, "command:remote:Command");
    assert.match(roll.urn, /^urn:pulumi:e2e::raftkv::raftkv:index:Cluster\$raftkv:install:ClusterInstall\$command:remote:Command::raftkv-2-roll$/);
    const deps = roll.dependencies.map((u) => u.split("::").pop());
    for (const d of ["raftkv-2-install", "raftkv-1-roll", "raftkv-1-trust", "raftkv-worker-1-trust"]) assert.ok(deps.includes(d), `roll depends on ${d}`);
    // Through its connection: the bastion and the SSH rules, so a destroy deletes them only
    // after the last leave script ran.
    for (const d of ["raftkv-bastion", "raftkv-net-bastion-22-from-admin0", "raftkv-net-masters-22-from-created-bastion"]) assert.ok(deps.includes(d), `roll depends on ${d}`);
    // @pulumi/command's SDK asks the engine to replace on `triggers` changes.
    assert.deepEqual(roll.options.replaceOnChanges, ["triggers[*]"]);
    assert.ok(roll.secretInputs.includes("connection"));
    assert.equal((roll.inputs["connection"] as Record<string, unknown>)["privateKey"], "PRIVATE-SSH-KEY");
    const install = named(first, "raftkv-1-install");
    assert.ok(install.secretInputs.includes("stdin"));
    // A property dependency: the certificate depends on its CSR through certRequestPem.
    const cert = named(first, "raftkv-pki-raftkv-1-server-g1");
    assert.ok(cert.dependencies.some((u) => u.endsWith("::raftkv-pki-raftkv-1-server-g1-csr")));
    const upload = first.resources.find((r) => r.type === "command:remote:CopyToRemote")!;
    const source = upload.inputs["source"] as Record<string, unknown>;
    assert.equal(source["$asset"], "file");
    // The program built the bundle it ships (no `npm run build` needed), protos inside.
    const shipped = readFileSync(String(source["path"]));
    assert.equal(source["hash"], createHash("sha256").update(shipped).digest("hex"));
    assert.match(shipped.toString(), /service KV \{/);
  });

  it("returns what the providers would: real certificates, instance addresses, the NLB's DNS name, the AMI", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "raftkv-engine-test-"));
    try {
      const ca = named(first, "raftkv-pki-ca-g1").outputs["certPem"] as string;
      const leaf = named(first, "raftkv-pki-raftkv-1-server-g1").outputs["certPem"] as string;
      writeFileSync(path.join(dir, "ca.pem"), ca);
      writeFileSync(path.join(dir, "leaf.pem"), leaf);
      assert.match(execFileSync("openssl", ["verify", "-CAfile", path.join(dir, "ca.pem"), path.join(dir, "leaf.pem")]).toString(), /OK/);
      const text = execFileSync("openssl", ["x509", "-noout", "-text", "-in", path.join(dir, "leaf.pem")]).toString();
      const ip = named(first, "raftkv-1").outputs["privateIp"] as string;
      assert.match(text, new RegExp(`IP Address:${ip.replace(/\./g, "\\.")}`));
      assert.match(text, /TLS Web Server Authentication/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const key = named(first, "raftkv-pki-raftkv-1-server-g1-key");
    assert.match(String(key.outputs["privateKeyPem"]), /^-----BEGIN EC PRIVATE KEY-----/);
    const bastion = first.resources.find((r) => r.type === "aws:ec2/instance:Instance" && r.name === "raftkv-bastion")!;
    assert.equal(bastion.outputs["publicIp"], "10.42.255.10", "a public instance's address in the public subnet (E2E network model)");
    assert.equal(first.outputs["bastionAddress"], "10.42.255.10");
    const conn = named(first, "raftkv-1-install").inputs["connection"] as Record<string, Record<string, unknown>>;
    assert.equal(conn["proxy"]!["host"], "10.42.255.10");
    const m1 = named(first, "raftkv-1");
    assert.equal(m1.outputs["privateIp"], m1.inputs["privateIp"]);
    assert.match(m1.id, /^i-[0-9a-f]{17}$/);
    assert.equal(m1.inputs["ami"], "ami-0e2e0debian13a1");
    // The zones from the region's lookup (the mock lists four regular zones out of order and a local zone): sorted, regular, the first three.
    const subnets = first.resources.filter((r) => r.type === "aws:ec2/subnet:Subnet" && r.name.includes("-private-")).map((r) => r.inputs["availabilityZone"]);
    assert.deepEqual(subnets, ["eu-west-1a", "eu-west-1b", "eu-west-1c"]);
    assert.deepEqual((first.outputs["members"] as Array<{ availabilityZone: string }>).map((m) => m.availabilityZone), ["eu-west-1a", "eu-west-1b", "eu-west-1c"]);
    const nlb = first.resources.find((r) => r.type === "aws:lb/loadBalancer:LoadBalancer")!;
    assert.match(String(nlb.outputs["dnsName"]), /^internal-.*\.elb\.eu-west-1\.amazonaws\.com$/);
    assert.equal(first.outputs["clientEndpoint"], `https://${String(nlb.outputs["dnsName"])}:2379`);
  });

  it("a second run keeps ids and computed outputs; a certGeneration bump replaces exactly the leaves and updates the installs", async () => {
    const next = await runProgram({ ...CONFIG, "raftkv:certGeneration": "2" }, first);
    for (const r of next.resources) {
      const old = first.resources.find((x) => x.urn === r.urn);
      if (old) assert.equal(r.id, old.id, `${r.name} keeps its id`);
    }
    assert.equal(named(next, "raftkv-pki-ca-g1").outputs["certPem"], named(first, "raftkv-pki-ca-g1").outputs["certPem"]);
    const { steps } = planUpdate(first, next);
    const byOp = (op: string) => steps.filter((s) => s.op === op).map((s) => s.urn.split("::").pop()!).sort();
    assert.equal(byOp("replace").length, 0);
    assert.ok(byOp("create").every((n) => /-g2(-key|-csr)?$/.test(n)));
    assert.ok(byOp("delete").every((n) => /-g1(-key|-csr)?$/.test(n) && !/-ca-/.test(n)));
    assert.equal(byOp("create").length, byOp("delete").length);
    assert.deepEqual(byOp("update"), ["raftkv-1-install", "raftkv-1-roll", "raftkv-2-install", "raftkv-2-roll", "raftkv-3-install", "raftkv-3-roll", "raftkv-worker-1-client"]);
  });
});
