import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { masterCountProblem, memberCertProfiles, clientCertProfile, quorum, renderMemberFlags } from "../../components/topology";
import { joinPlan } from "../../components/membership";
import { resolveSettings, type RawSettings } from "../../components/settings";
import { memberBudget } from "../../components/instanceTypes";
import { resolveBackupSettings } from "../../components/backupSettings";
import type { RaftkvCluster as RaftkvClusterT } from "../../components/cluster";
import type { RawBackupSettings as RawBackup } from "../../components/backupSettings";

/** What the mock engine saw for one resource. */
interface Rec {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const LB_DNS = "internal-raftkv-lb-123.elb.eu-west-1.amazonaws.com";
const BASTION_PUBLIC_IP = "203.0.113.10";
let records: Rec[] = [];
const invokes: pulumi.runtime.MockCallArgs[] = [];
/** dependsOn of every resource, by name, captured with a transformation on the top component. */
let deps = new Map<string, string[]>();
/** deletedWith of every resource that sets it, by name. */
let deletedWith = new Map<string, string>();

function isSecretValue(v: unknown): boolean {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270";
}
function reveal(v: unknown): unknown {
  return isSecretValue(v) ? (v as { value: unknown }).value : v;
}
function str(v: unknown): string {
  const r = reveal(v);
  assert.equal(typeof r, "string", `expected a string, got ${JSON.stringify(r)}`);
  return r as string;
}
/** The script inside `sudo bash -c '<script>' label`. */
function scriptOf(cmd: string): string {
  const m = /^sudo bash -c '([\s\S]*)' '[^']*'$/.exec(cmd);
  assert.ok(m, "command is a sudo bash -c invocation");
  return m[1]!.replace(/'\\''/g, "'");
}

function fakePem(kind: string, name: string): string {
  return `-----BEGIN ${kind}-----\n${Buffer.from(name).toString("base64")}\n-----END ${kind}-----\n`;
}

const mocks: pulumi.runtime.Mocks = {
  newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
    records.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
    const state: Record<string, unknown> = { ...args.inputs };
    switch (args.type) {
      case "tls:index/privateKey:PrivateKey":
        state["privateKeyPem"] = fakePem("PRIVATE KEY", args.name);
        if (args.inputs["algorithm"] === "ED25519") {
          state["privateKeyOpenssh"] = fakePem("OPENSSH PRIVATE KEY", args.name);
          state["publicKeyOpenssh"] = `ssh-ed25519 AAAA${Buffer.from(args.name).toString("hex")}\n`;
        }
        break;
      case "tls:index/selfSignedCert:SelfSignedCert":
      case "tls:index/locallySignedCert:LocallySignedCert":
        state["certPem"] = fakePem("CERTIFICATE", args.name);
        break;
      case "tls:index/certRequest:CertRequest":
        state["certRequestPem"] = fakePem("CERTIFICATE REQUEST", args.name);
        break;
      case "aws:lb/loadBalancer:LoadBalancer":
        state["dnsName"] = LB_DNS;
        state["arn"] = `arn:${args.name}`;
        break;
      case "aws:lb/targetGroup:TargetGroup":
        state["arn"] = `arn:${args.name}`;
        break;
      case "aws:ec2/keyPair:KeyPair":
        state["keyName"] = args.name;
        break;
      case "aws:ec2/instance:Instance":
        if (args.inputs["associatePublicIpAddress"] === true) state["publicIp"] = BASTION_PUBLIC_IP;
        break;
      case "command:remote:Command":
        state["stdout"] = "";
        break;
      case "command:local:Command":
        // The image pin prints the image the lookup found.
        state["stdout"] = "ami-0debian13";
        break;
      case "aws:ebs/volume:Volume":
        return { id: `vol-0${Buffer.from(args.name).toString("hex").slice(0, 16)}`, state };
    }
    return { id: `${args.name}-id`, state };
  },
  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    if (args.token === "aws:index/getAvailabilityZones:getAvailabilityZones") {
      invokes.push(args);
      // Listed out of order, one more than needed: the program sorts and takes three.
      return { names: ["eu-west-1d", "eu-west-1b", "eu-west-1a", "eu-west-1c"], zoneIds: ["euw1-az4", "euw1-az2", "euw1-az3", "euw1-az1"], id: "eu-west-1" };
    }
    return args.token === "aws:ec2/getAmi:getAmi" ? { id: "ami-0debian13" } : {};
  },
};

const BASE: RawSettings = { adminCidrs: ["10.99.0.0/16"], sshPublicKey: "ssh-ed25519 AAAAC3Nza test", workers: 2 };
const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

/** Waits until the mock engine has seen every registration the program makes. */
async function settle(): Promise<void> {
  let last = -1;
  let stable = 0;
  while (stable < 40) {
    await new Promise((r) => setTimeout(r, 5));
    if (records.length === last) stable++;
    else {
      stable = 0;
      last = records.length;
    }
  }
}

