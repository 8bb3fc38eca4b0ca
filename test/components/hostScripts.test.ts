import { strict as assert } from "node:assert";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { joinPlan, type JoinPlan } from "../../components/membership";
import { clientCertProfile, memberCertProfiles, memberOpsClientName, planHostMembers, type CertProfile, type MemberEndpoint } from "../../components/topology";
import { createCa, issueCert, type CertificateAuthority } from "../../node-runtime/pki";
import { HOST, renderFileBundle, renderMemberUnit } from "../../components/hostFiles";
import { BACKUP } from "../../components/backupHost";
import {
  renderDataVolumeScript,
  renderMemberGateScript,
  renderMemberInstallScript,
  renderMemberLeaveScript,
  renderMemberRollScript,
  renderTrustScript,
  renderWorkerInstallScript,
  sshInvocation,
} from "../../components/hostScripts";

const IPS = ["10.42.0.10", "10.42.1.10", "10.42.2.10", "10.42.0.11", "10.42.1.11", "10.42.2.11", "10.42.0.12"];

function pem(tag: string): string {
  return `-----BEGIN CERTIFICATE-----\n${Buffer.from(tag).toString("base64")}\n-----END CERTIFICATE-----\n`;
}
function keyPem(tag: string): string {
  return `-----BEGIN PRIVATE KEY-----\n${Buffer.from(tag).toString("base64")}\n-----END PRIVATE KEY-----\n`;
}

/** Every script the components generate for one cluster size. */
function allScripts(n: number): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  for (const j of joinPlan(planHostMembers(IPS.slice(0, n)))) {
    const opts = { join: j, clusterToken: "raftkv-test", uploadDir: "/home/admin", revision: "0123abcd" };
    for (const phase of ["create", "update"] as const) {
      out.push({ name: `${j.member.name}-install-${phase}.sh`, text: renderMemberInstallScript(phase, opts) });
      out.push({ name: `${j.member.name}-roll-${phase}.sh`, text: renderMemberRollScript(phase, opts) });
    }
    out.push({ name: `${j.member.name}-gate-create.sh`, text: renderMemberGateScript("create", { join: j, host: "i-0abc t3.small 20GiB" }) });
    out.push({ name: `${j.member.name}-gate-update.sh`, text: renderMemberGateScript("update", { join: j, host: "i-0abc t3.small 20GiB" }) });
    if (j.clusterState === "existing") out.push({ name: `${j.member.name}-leave.sh`, text: renderMemberLeaveScript(opts) });
  }
  for (const phase of ["create", "update"] as const) {
    out.push({ name: `trust-${phase}.sh`, text: renderTrustScript(phase) });
    out.push({
      name: `worker-${phase}.sh`,
      text: renderWorkerInstallScript(phase, { endpoints: ["https://internal-raftkv-lb.elb.eu-west-1.amazonaws.com:2379"], uploadDir: "/home/admin", revision: "r1" }),
    });
  }
  for (const phase of ["create", "update"] as const) out.push({ name: `volume-${phase}.sh`, text: renderDataVolumeScript(phase, { volumeId: "vol-0123456789abcdef0", sizeGiB: 20 }) });
  return out;
}

describe("generated host scripts and units", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "raftkv-scripts-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("every script passes bash -n and shellcheck (7 members: bootstrap and joining members)", function () {
    this.timeout(120_000); // ~40 scripts through shellcheck on a busy machine
    const scripts = allScripts(7);
    const files = scripts.map((s) => {
      const f = path.join(dir, s.name);
      writeFileSync(f, s.text);
      execFileSync("bash", ["-n", f]);
      return f;
    });
    const r = spawnSync("shellcheck", ["--severity=style", ...files], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it("every member unit passes systemd-analyze verify", () => {
    for (const j of joinPlan(planHostMembers(IPS.slice(0, 5)))) {
      const unit = path.join(dir, "raftkv.service");
      // verify insists that ExecStart's binary exists; the running node does.
      writeFileSync(unit, renderMemberUnit(j, { clusterToken: "raftkv-test", nodePath: process.execPath }));
      const r = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
      assert.equal(r.status, 0, `${j.member.name}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trim(), "", r.stderr);
    }
  });

  it("refuses values systemd would expand or split", () => {
    const j = joinPlan(planHostMembers(IPS.slice(0, 3)))[0]!;
    assert.throws(() => renderMemberUnit(j, { clusterToken: "raftkv-test", nodePath: "/usr/bin/my node" }), /systemd ExecStart/);
  });
});

/**
 * Runs the scripts for real against a temporary root. What is stubbed (on PATH): systemctl,
 * chown, useradd, cloud-init, apt-get and sudo — things that would change this machine. What
 * is real: bash, awk, install (file modes), cmp, mktemp, node (the /health probe against a
 * real HTTP server, the member-ID parsing), and a fake raftkvctl bundle run by node that
 * answers like etcdctl and records its arguments.
 */
describe("host scripts executed against a temporary root", function () {
  this.timeout(20000);
  let root: string;
  let stubs: string;
  let log: string;
  // The scripts run synchronously (spawnSync), so /health is served by a separate process;
  // it answers 503 while the file named by its argument exists.
  let server: ChildProcess;
  let port = 0;
  let unhealthyFlag: string;
  const setHealthy = (yes: boolean) => (yes ? rmSync(unhealthyFlag, { force: true }) : writeFileSync(unhealthyFlag, ""));
  let member: MemberEndpoint;
  let plans: JoinPlan[];
  const bigId = 12345678901234567890n; // above 2^53: JSON.parse would round it
  /** Real trust and member stdin (the rolls check certificates): generation 1 and 2, and bad ones. */
  let real: Record<"trust" | "g1" | "g2" | "forged" | "otherMember" | "wrongKey", string>;

  before(async () => {
    unhealthyFlag = path.join(mkdtempSync(path.join(tmpdir(), "raftkv-health-")), "unhealthy");
    server = spawn(
      process.execPath,
      [
        "-e",
        `const fs = require("fs");
         const s = require("http").createServer((req, res) => {
           const ok = req.url === "/health" && !fs.existsSync(process.argv[1]);
           res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
           res.end(JSON.stringify({ health: String(ok) }));
         });
         s.listen(0, "127.0.0.1", () => console.log(s.address().port));`,
        unhealthyFlag,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    port = await new Promise<number>((resolve, reject) => {
      server.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
      server.once("exit", (code) => reject(new Error(`health server exited with ${String(code)}`)));
    });
    const planned = planHostMembers(IPS.slice(0, 5));
    // The member under test serves /health on the test server's port.
    planned[3] = { ...planned[3]!, metricsPort: port };
    planned[0] = { ...planned[0]!, metricsPort: port };
    plans = joinPlan(planned);
    member = planned[0]!;
    // Real certificates for the rolls, which check what they activate.
    const ca = await createCa("raftkv CA", 30);
    const peerCa = await createCa("raftkv peer CA", 30);
    // A forger: the peer CA's name, another key.
    const forger = await createCa("raftkv peer CA", 30);
    const [serverProfile, peerProfile] = memberCertProfiles(member);
    const opsProfile = clientCertProfile(memberOpsClientName(member.name));
    const leaves = async (peer: { signer: CertificateAuthority; profile: CertProfile }) => {
      const [server, p, ops] = await Promise.all([issueCert(ca, serverProfile!, 30), issueCert(peer.signer, peer.profile, 30), issueCert(ca, opsProfile, 30)]);
      return { server, peer: p, ops };
    };
    const [g1, g2, forged, other] = await Promise.all([
      leaves({ signer: peerCa, profile: peerProfile! }),
      leaves({ signer: peerCa, profile: peerProfile! }),
      leaves({ signer: forger, profile: peerProfile! }),
      leaves({ signer: peerCa, profile: memberCertProfiles(planned[1]!)[1]! }),
    ]);
    const bundle = (l: typeof g1, serverKey = l.server.keyPem) =>
      renderFileBundle([
        { name: "server.crt", content: l.server.certPem },
        { name: "server.key", content: serverKey },
        { name: "peer.crt", content: l.peer.certPem },
        { name: "peer.key", content: l.peer.keyPem },
        { name: "client.crt", content: l.ops.certPem },
        { name: "client.key", content: l.ops.keyPem },
      ]);
    real = {
      trust: renderFileBundle([
        { name: "ca.crt", content: ca.certPem },
        { name: "peer-ca.crt", content: peerCa.certPem },
      ]),
      g1: bundle(g1),
      g2: bundle(g2),
      forged: bundle(forged),
      otherMember: bundle(other),
      wrongKey: bundle(g2, g1.server.keyPem),
    };
  });
  after(() => {
    server.kill();
    rmSync(path.dirname(unhealthyFlag), { recursive: true, force: true });
  });

  beforeEach(() => {
    setHealthy(true);
    root = mkdtempSync(path.join(tmpdir(), "raftkv-root-"));
    stubs = path.join(root, "stub-bin");
    log = path.join(root, "calls.log");
    mkdirSync(stubs);
    // The data volume step ran: its marker is on the (here: pretend) volume.
    mkdirSync(path.join(root, "var/lib/raftkv"), { recursive: true });
    writeFileSync(path.join(root, "var/lib/raftkv/.raftkv-volume"), "vol-0test\n");
    for (const cmd of ["systemctl", "chown", "useradd", "cloud-init", "apt-get"]) {
      const f = path.join(stubs, cmd);
      // systemctl is-active answers from STUB_ACTIVE, everything else succeeds and is logged.
      writeFileSync(f, `#!/bin/sh\necho "${cmd} $*" >> "${log}"\nif [ "${cmd} $1" = "systemctl is-active" ]; then [ "\${STUB_ACTIVE:-0}" = 1 ]; fi\n`);
      chmodSync(f, 0o755);
    }
    writeFileSync(path.join(stubs, "sudo"), "#!/bin/sh\nexec \"$@\"\n");
    chmodSync(path.join(stubs, "sudo"), 0o755);
    // The uploaded bundles, and an installed fake raftkvctl that speaks etcdctl's JSON.
    mkdirSync(path.join(root, "home/admin"), { recursive: true });
    writeFileSync(path.join(root, "home/admin/raftkv.cjs"), "// member v1\n");
    writeFileSync(path.join(root, "home/admin/raftkvctl.cjs"), fakeCtl(root));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  function fakeCtl(r: string): string {
    return `const fs = require("fs");
fs.appendFileSync(${JSON.stringify(path.join(r, "ctl.log"))}, process.argv.slice(2).join(" ") + "\\n");
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const file = ${JSON.stringify(path.join(r, "members.json"))};
// IDs exceed 2^53: kept as strings, as the scripts read them.
const list = () => (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8").replace(/"ID":(\\d+)/g, '"ID":"$1"')) : { members: [] });
if (args[0] === "member" && args[1] === "list") {
  process.stdout.write(fs.existsSync(file) ? fs.readFileSync(file, "utf8") : '{"members":[]}');
} else if (args[0] === "member" && args[1] === "add") {
  const l = list();
  const url = process.argv.find((a) => a.startsWith("--peer-urls=")).slice(12);
  l.members.push({ ID: 4242, name: "", peerURLs: [url], isLearner: process.argv.includes("--learner") });
  fs.writeFileSync(file, JSON.stringify(l));
} else if (args[0] === "member" && args[1] === "promote") {
  if (fs.existsSync(${JSON.stringify(path.join(r, "no-promote"))})) process.exit(1);
  const l = list();
  for (const m of l.members) if (BigInt(m.ID).toString(16) === args[2]) m.isLearner = false;
  fs.writeFileSync(file, JSON.stringify(l));
} else if (args[0] === "member" && args[1] === "remove") {
  const l = list();
  l.members = l.members.filter((m) => BigInt(m.ID).toString(16) !== args[2]);
  fs.writeFileSync(file, JSON.stringify(l));
} else if (args[0] === "endpoint" && args[1] === "health") {
  process.exit(fs.existsSync(${JSON.stringify(path.join(r, "unhealthy"))}) ? 1 : 0);
} else if (args[0] === "backup") {
  process.exit(process.env.FAIL_BACKUP ? 1 : 0);
}
`;
  }

  function run(script: string, stdin = "", env: Record<string, string> = {}): { status: number | null; stderr: string } {
    const r = spawnSync("bash", ["-c", script, "test"], {
      input: stdin,
      encoding: "utf8",
      env: { ...process.env, PATH: `${stubs}:${process.env["PATH"]}`, RAFTKV_ROOT: root, RAFTKV_HEALTH_TIMEOUT: "6", ...env },
    });
    return { status: r.status, stderr: r.stderr };
  }
  const calls = () => (existsSync(log) ? readFileSync(log, "utf8") : "");
  const ctlCalls = () => (existsSync(path.join(root, "ctl.log")) ? readFileSync(path.join(root, "ctl.log"), "utf8") : "");
  const mode = (p: string) => (statSync(path.join(root, p)).mode & 0o777).toString(8);
  const memberStdin = (tag: string) =>
    renderFileBundle([
      { name: "server.crt", content: pem(`server ${tag}`) },
      { name: "server.key", content: keyPem(`server key ${tag}`) },
      { name: "peer.crt", content: pem(`peer ${tag}`) },
      { name: "peer.key", content: keyPem(`peer key ${tag}`) },
      { name: "client.crt", content: pem(`ops ${tag}`) },
      { name: "client.key", content: keyPem(`ops key ${tag}`) },
    ]);
  // A master's trust stdin: the client CA bundle and the peer CA bundle.
  const masterTrust = (ca: string, peerCa = "peer-ca1") =>
    renderFileBundle([
      { name: "ca.crt", content: pem(ca) },
      { name: "peer-ca.crt", content: pem(peerCa) },
    ]);
  const opts = (j: JoinPlan) => ({ join: j, clusterToken: "raftkv-test", uploadDir: "/home/admin", revision: "r1" });
  const installFirst = () => {
    const t = run(renderTrustScript("create"), masterTrust("ca1"));
    assert.equal(t.status, 0, t.stderr);
    const r = run(renderMemberInstallScript("create", opts(plans[0]!)), memberStdin("g1"));
    assert.equal(r.status, 0, r.stderr);
  };

  it("trust: prepares the host, writes ca.crt and peer-ca.crt 0600 for the service user, reloads a running member", () => {
    const r = run(renderTrustScript("create"), masterTrust("ca1"));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/ca.crt"), "utf8"), pem("ca1"));
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/peer-ca.crt"), "utf8"), pem("peer-ca1"));
    assert.equal(mode("etc/raftkv/pki/ca.crt"), "600");
    assert.equal(mode("etc/raftkv/pki/peer-ca.crt"), "600");
    assert.equal(mode("etc/raftkv/pki"), "700");
    assert.match(calls(), /cloud-init status --wait/);
    assert.match(calls(), /useradd --system .* raftkv/);
    assert.match(calls(), /chown raftkv:raftkv .*ca\.crt\.new/);
    assert.doesNotMatch(calls(), /systemctl reload/, "nothing runs yet, so nothing to reload");

    // CA rotation step 1: the bundle grows to old + new; a running member gets SIGHUP.
    const step1 = run(
      renderTrustScript("update"),
      renderFileBundle([
        { name: "ca.crt", content: pem("ca2") + pem("ca1") },
        { name: "peer-ca.crt", content: pem("peer-ca1") },
      ]),
      { STUB_ACTIVE: "1" },
    );
    assert.equal(step1.status, 0, step1.stderr);
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/ca.crt"), "utf8"), pem("ca2") + pem("ca1"));
    assert.match(calls(), /systemctl reload raftkv\.service/);
    // Step 2: the old CA is dropped the same way.
    const step2 = run(renderTrustScript("update"), masterTrust("ca2"), { STUB_ACTIVE: "1" });
    assert.equal(step2.status, 0, step2.stderr);
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/ca.crt"), "utf8"), pem("ca2"));
    assert.equal((calls().match(/systemctl reload/g) ?? []).length, 2);
    // The peer CA rotates the same way, on its own.
    const peerStep1 = run(renderTrustScript("update"), masterTrust("ca2", "peer-ca2"), { STUB_ACTIVE: "1" });
    assert.equal(peerStep1.status, 0, peerStep1.stderr);
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/peer-ca.crt"), "utf8"), pem("peer-ca2"));
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/ca.crt"), "utf8"), pem("ca2"));
    assert.equal((calls().match(/systemctl reload/g) ?? []).length, 3);
    // Same bundles again: nothing to reload.
    assert.equal(run(renderTrustScript("update"), masterTrust("ca2", "peer-ca2"), { STUB_ACTIVE: "1" }).status, 0);
    assert.equal((calls().match(/systemctl reload/g) ?? []).length, 3);
  });

  it("trust: a master refuses stdin without the peer CA bundle; a worker needs only ca.crt", () => {
    const caOnly = renderFileBundle([{ name: "ca.crt", content: pem("ca1") }]);
    const master = run(renderTrustScript("create"), caOnly);
    assert.notEqual(master.status, 0);
    assert.match(master.stderr, /stdin did not carry peer-ca\.crt/);
    const worker = run(renderTrustScript("create", "worker"), caOnly);
    assert.equal(worker.status, 0, worker.stderr);
    assert.ok(!existsSync(path.join(root, "etc/raftkv/pki/peer-ca.crt")));
  });

  it("trust: refuses stdin without the CA file", () => {
    const r = run(renderTrustScript("update"), "no header\n");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /does not start with a file header/);
  });

  it("install (bootstrap member): keys 0600 from stdin, the planned unit, env file, start without waiting for the others", () => {
    installFirst();
    for (const f of ["server.key", "peer.key", "server.crt", "peer.crt", "client.crt", "client.key"]) assert.equal(mode(`etc/raftkv/pki/${f}`), "600", f);
    // Tools on the master reach the member with the host's client certificate, not its peer one.
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/client.key"), "utf8"), keyPem("ops key g1"));
    assert.match(readFileSync(path.join(root, HOST.envFile), "utf8"), /^ETCDCTL_CERT=\/etc\/raftkv\/pki\/client\.crt$/m);
    assert.match(readFileSync(path.join(root, HOST.envFile), "utf8"), /^ETCDCTL_KEY=\/etc\/raftkv\/pki\/client\.key$/m);
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/server.key"), "utf8"), keyPem("server key g1"));
    assert.equal(readFileSync(path.join(root, HOST.unitPath), "utf8"), renderMemberUnit(plans[0]!, { clusterToken: "raftkv-test" }));
    assert.match(readFileSync(path.join(root, HOST.envFile), "utf8"), /^ETCDCTL_ENDPOINTS=https:\/\/127\.0\.0\.1:2379$/m);
    assert.equal(readFileSync(path.join(root, HOST.memberBundle), "utf8"), "// member v1\n");
    assert.equal(mode(HOST.ctlWrapper.slice(1)), "755");
    assert.match(calls(), /systemctl enable raftkv\.service\nsystemctl restart raftkv\.service/);
    assert.doesNotMatch(ctlCalls(), /member (add|remove|promote)/, "a bootstrap member never changes the membership");
    assert.match(ctlCalls(), /--endpoints=https:\/\/10\.42\.1\.10:2379 .*member list/, "it asks the other bootstrap members whether it ran before");
    // No key material may be left in the staging area or next to the files.
    assert.equal(spawnSync("sh", ["-c", `ls ${root}/etc/raftkv/pki`], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).sort().join(","),
      "ca.crt,client.crt,client.key,peer-ca.crt,peer.crt,peer.key,server.crt,server.key");
  });

  it("install (bootstrap member) refuses an empty data directory when the cluster lists it as having run", () => {
    assert.equal(run(renderTrustScript("create"), masterTrust("ca1")).status, 0);
    writeFileSync(path.join(root, "members.json"), `{"members":[{"ID":1,"name":"raftkv-1","peerURLs":["https://10.42.0.10:2380"],"clientURLs":["https://10.42.0.10:2379"]}]}`);
    const r = run(renderMemberInstallScript("create", opts(plans[0]!)), memberStdin("g1"));
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /has run before .* data directory is empty/);
    assert.doesNotMatch(calls(), /systemctl restart/);
  });

  it("install refuses to run when the state directory is not a mounted volume", () => {
    assert.equal(run(renderTrustScript("create"), masterTrust("ca1")).status, 0);
    rmSync(path.join(root, "var/lib/raftkv/.raftkv-volume"));
    const r = run(renderMemberInstallScript("create", opts(plans[0]!)), memberStdin("g1"));
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not the mounted data volume/);
  });

  /** Installed with real generation-1 certificates and CAs. */
  const installReal = () => {
    assert.equal(run(renderTrustScript("create"), real.trust).status, 0);
    const r = run(renderMemberInstallScript("create", opts(plans[0]!)), real.g1);
    assert.equal(r.status, 0, r.stderr);
  };
  const pki = (f: string) => readFileSync(path.join(root, "etc/raftkv/pki", f), "utf8");
  const stdinFile = (bundle: string, name: string) => bundle.split("--- raftkv-file ").find((b) => b.startsWith(`${name}\n`))!.slice(name.length + 1);

  it("update + roll: new certificates only -> SIGHUP; a new bundle -> restart; nothing pending -> neither", () => {
    installReal();
    const update = run(renderMemberInstallScript("update", opts(plans[0]!)), real.g2);
    assert.equal(update.status, 0, update.stderr);
    // Staged, not active: the member keeps its current key until its turn in the roll.
    assert.equal(pki("server.key"), stdinFile(real.g1, "server.key"));
    assert.equal(pki("staged/server.key"), stdinFile(real.g2, "server.key"));
    assert.ok(existsSync(path.join(root, "var/lib/raftkv/reload-pending")));
    assert.ok(!existsSync(path.join(root, "var/lib/raftkv/restart-pending")));
    assert.doesNotMatch(calls().split("systemctl restart")[1] ?? "", /systemctl (restart|reload)/, "the install never restarts; the roll does");

    const roll = run(renderMemberRollScript("update", opts(plans[0]!)));
    assert.equal(roll.status, 0, roll.stderr);
    assert.match(calls(), /systemctl reload raftkv\.service/);
    assert.equal(pki("server.key"), stdinFile(real.g2, "server.key"));
    assert.ok(!existsSync(path.join(root, "etc/raftkv/pki/staged/server.key")));
    assert.ok(!existsSync(path.join(root, "var/lib/raftkv/reload-pending")));
    assert.match(ctlCalls(), /--endpoints=https:\/\/127\.0\.0\.1:2379 .*endpoint health --cluster/);
    assert.match(ctlCalls(), /--cert=\S*\/etc\/raftkv\/pki\/client\.crt --key=\S*\/etc\/raftkv\/pki\/client\.key /);
    assert.doesNotMatch(ctlCalls(), /peer\.(crt|key)/);

    writeFileSync(path.join(root, "home/admin/raftkv.cjs"), "// member v2\n");
    assert.equal(run(renderMemberInstallScript("update", opts(plans[0]!)), real.g2).status, 0);
    assert.ok(existsSync(path.join(root, "var/lib/raftkv/restart-pending")));
    const before = (calls().match(/systemctl restart/g) ?? []).length;
    assert.equal(run(renderMemberRollScript("update", opts(plans[0]!))).status, 0);
    assert.equal((calls().match(/systemctl restart/g) ?? []).length, before + 1);

    const quiet = run(renderMemberRollScript("update", opts(plans[0]!)));
    assert.equal(quiet.status, 0);
    assert.match(quiet.stderr, /nothing pending/);
  });

  for (const [bad, why] of [
    ["forged", /peer\.crt \(.*CN=raftkv-1\) is not signed by any CA in peer-ca\.crt/],
    ["otherMember", /peer\.crt \(.*\) does not cover 10\.42\.0\.10[\s\S]*does not name this member \(urn:raftkv:member:raftkv-1\)/],
    ["wrongKey", /server\.key is not the key of server\.crt/],
  ] as const) {
    it(`roll refuses staged certificates before activating anything (${bad}): the member keeps its own, no reload, the roll fails`, () => {
      installReal();
      const before = ["server.crt", "server.key", "peer.crt", "peer.key", "client.crt"].map(pki);
      assert.equal(run(renderMemberInstallScript("update", opts(plans[0]!)), real[bad]).status, 0, "staging itself accepts them");
      const callsBefore = calls().length;
      const roll = run(renderMemberRollScript("update", opts(plans[0]!)));
      assert.notEqual(roll.status, 0);
      assert.match(roll.stderr, why);
      assert.match(roll.stderr, /nothing was activated.*the roll stops here/);
      assert.deepEqual(["server.crt", "server.key", "peer.crt", "peer.key", "client.crt"].map(pki), before);
      assert.doesNotMatch(calls().slice(callsBefore), /systemctl (reload|restart)/);
    });
  }

  it("roll waits for the cluster to be healthy before touching the member", () => {
    installFirst();
    writeFileSync(path.join(root, "unhealthy"), "");
    const r = run(renderMemberRollScript("update", opts(plans[0]!)), "", { RAFTKV_HEALTH_TIMEOUT: "1" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cluster not healthy/);
    assert.doesNotMatch(calls(), /systemctl reload/);
    assert.equal((calls().match(/systemctl restart/g) ?? []).length, 1, "only the install's own start");
  });

  it("install (joining member): added as a learner through the running members, once; promoted once healthy", function () {
    this.timeout(90_000); // two joins of a dozen node processes each
    const joiner = plans[3]!;
    assert.equal(run(renderTrustScript("create"), masterTrust("ca1")).status, 0);
    const r = run(renderMemberInstallScript("create", opts(joiner)), memberStdin("g1"));
    assert.equal(r.status, 0, r.stderr);
    const via = "https://10.42.0.10:2379,https://10.42.1.10:2379,https://10.42.2.10:2379";
    assert.match(ctlCalls(), new RegExp(`--endpoints=${via} .*member add raftkv-4 --learner --peer-urls=https://10.42.0.11:2380`));
    assert.match(ctlCalls(), /member promote 1092/);
    assert.match(readFileSync(path.join(root, "members.json"), "utf8"), /"isLearner":false/);
    assert.ok(readFileSync(path.join(root, HOST.unitPath), "utf8").includes("--initial-cluster-state=existing"));

    // A retry after the add succeeded (member listed, data dir still empty) must not add twice.
    rmSync(path.join(root, "ctl.log"));
    writeFileSync(path.join(root, "members.json"), `{"header":{"cluster_id":1},"members":[{"ID":${bigId},"peerURLs":["https://10.42.0.11:2380"],"isLearner":true}]}`);
    assert.equal(run(renderMemberInstallScript("create", opts(joiner)), memberStdin("g1")).status, 0);
    assert.doesNotMatch(ctlCalls(), /member add/);
    assert.match(ctlCalls(), new RegExp(`member promote ${bigId.toString(16)}`));
  });

  it("install (joining member): a learner that never becomes healthy is removed again, leaving no extra member", function () {
    this.timeout(60_000);
    const joiner = plans[3]!;
    assert.equal(run(renderTrustScript("create"), masterTrust("ca1")).status, 0);
    setHealthy(false);
    const r = run(renderMemberInstallScript("create", opts(joiner)), memberStdin("g1"), { RAFTKV_HEALTH_TIMEOUT: "2" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /rolled back/);
    assert.match(ctlCalls(), /member add raftkv-4 --learner/);
    assert.match(ctlCalls(), /member remove 1092/);
    assert.doesNotMatch(ctlCalls(), /member promote/);
    assert.equal(readFileSync(path.join(root, "members.json"), "utf8"), '{"members":[]}');
    assert.match(calls(), /systemctl disable --now raftkv\.service/);
  });

  it("install (joining member, backups on): one pre-change backup through the running members before member add; no add when it fails", function () {
    this.timeout(90_000);
    const joiner = plans[3]!;
    assert.equal(run(renderTrustScript("create"), masterTrust("ca1")).status, 0);
    mkdirSync(path.join(root, "etc/raftkv"), { recursive: true });
    writeFileSync(path.join(root, BACKUP.envFile), "RAFTKV_BACKUP_BUCKET=b\nRAFTKV_BACKUP_PREFIX=p\nAWS_REGION=eu-west-1\n");
    const script = renderMemberInstallScript("create", { ...opts(joiner), backupBeforeChange: true });
    const failed = run(script, memberStdin("g1"), { FAIL_BACKUP: "1" });
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /the backup before the change failed/);
    assert.doesNotMatch(ctlCalls(), /member add/, "no member added without its backup");

    rmSync(path.join(root, "ctl.log"));
    const r = run(script, memberStdin("g1"));
    assert.equal(r.status, 0, r.stderr);
    const via = "https://10.42.0.10:2379,https://10.42.1.10:2379,https://10.42.2.10:2379";
    const lines = ctlCalls().split("\n");
    const backup = lines.findIndex((l) => new RegExp(`--endpoints=${via} .*backup run --reason pre-change --skip-if-newer ${BACKUP.preChangeWindowSec}$`).test(l));
    const add = lines.findIndex((l) => / member add raftkv-4 /.test(l));
    assert.ok(backup >= 0 && add > backup, `one backup, then member add:\n${ctlCalls()}`);
    assert.equal(lines.filter((l) => / backup run /.test(l)).length, 1);
  });

  it("leave (joining member, run on a member that stays): removes it by hex ID through the staying members", () => {
    writeFileSync(
      path.join(root, "members.json"),
      `{"members":[{"ID":1,"name":"raftkv-1","peerURLs":["https://10.42.0.10:2380"]},{"ID":${bigId},"name":"raftkv-5","peerURLs":["https://10.42.1.11:2380"]}]}`,
    );
    mkdirSync(path.join(root, "opt/raftkv"), { recursive: true });
    writeFileSync(path.join(root, "opt/raftkv/raftkvctl.cjs"), fakeCtl(root));
    const r = run(renderMemberLeaveScript({ join: plans[4]! }));
    assert.equal(r.status, 0, r.stderr);
    assert.match(ctlCalls(), new RegExp(`member remove ${bigId.toString(16)}\\n`));
    assert.match(ctlCalls(), /--endpoints=https:\/\/10\.42\.0\.10:2379,https:\/\/10\.42\.1\.10:2379,https:\/\/10\.42\.2\.10:2379,https:\/\/10\.42\.0\.11:2379 /);
    assert.doesNotMatch(calls(), /systemctl/, "nothing runs on the host being removed (it may be dead)");

    // Already gone (an earlier attempt removed it): no second removal.
    rmSync(path.join(root, "ctl.log"));
    writeFileSync(path.join(root, "members.json"), `{"members":[{"ID":1,"name":"raftkv-1","peerURLs":["https://10.42.0.10:2380"]}]}`);
    assert.equal(run(renderMemberLeaveScript({ join: plans[4]! })).status, 0);
    assert.doesNotMatch(ctlCalls(), /member remove/);
  });

  it("leave: a bootstrap member has none (it goes only with the whole cluster)", () => {
    assert.throws(() => renderMemberLeaveScript({ join: plans[0]! }), /bootstrap member/);
  });

  it("worker: client key 0600, env file pointing at the load balancer, raftkvctl wrapper", () => {
    assert.equal(run(renderTrustScript("create", "worker"), renderFileBundle([{ name: "ca.crt", content: pem("ca1") }])).status, 0);
    const r = run(
      renderWorkerInstallScript("create", { endpoints: ["https://lb.internal:2379"], uploadDir: "/home/admin", revision: "r1" }),
      renderFileBundle([
        { name: "client.crt", content: pem("worker") },
        { name: "client.key", content: keyPem("worker key") },
      ]),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(mode("etc/raftkv/pki/client.key"), "600");
    const env = readFileSync(path.join(root, HOST.envFile), "utf8");
    assert.match(env, /^ETCDCTL_ENDPOINTS=https:\/\/lb\.internal:2379$/m);
    assert.match(env, /^ETCDCTL_KEY=\/etc\/raftkv\/pki\/client\.key$/m);
  });

  it("the SSH invocation runs the script as root with the command's stdin", () => {
    const inv = sshInvocation(renderTrustScript("update"), "raftkv-1-trust");
    const r = spawnSync("bash", ["-c", inv], {
      input: masterTrust("it's quoted"),
      encoding: "utf8",
      env: { ...process.env, PATH: `${stubs}:${process.env["PATH"]}`, RAFTKV_ROOT: root },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(path.join(root, "etc/raftkv/pki/ca.crt"), "utf8"), pem("it's quoted"));
  });

  it("the health wait turns green as soon as /health does", () => {
    installFirst();
    setHealthy(false);
    const roll = spawn("bash", ["-c", renderMemberRollScript("create", opts(plans[0]!)), "test"], {
      env: { ...process.env, PATH: `${stubs}:${process.env["PATH"]}`, RAFTKV_ROOT: root, RAFTKV_HEALTH_TIMEOUT: "15" },
      stdio: "ignore",
    });
    return new Promise<void>((resolve, reject) => {
      roll.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`roll exited ${String(code)}`))));
      // Health comes back while the script is polling (it polls every 2 s).
      setTimeout(() => setHealthy(true), 500);
      assert.equal(member.metricsPort, port);
    });
  });
});