describe("Pulumi components (setMocks)", function () {
  this.timeout(120_000); // one 7-master program under the mocks can take over 30 s on a loaded machine
  let RaftkvCluster: typeof RaftkvClusterT;

  before(async () => {
    await pulumi.runtime.setMocks(mocks, "raftkv", "test");
    // Loaded only now: the SDK must see the mocks before any resource module is evaluated.
    ({ RaftkvCluster } = require("../../components/cluster") as typeof import("../../components/cluster"));
  });

  async function build(raw: RawSettings, backup?: RawBackup): Promise<{ recs: Rec[]; cluster: RaftkvClusterT }> {
    records = [];
    deps = new Map();
    deletedWith = new Map();
    const names = new Map<pulumi.Resource, string>();
    const capture: pulumi.ResourceTransformation = (a) => {
      names.set(a.resource, a.name);
      const on = a.opts.dependsOn;
      const list = on === undefined ? [] : Array.isArray(on) ? on : [on];
      deps.set(a.name, (list as pulumi.Resource[]).map((r) => names.get(r) ?? "?"));
      if (a.opts.deletedWith !== undefined) deletedWith.set(a.name, names.get(a.opts.deletedWith) ?? "?");
      return undefined;
    };
    const settings = resolveSettings({ ...BASE, ...raw }, { region: "eu-west-1", stack: "test", regionZones: ZONES });
    const cluster = new RaftkvCluster(
      "raftkv",
      {
        settings,
        region: "eu-west-1",
        sshPrivateKey: pulumi.secret("PRIVATE-SSH-KEY"),
        runtimeRevision: "rev1",
        ...(backup !== undefined ? { backup: { settings: resolveBackupSettings(backup, { clusterToken: settings.clusterToken, hasSecretAccessKey: false }) } } : {}),
      },
      { transformations: [capture] },
    );
    await settle();
    return { recs: records, cluster };
  }
  const of = (recs: Rec[], type: string) => recs.filter((r) => r.type === type);
  const byName = (recs: Rec[], name: string) => {
    const r = recs.find((x) => x.name === name);
    assert.ok(r, `no resource named ${name}`);
    return r;
  };

  for (const n of [3, 5, 7]) {
    describe(`${n} masters`, () => {
      let recs: Rec[];
      let cluster: RaftkvClusterT;
      before(async () => {
        ({ recs, cluster } = await build({ masters: n }));
      });

      it("declares the expected resources", () => {
        const workers = 2;
        const count = (t: string) => of(recs, t).length;
        assert.equal(count("aws:ec2/instance:Instance"), n + workers + 1, "masters, workers and the bastion");
        assert.equal(count("aws:lb/targetGroupAttachment:TargetGroupAttachment"), n);
        // Each master's data volume is its own EBS volume, attached to it.
        assert.equal(count("aws:ebs/volume:Volume"), n);
        assert.equal(count("aws:ec2/volumeAttachment:VolumeAttachment"), n);
        // One image pin (every instance type here is x86_64).
        assert.equal(count("command:local:Command"), 1);
        assert.equal(count("aws:ec2/subnet:Subnet"), 3 + 1);
        assert.equal(count("aws:lb/loadBalancer:LoadBalancer"), 1);
        // a client CA and a peer CA; server + peer + ops client per member, admin, workers
        assert.equal(count("tls:index/selfSignedCert:SelfSignedCert"), 2);
        assert.equal(count("tls:index/locallySignedCert:LocallySignedCert"), 3 * n + 1 + workers);
        // + an SSH host key per instance (masters, workers, the bastion)
        assert.equal(count("tls:index/privateKey:PrivateKey"), 3 * n + 1 + workers + 2 + (n + workers + 1));
        // trust per host; volume + install + gate + roll per member; leave per joined member; client install per worker
        assert.equal(count("command:remote:Command"), n + workers + 4 * n + (n - 3) + workers);
        assert.equal(count("command:remote:CopyToRemote"), 2 * n + workers);
        for (const t of ["raftkv:index:Cluster", "raftkv:compute:Bastion", "raftkv:network:Network", "raftkv:pki:Pki", "raftkv:compute:Masters", "raftkv:compute:Workers", "raftkv:loadbalancer:ClientLoadBalancer", "raftkv:install:ClusterInstall"]) {
          assert.equal(count(t), 1, t);
        }
      });

      it("spreads masters round-robin over the zones at their planned addresses, IMDSv2 and encrypted", () => {
        const masters = cluster.members;
        const instances = masters.map((m) => byName(recs, m.name));
        const perZone = ZONES.map((z) => instances.filter((i) => i.inputs["availabilityZone"] === z).length);
        assert.ok(Math.max(...perZone) - Math.min(...perZone) <= 1);
        for (const lost of perZone) assert.ok(n - lost >= quorum(n));
        for (const [i, inst] of instances.entries()) {
          assert.equal(inst.inputs["privateIp"], masters[i]!.privateIp);
          assert.equal((inst.inputs["metadataOptions"] as Record<string, unknown>)["httpTokens"], "required");
          assert.equal((inst.inputs["rootBlockDevice"] as Record<string, unknown>)["encrypted"], true);
          assert.equal(inst.inputs["ebsBlockDevices"], undefined, "the data volume is separate");
          assert.equal(inst.inputs["ami"], "ami-0debian13", "the pinned image");
          const volume = byName(recs, `${masters[i]!.name}-data`);
          assert.equal(volume.inputs["encrypted"], true);
          assert.equal(volume.inputs["availabilityZone"], inst.inputs["availabilityZone"]);
          assert.equal(inst.inputs["associatePublicIpAddress"], false);
        }
      });

      it("security groups: no 0.0.0.0/0 on 22/2379/2380/2381, peers only from masters, SSH only from admins", () => {
        const rules = of(recs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule");
        assert.ok(rules.length > 0);
        const mastersSg = "raftkv-net-masters-id";
        for (const r of rules) {
          assert.notEqual(r.inputs["cidrIpv4"], "0.0.0.0/0", r.name);
          assert.equal(r.inputs["cidrIpv6"], undefined, r.name);
          assert.equal(r.inputs["fromPort"], r.inputs["toPort"], `${r.name} opens a single port`);
          const port = r.inputs["fromPort"];
          if (port === 2380) assert.equal(r.inputs["referencedSecurityGroupId"], mastersSg, r.name);
          // SSH from the admin networks, or from the stack's bastion (whose own group admits only them).
          if (port === 22) assert.ok(r.inputs["cidrIpv4"] === "10.99.0.0/16" || r.inputs["referencedSecurityGroupId"] === "raftkv-net-bastion-id", r.name);
          if (r.inputs["securityGroupId"] === "raftkv-net-bastion-id") assert.deepEqual([port, r.inputs["cidrIpv4"]], [22, "10.99.0.0/16"], r.name);
        }
        const peer = rules.filter((r) => r.inputs["fromPort"] === 2380);
        assert.equal(peer.length, 1);
        const client = rules.filter((r) => r.inputs["fromPort"] === 2379 && r.inputs["securityGroupId"] === mastersSg);
        assert.deepEqual(
          client.map((r) => r.inputs["referencedSecurityGroupId"] ?? r.inputs["cidrIpv4"]).sort(),
          ["10.99.0.0/16", "raftkv-net-lb-id", "raftkv-net-masters-id", "raftkv-net-workers-id"],
        );
      });

      it("load balancer: internal TCP 2379, health check HTTP 2381 /health, every master a target", () => {
        const nlb = of(recs, "aws:lb/loadBalancer:LoadBalancer")[0]!;
        assert.equal(nlb.inputs["internal"], true);
        assert.equal(nlb.inputs["loadBalancerType"], "network");
        const tg = of(recs, "aws:lb/targetGroup:TargetGroup")[0]!;
        assert.equal(tg.inputs["port"], 2379);
        assert.equal(tg.inputs["protocol"], "TCP");
        assert.deepEqual(
          [tg.inputs["healthCheck"]].map((h) => {
            const hc = h as Record<string, unknown>;
            return [hc["protocol"], hc["port"], hc["path"], hc["matcher"]];
          })[0],
          ["HTTP", "2381", "/health", "200"],
        );
        const listener = of(recs, "aws:lb/listener:Listener")[0]!;
        assert.equal(listener.inputs["port"], 2379);
        assert.equal(listener.inputs["protocol"], "TCP");
      });

      it("certificates: SANs and usages from the plan, ECDSA P-256 keys", () => {
        for (const k of of(recs, "tls:index/privateKey:PrivateKey").filter((r) => !r.name.endsWith("-host-key"))) {
          assert.equal(k.inputs["algorithm"], "ECDSA");
          assert.equal(k.inputs["ecdsaCurve"], "P256");
        }
        const plan = joinPlan(cluster.members.map((m) => ({ name: m.name, host: m.privateIp, clientPort: 2379, peerPort: 2380, metricsPort: 2381 })));
        for (const { member } of plan) {
          const dns = `ip-${member.host.replace(/\./g, "-")}.eu-west-1.compute.internal`;
          const [server, peer] = memberCertProfiles(member, { extraDnsNames: [dns, LB_DNS] });
          const serverCsr = byName(recs, `raftkv-pki-${member.name}-server-g1-csr`);
          assert.deepEqual(serverCsr.inputs["ipAddresses"], [member.host, "127.0.0.1"]);
          assert.deepEqual(serverCsr.inputs["dnsNames"], server!.dnsNames);
          assert.ok(server!.dnsNames.includes("localhost") && server!.dnsNames.includes(LB_DNS));
          assert.deepEqual(byName(recs, `raftkv-pki-${member.name}-server-g1`).inputs["allowedUses"], server!.usages);
          const peerCsr = byName(recs, `raftkv-pki-${member.name}-peer-g1-csr`);
          assert.deepEqual(peerCsr.inputs["ipAddresses"], [member.host]);
          assert.deepEqual(byName(recs, `raftkv-pki-${member.name}-peer-g1`).inputs["allowedUses"], peer!.usages);
          assert.ok((peer!.usages as string[]).includes("client_auth") && (peer!.usages as string[]).includes("server_auth"));
          // The peer certificate names its member (CN, OU and URI SAN) and comes from the peer CA;
          // the server certificate from the client CA, which clients trust.
          assert.deepEqual(peerCsr.inputs["uris"], [`urn:raftkv:member:${member.name}`]);
          assert.deepEqual(peerCsr.inputs["subject"], { commonName: member.name, organization: "raftkv", organizationalUnit: "raftkv peer" });
          assert.equal(byName(recs, `raftkv-pki-${member.name}-peer-g1`).inputs["caCertPem"], fakePem("CERTIFICATE", "raftkv-pki-peer-ca-g1"));
          assert.equal(byName(recs, `raftkv-pki-${member.name}-server-g1`).inputs["caCertPem"], fakePem("CERTIFICATE", "raftkv-pki-ca-g1"));
        }
        const ops = plan.map(({ member }) => `${member.name}-ops`);
        for (const who of ["admin", "raftkv-worker-1", "raftkv-worker-2", ...ops]) {
          const cert = byName(recs, `raftkv-pki-${who}-client-g1`);
          assert.deepEqual(cert.inputs["allowedUses"], clientCertProfile(who).usages);
          assert.equal(cert.inputs["caCertPem"], fakePem("CERTIFICATE", "raftkv-pki-ca-g1"), who);
          const csr = byName(recs, `raftkv-pki-${who}-client-g1-csr`);
          assert.deepEqual(csr.inputs["ipAddresses"] ?? [], []);
          assert.equal(csr.inputs["uris"], undefined);
          assert.equal((csr.inputs["subject"] as Record<string, unknown>)["organizationalUnit"], "raftkv client");
        }
        for (const ca of of(recs, "tls:index/selfSignedCert:SelfSignedCert")) {
          assert.equal(ca.inputs["isCaCertificate"], true);
          assert.ok((ca.inputs["allowedUses"] as string[]).includes("cert_signing"));
        }
        const ca = of(recs, "tls:index/selfSignedCert:SelfSignedCert")[0]!;
        assert.equal(ca.inputs["isCaCertificate"], true);
        assert.ok((ca.inputs["allowedUses"] as string[]).includes("cert_signing"));
      });

      it("every install script carries exactly the plan's flags for its member", () => {
        for (const j of joinPlan(cluster.members.map((m) => ({ name: m.name, host: m.privateIp, clientPort: 2379, peerPort: 2380, metricsPort: 2381 })))) {
          const budget = memberBudget("t3.small");
          const expected = renderMemberFlags(j.member, j.initialCluster, {
            dataDir: "/var/lib/raftkv/data",
            certDir: "/etc/raftkv/pki",
            clusterToken: "raftkv-test",
            clusterState: j.clusterState,
            listenHost: "0.0.0.0",
            quotaBackendBytes: budget.quotaBackendBytes,
          });
          const install = byName(recs, `${j.member.name}-install`);
          for (const phase of ["create", "update"]) {
            const script = scriptOf(str(install.inputs[phase]));
            const execStart = /^ExecStart=([\s\S]*?)\nExecReload/m.exec(script);
            assert.ok(execStart, `${j.member.name} ${phase} has a unit`);
            const words = execStart[1]!.split(/\s+\\\n\s+|\s+/);
            assert.deepEqual(words.slice(0, 3), ["/usr/bin/node", `--max-old-space-size=${budget.heapMiB}`, "/opt/raftkv/raftkv.cjs"]);
            assert.deepEqual(words.slice(3), expected, `${j.member.name} ${phase}`);
          }
          assert.equal(install.inputs["delete"], undefined, "an install never removes its member");
          // A joined member is removed on delete by a leave that runs on the first master.
          const leave = recs.find((r) => r.name === `${j.member.name}-leave`);
          if (j.clusterState === "existing") {
            assert.match(scriptOf(str(leave!.inputs["delete"])), /member remove/);
            assert.equal((reveal(reveal(leave!.inputs["connection"]) as Record<string, unknown>) as Record<string, unknown>)["host"], cluster.members[0]!.privateIp);
          } else assert.equal(leave, undefined);
        }
      });

      it("private keys travel only as secrets", async () => {
        for (const c of of(recs, "command:remote:Command").filter((r) => /-(install|client)$/.test(r.name))) {
          assert.ok(isSecretValue(c.inputs["stdin"]), `${c.name} stdin must be secret`);
          assert.match(str(c.inputs["stdin"]), /--- raftkv-file (server|client)\.key\n-----BEGIN PRIVATE KEY/);
          for (const phase of ["create", "update", "delete"]) {
            const text = reveal(c.inputs[phase]);
            if (typeof text === "string") assert.doesNotMatch(text, /PRIVATE KEY-----\n/, `${c.name} ${phase} carries no key`);
          }
        }
        for (const c of [...of(recs, "command:remote:Command"), ...of(recs, "command:remote:CopyToRemote")]) {
          // The SDK marks the whole connection secret once a field of it is.
          const conn = reveal(c.inputs["connection"]) as Record<string, unknown>;
          assert.ok(isSecretValue(c.inputs["connection"]) || isSecretValue(conn["privateKey"]), `${c.name} SSH key must be secret`);
          assert.equal(reveal(conn["privateKey"]), "PRIVATE-SSH-KEY");
        }
        assert.equal(await pulumi.isSecret(cluster.adminKeyPem), true);
        assert.equal(await pulumi.isSecret(cluster.adminCertPem), false);
      });

      it("one master at a time: each master's instance and volume wait for the previous master's gate; joiners, rolls and leaves are chained", () => {
        const names = cluster.members.map((m) => m.name);
        const hosts = [...names, "raftkv-worker-1", "raftkv-worker-2"];
        const trusts = hosts.map((h) => `${h}-trust`);
        names.forEach((name, i) => {
          const install = deps.get(`${name}-install`)!;
          const roll = deps.get(`${name}-roll`)!;
          assert.ok(install && roll, name);
          const previousGate = i > 0 ? [`${names[i - 1]}-gate`] : [];
          assert.deepEqual(deps.get(name)!.filter((d) => d.endsWith("-gate")), previousGate, `${name} instance`);
          assert.deepEqual(deps.get(`${name}-data`)!.filter((d) => d.endsWith("-gate")), previousGate, `${name} volume`);
          assert.deepEqual(install.filter((d) => d.endsWith("-gate")), i < 3 ? [] : previousGate, `${name} install: joiners one at a time`);
          // A gate follows its host's volume step, not the install: the first up boots the next master while this one installs.
          assert.deepEqual(deps.get(`${name}-gate`), [`${name}-volume`], `${name} gate follows its volume step`);
          if (i >= 3) assert.ok(install.includes(`${names[i - 1]}-install`), `${name} joins after ${names[i - 1]} joined`);
          assert.ok(roll.includes(`${name}-install`), `${name} roll follows its install`);
          if (i > 0) assert.ok(roll.includes(`${names[i - 1]}-roll`), `${name} roll follows the previous roll`);
          // A new CA is trusted on every host before any member presents a leaf it signed.
          for (const t of trusts) assert.ok(roll.includes(t), `${name} roll after ${t}`);
          // Pulumi deletes in reverse dependency order: leaves run highest member first.
          if (i >= 4) assert.ok(deps.get(`${name}-leave`)!.includes(`${names[i - 1]}-leave`), `${name} leaves before ${names[i - 1]}`);
        });
        for (const w of ["raftkv-worker-1", "raftkv-worker-2"]) {
          assert.ok(deps.get(`${w}-client`)!.includes(`${names[names.length - 1]}-roll`), `${w} client after the last roll (after every trust)`);
        }
      });
    });
  }

  it("bumping certGeneration replaces the leaf certificates and keys, and nothing else", async function () {
    this.timeout(120_000); // two or three 5-master programs, each chained one master at a time
    const g1 = (await build({ masters: 5, certGeneration: 1 })).recs;
    const g2 = (await build({ masters: 5, certGeneration: 2 })).recs;
    const names = (rs: Rec[]) => new Set(rs.map((r) => `${r.type} ${r.name}`));
    const [a, b] = [names(g1), names(g2)];
    const gone = [...a].filter((x) => !b.has(x));
    const added = [...b].filter((x) => !a.has(x));
    const leafCount = 3 * 5 + 1 + 2;
    assert.equal(gone.length, leafCount * 3, "key + CSR + certificate per leaf");
    assert.deepEqual(gone.map((x) => x.replace("-g1", "-g2")).sort(), added.sort());
    for (const x of gone) assert.match(x, /^tls:index\/(privateKey|certRequest|locallySignedCert):\S+ raftkv-pki-\S+-(server|peer|client)-g1(-key|-csr)?$/);
    // Everything else keeps its inputs, except the scripts and their stdin that roll the members.
    const rolling = new Set(["create", "update", "stdin"]);
    for (const r of g1) {
      if (r.type.startsWith("tls:")) continue;
      const other = g2.find((x) => x.type === r.type && x.name === r.name);
      assert.ok(other, r.name);
      for (const [k, v] of Object.entries(r.inputs)) {
        if (r.type === "command:remote:Command" && rolling.has(k)) continue;
        assert.deepEqual(other.inputs[k], v, `${r.name}.${k} changed`);
      }
    }
    const ca1 = g1.filter((r) => r.type.startsWith("tls:") && /-ca-/.test(r.name));
    const ca2 = g2.filter((r) => r.type.startsWith("tls:") && /-ca-/.test(r.name));
    assert.deepEqual(ca2, ca1);
  });

  it("client CA rotation: step 1 trusts old + new and signs with the new CA; step 2 drops the old CA", async function () {
    this.timeout(120_000); // two or three 5-master programs, each chained one master at a time
    const step1 = (await build({ caGeneration: 2, retiredCaGenerations: [1] }));
    const cas = of(step1.recs, "tls:index/selfSignedCert:SelfSignedCert").map((r) => r.name).sort();
    assert.deepEqual(cas, ["raftkv-pki-ca-g1", "raftkv-pki-ca-g2", "raftkv-pki-peer-ca-g1"]);
    const bundle1 = await new Promise<string>((r) => step1.cluster.caCertPem.apply(r));
    assert.equal(bundle1, fakePem("CERTIFICATE", "raftkv-pki-ca-g2") + fakePem("CERTIFICATE", "raftkv-pki-ca-g1"));
    const peerBundle = fakePem("CERTIFICATE", "raftkv-pki-peer-ca-g1");
    for (const leaf of of(step1.recs, "tls:index/locallySignedCert:LocallySignedCert")) {
      // Peer certificates come from the peer CA, everything else from the new client CA.
      const signer = /-peer-g\d+$/.test(leaf.name) ? "raftkv-pki-peer-ca-g1" : "raftkv-pki-ca-g2";
      assert.equal(leaf.inputs["caCertPem"], fakePem("CERTIFICATE", signer), leaf.name);
    }
    // Every host's trust command receives the two-CA bundle; masters also the peer CA bundle.
    const trusts = of(step1.recs, "command:remote:Command").filter((r) => r.name.endsWith("-trust"));
    assert.equal(trusts.length, 3 + 2);
    for (const t of trusts) {
      const worker = t.name.includes("-worker-");
      assert.equal(str(t.inputs["stdin"]), `--- raftkv-file ca.crt\n${bundle1}` + (worker ? "" : `--- raftkv-file peer-ca.crt\n${peerBundle}`), t.name);
    }
    const step2 = await build({ caGeneration: 2 });
    assert.deepEqual(of(step2.recs, "tls:index/selfSignedCert:SelfSignedCert").map((r) => r.name).sort(), ["raftkv-pki-ca-g2", "raftkv-pki-peer-ca-g1"]);
    const bundle2 = await new Promise<string>((r) => step2.cluster.caCertPem.apply(r));
    assert.equal(bundle2, fakePem("CERTIFICATE", "raftkv-pki-ca-g2"));
  });

  it("peer CA rotation is independent: step 1 trusts both peer CAs on masters and re-signs only peer certificates", async function () {
    this.timeout(120_000); // two or three 5-master programs, each chained one master at a time
    const before = (await build({})).recs;
    const step1 = await build({ peerCaGeneration: 2, retiredPeerCaGenerations: [1] });
    const cas = of(step1.recs, "tls:index/selfSignedCert:SelfSignedCert").map((r) => r.name).sort();
    assert.deepEqual(cas, ["raftkv-pki-ca-g1", "raftkv-pki-peer-ca-g1", "raftkv-pki-peer-ca-g2"]);
    const peerBundle = fakePem("CERTIFICATE", "raftkv-pki-peer-ca-g2") + fakePem("CERTIFICATE", "raftkv-pki-peer-ca-g1");
    for (const leaf of of(step1.recs, "tls:index/locallySignedCert:LocallySignedCert")) {
      const peer = /-peer-g\d+$/.test(leaf.name);
      assert.equal(leaf.inputs["caCertPem"], fakePem("CERTIFICATE", peer ? "raftkv-pki-peer-ca-g2" : "raftkv-pki-ca-g1"), leaf.name);
      // Client-CA leaves keep their inputs: only peer certificates are re-signed.
      if (!peer) assert.deepEqual(leaf.inputs, before.find((r) => r.name === leaf.name)!.inputs, leaf.name);
    }
    for (const t of of(step1.recs, "command:remote:Command").filter((r) => r.name.endsWith("-trust") && !r.name.includes("-worker-"))) {
      assert.ok(str(t.inputs["stdin"]).endsWith(`--- raftkv-file peer-ca.crt\n${peerBundle}`), t.name);
    }
    const step2 = await build({ peerCaGeneration: 2 });
    assert.deepEqual(of(step2.recs, "tls:index/selfSignedCert:SelfSignedCert").map((r) => r.name).sort(), ["raftkv-pki-ca-g1", "raftkv-pki-peer-ca-g2"]);
  });

  describe("the SSH path (issue 10: a brand-new VPC has no way in but the bastion the stack creates)", () => {
    const connections = (recs: Rec[]) =>
      [...of(recs, "command:remote:Command"), ...of(recs, "command:remote:CopyToRemote")].map((c) => ({ name: c.name, conn: reveal(c.inputs["connection"]) as Record<string, unknown> }));

    it("new VPC: a small bastion with a public address in the public subnet; every command goes through it", async () => {
      const { recs, cluster } = await build({ masters: 3 });
      const bastion = byName(recs, "raftkv-bastion");
      assert.equal(bastion.type, "aws:ec2/instance:Instance");
      assert.equal(bastion.inputs["associatePublicIpAddress"], true);
      assert.equal(bastion.inputs["instanceType"], "t3.micro");
      assert.equal(bastion.inputs["subnetId"], "raftkv-net-public-id");
      assert.equal(bastion.inputs["privateIp"], "10.42.255.10");
      assert.deepEqual(bastion.inputs["vpcSecurityGroupIds"], ["raftkv-net-bastion-id"]);
      assert.equal((bastion.inputs["metadataOptions"] as Record<string, unknown>)["httpTokens"], "required");
      // Nothing AWS picks in the public subnet can take the bastion's address.
      assert.equal(of(recs, "aws:ec2/natGateway:NatGateway")[0]!.inputs["privateIp"], "10.42.255.5");
      const all = connections(recs);
      assert.ok(all.length > 0);
      // Host keys (issue 11): each host's own ED25519 key, placed by its user data (secret: it holds
      // the private half), pinned in every connection to it and in the bastion hop.
      const hostKeyOf = (host: string) => `ssh-ed25519 AAAA${Buffer.from(`${host}-host-key`).toString("hex")}`;
      const hostByIp = new Map(of(recs, "aws:ec2/instance:Instance").map((i) => [String(i.inputs["privateIp"]), i.name]));
      for (const i of of(recs, "aws:ec2/instance:Instance")) {
        assert.equal(byName(recs, `${i.name}-host-key`).inputs["algorithm"], "ED25519");
        assert.ok(isSecretValue(i.inputs["userData"]), `${i.name}'s user data is secret`);
        assert.equal(
          str(i.inputs["userData"]),
          `#cloud-config\n# raftkv: the SSH host key Pulumi pins (components/hostInstance.ts); no other key type is made.\nssh_deletekeys: true\nssh_genkeytypes: []\nssh_keys:\n  ed25519_private: |\n` +
            `    -----BEGIN OPENSSH PRIVATE KEY-----\n    ${Buffer.from(`${i.name}-host-key`).toString("base64")}\n    -----END OPENSSH PRIVATE KEY-----\n  ed25519_public: ${hostKeyOf(i.name)}\n`,
        );
      }
      for (const { name, conn } of all) {
        const proxy = reveal(conn["proxy"]) as Record<string, unknown> | undefined;
        assert.ok(proxy, `${name} has a proxy`);
        assert.equal(proxy["host"], BASTION_PUBLIC_IP, name);
        assert.equal(proxy["user"], "admin", name);
        assert.equal(reveal(proxy["privateKey"]), "PRIVATE-SSH-KEY", name);
        assert.equal(proxy["hostKey"], hostKeyOf("raftkv-bastion"), `${name}: the bastion's key is pinned`);
        const target = hostByIp.get(String(conn["host"]));
        assert.ok(target, `${name} connects to a host of the stack`);
        assert.equal(conn["hostKey"], hostKeyOf(target), `${name}: ${target}'s key is pinned`);
      }
      assert.equal(await new Promise((r) => cluster.bastionAddress!.apply(r)), BASTION_PUBLIC_IP);
      const rules = of(recs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter((r) => r.inputs["referencedSecurityGroupId"] === "raftkv-net-bastion-id");
      assert.deepEqual(rules.map((r) => [r.inputs["securityGroupId"], r.inputs["fromPort"]]).sort(), [["raftkv-net-masters-id", 22], ["raftkv-net-workers-id", 22]]);
    });

    it("a new VPC without adminCidrs is refused: no one could reach the bastion", () => {
      assert.throws(
        () => resolveSettings({ sshPublicKey: BASE.sshPublicKey, bastionSecurityGroupId: "sg-1" }, { region: "eu-west-1", stack: "test", regionZones: ZONES }),
        /set raftkv:adminCidrs: the stack creates a bastion/,
      );
    });

    it("an explicit bastionHost is used as the proxy and no bastion is created", async () => {
      const { recs, cluster } = await build({ masters: 3, bastionHost: "198.51.100.7", bastionUser: "jump" });
      assert.equal(recs.find((r) => r.name === "raftkv-bastion"), undefined);
      assert.equal(of(recs, "aws:ec2/securityGroup:SecurityGroup").find((r) => r.name === "raftkv-net-bastion"), undefined);
      for (const { name, conn } of connections(recs)) {
        const proxy = reveal(conn["proxy"]) as Record<string, unknown>;
        assert.deepEqual([proxy["host"], proxy["user"], proxy["hostKey"]], ["198.51.100.7", "jump", undefined], `${name}: a configured bastion's key is not known to the stack`);
        assert.match(String(conn["hostKey"]), /^ssh-ed25519 AAAA/, `${name}: the host's own key is pinned`);
      }
      assert.equal(await new Promise((r) => cluster.bastionAddress!.apply(r)), "198.51.100.7");
    });

    it("an existing VPC without bastionHost connects directly (Pulumi runs inside the VPC)", async () => {
      const { recs, cluster } = await build({
        masters: 3,
        existingVpcId: "vpc-1",
        existingSubnets: ["subnet-a:10.0.0.0/24:eu-west-1a", "subnet-b:10.0.1.0/24:eu-west-1b", "subnet-c:10.0.2.0/24:eu-west-1c"],
      });
      assert.equal(recs.find((r) => r.name === "raftkv-bastion"), undefined);
      for (const { name, conn } of connections(recs)) {
        assert.equal(conn["proxy"], undefined, name);
        assert.match(String(reveal(conn["host"])), /^10\.0\.[012]\.\d+$/, name);
      }
      assert.equal(cluster.bastionAddress, undefined);
    });
  });

  it("4 and 9 masters fail with the plan's message", async () => {
    for (const n of [4, 9]) {
      assert.throws(() => resolveSettings({ ...BASE, masters: n }, { region: "eu-west-1", stack: "test", regionZones: ZONES }), (e: Error) => e.message === masterCountProblem(n));
      const settings = { ...resolveSettings(BASE, { region: "eu-west-1", stack: "test", regionZones: ZONES }), masters: n };
      assert.throws(
        () => new RaftkvCluster(`bad${n}`, { settings, region: "eu-west-1", sshPrivateKey: pulumi.secret("k"), runtimeRevision: "r" }),
        (e: Error) => e.message === masterCountProblem(n),
      );
    }
    await settle();
  });

  it("backups on: before any master's host goes (replaced or destroyed) a backup runs on a master that stays; a replaced host gets its agent again, and a host that goes is never dialled to remove it; volumes kept on request", async function () {
    this.timeout(120_000); // a 3-master program with backups under the mocks; slow on a busy machine
    const { recs, cluster } = await build({}, { retainDataVolumes: true });
    const names = cluster.members.map((m) => m.name);
    names.forEach((name, i) => {
      const c = byName(recs, `${name}-backup-before-replace`);
      const runner = cluster.members[i === 0 ? 1 : 0]!;
      assert.equal((reveal(reveal(c.inputs["connection"]) as Record<string, unknown>) as Record<string, unknown>)["host"], runner.privateIp, `${name}'s backup runs on ${runner.name}`);
      assert.deepEqual(c.inputs["triggers"], [`${name}-id`], "replaced with the instance, so deleted before it");
      assert.match(scriptOf(str(c.inputs["delete"])), /backup_before_change "\$LOCAL_ENDPOINT"/);
      assert.ok(deps.get(`${name}-backup-before-replace`)!.includes(`${runner.name}-backup`), "after the runner's agent is in place, and deleted before it");
      assert.deepEqual(byName(recs, `${name}-backup`).inputs["triggers"], [`${name}-id`]);
      // Its removal script needs the host: it runs only while the host stays (backups turned off),
      // never when the host goes (shrink, replacement, destroy), when it may be dead already.
      assert.match(scriptOf(str(byName(recs, `${name}-backup`).inputs["delete"])), /disable --now raftkv-backup.timer/);
      assert.equal(deletedWith.get(`${name}-backup`), name, `${name}-backup is deleted with ${name}'s instance`);
      assert.equal(byName(recs, `${name}-install`).inputs["delete"], undefined);
    });
    // The install of a joined member runs after its backup agent; its roll takes a backup before a change.
    assert.match(scriptOf(str(byName(recs, "raftkv-1-roll").inputs["update"])), /backup_before_change/);
  });

  it("index.ts reads the stack config and exports the cluster's outputs", async function () {
    this.timeout(120_000); // the whole program, bundles included; slow on a busy machine
    const dir = mkdtempSync(path.join(tmpdir(), "raftkv-dist-"));
    try {
      writeFileSync(path.join(dir, "raftkv.cjs"), "// member\n");
      writeFileSync(path.join(dir, "raftkvctl.cjs"), "// ctl\n");
      pulumi.runtime.setAllConfig({
        "aws:region": "eu-west-1",
        "raftkv:masters": "5",
        "raftkv:workers": "1",
        "raftkv:adminCidrs": JSON.stringify(["10.99.0.0/16"]),
        "raftkv:sshPublicKey": "ssh-ed25519 AAAAC3Nza test",
        "raftkv:sshPrivateKey": "PRIVATE",
        "raftkv:runtimeDir": dir,
      }, ["raftkv:sshPrivateKey"]);
      records = [];
      const program = require("../../index") as Record<string, unknown>;
      await settle();
      assert.equal(of(records, "aws:ec2/instance:Instance").length, 7);
      // The zones come from the region: its regular availability zones, sorted, the first three.
      assert.deepEqual(invokes.map((i) => i.inputs), [{ filters: [{ name: "zone-type", values: ["availability-zone"] }] }]);
      assert.deepEqual(of(records, "aws:ec2/subnet:Subnet").map((r) => r.inputs["availabilityZone"]).sort(), [ZONES[0], ...ZONES], "three private subnets, the public one in the first zone");
      const members = await new Promise<Array<{ name: string; availabilityZone: string }>>((r) => (program["members"] as pulumi.Output<Array<{ name: string; availabilityZone: string }>>).apply(r));
      assert.deepEqual(members.map((m) => m.availabilityZone), [...ZONES, ...ZONES.slice(0, 2)]);
      assert.equal(await new Promise<string | undefined>((r) => (program["bastionAddress"] as pulumi.Output<string>).apply(r)), BASTION_PUBLIC_IP);
      const endpoint = await new Promise<string>((r) => (program["clientEndpoint"] as pulumi.Output<string>).apply(r));
      assert.equal(endpoint, `https://${LB_DNS}:2379`);
      const cmd = await new Promise<string>((r) => (program["etcdctlCommand"] as pulumi.Output<string>).apply(r));
      assert.equal(cmd, `ETCDCTL_API=3 etcdctl --endpoints=https://${LB_DNS}:2379 --cacert=raftkv-ca.crt --cert=raftkv-admin.crt --key=raftkv-admin.key member list -w table`);
      assert.deepEqual(members.map((m) => m.name), ["raftkv-1", "raftkv-2", "raftkv-3", "raftkv-4", "raftkv-5"]);
      assert.equal(await pulumi.isSecret(program["adminKeyPem"] as pulumi.Output<string>), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Pulumi components (setMocks): auth (raftkv:auth)", function () {
  this.timeout(120_000); // whole 3- and 5-master programs under the mocks; slow on a busy machine
  let RaftkvCluster: typeof RaftkvClusterT;
  let auth: typeof import("../../components/auth");

  before(async () => {
    await pulumi.runtime.setMocks(mocks, "raftkv", "test");
    ({ RaftkvCluster } = require("../../components/cluster") as typeof import("../../components/cluster"));
    auth = require("../../components/auth") as typeof import("../../components/auth");
  });

  async function build(raw: RawSettings, authRaw?: { auth?: boolean; authPrefixes?: unknown }): Promise<Rec[]> {
    records = [];
    const settings = resolveSettings({ ...BASE, ...raw }, { region: "eu-west-1", stack: "test", regionZones: ZONES });
    const a = authRaw === undefined ? undefined : auth.resolveAuthSettings(authRaw);
    const cluster = new RaftkvCluster("raftkv", {
      settings,
      region: "eu-west-1",
      sshPrivateKey: pulumi.secret("PRIVATE-SSH-KEY"),
      runtimeRevision: "rev1",
      ...(a !== undefined ? { auth: a } : {}),
    });
    await settle();
    assert.ok(cluster.members.length > 0);
    return records;
  }
  const bootstrapOf = (recs: Rec[]) => recs.filter((r) => r.type === "command:remote:Command" && r.name === "raftkv-auth-bootstrap");

  it("off by default and with raftkv:auth false: no users, no auth enable", async () => {
    for (const raw of [undefined, { auth: false }]) {
      const recs = await build({}, raw);
      assert.deepEqual(recs.filter((r) => r.type === "raftkv:auth:ClusterAuth" || r.name.includes("-auth-")).map((r) => r.name), []);
    }
  });

  it("on: the bootstrap runs on the first master once the cluster is ready; workers are tenants of their prefixes", async () => {
    const recs = await build({ masters: 3 }, { auth: true, authPrefixes: { "raftkv-worker-2": "/shared/" } });
    assert.equal(recs.filter((r) => r.type === "raftkv:auth:ClusterAuth").length, 1);
    const [cmd] = bootstrapOf(recs);
    assert.ok(cmd);
    const conn = reveal(cmd.inputs["connection"]) as Record<string, unknown>;
    const first = recs.find((r) => r.type === "aws:ec2/instance:Instance" && r.name === "raftkv-1");
    assert.equal(reveal(conn["host"]), first!.inputs["privateIp"]);
    assert.equal(reveal((reveal(conn["proxy"]) as Record<string, unknown>)["host"]), BASTION_PUBLIC_IP, "through the stack's bastion");
    // The first trigger is ClusterInstall.ready (the last master's roll output; "" under the mocks).
    assert.equal((cmd.inputs["triggers"] as unknown[]).length, 2);
    const script = scriptOf(str(cmd.inputs["create"]));
    assert.match(script, /^\$RAFTKVCTL role grant-permission 'tenant-raftkv-worker-1' readwrite '\/raftkv-worker-1\/' --prefix >\/dev\/null$/m);
    assert.match(script, /^\$RAFTKVCTL role grant-permission 'tenant-raftkv-worker-2' readwrite '\/shared\/' --prefix >\/dev\/null$/m);
    assert.match(script, /\$RAFTKVCTL auth enable >\/dev\/null\n/);
    // Every ops identity the cluster can ever have is root, also for members not there yet.
    for (let i = 1; i <= 7; i++) assert.match(script, new RegExp(`^\\$RAFTKVCTL user grant-role 'raftkv-${i}-ops' root >/dev/null$`, "m"));
  });

  it("a scale-up (3 → 5 masters) leaves the bootstrap unchanged: the new members' ops users exist before they join", async () => {
    const three = scriptOf(str(bootstrapOf(await build({ masters: 3 }, { auth: true }))[0]!.inputs["create"]));
    const five = scriptOf(str(bootstrapOf(await build({ masters: 5 }, { auth: true }))[0]!.inputs["create"]));
    assert.equal(five, three);
  });

  it("refuses authPrefixes without auth, for a non-worker, or not a map of strings", () => {
    assert.throws(() => auth.resolveAuthSettings({ authPrefixes: { "raftkv-worker-1": "/a/" } }), /raftkv:auth is not true/);
    assert.throws(() => auth.resolveAuthSettings({ auth: true, authPrefixes: ["/a/"] }), /must map worker names/);
    assert.throws(() => auth.resolveAuthSettings({ auth: true, authPrefixes: { "raftkv-worker-1": 3 } }), /must map worker names/);
    const settings = resolveSettings(BASE, { region: "eu-west-1", stack: "test", regionZones: ZONES });
    assert.throws(
      () => new RaftkvCluster("bad-auth", { settings, region: "eu-west-1", sshPrivateKey: pulumi.secret("k"), runtimeRevision: "r", auth: { prefixes: { "raftkv-worker-9": "/x/" } } }),
      /raftkv:authPrefixes names "raftkv-worker-9", which is not a worker/,
    );
  });
});
