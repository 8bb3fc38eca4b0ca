/**
 * The install ships only raftkv.cjs and raftkvctl.cjs to /opt/raftkv. This copies exactly those
 * two files, as built by scripts/build.mjs, into an empty directory far from the repository and
 * runs a real member and raftkvctl from there (issue 10: the bundles used to look for proto/
 * beside themselves and crash-looped with "etcd API definitions ... not found").
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderMemberFlags, type MemberEndpoint } from "../../components/topology";
import { writeClusterPki } from "../../node-runtime/pki";
import { fetchStatus } from "../../node-runtime/cli/local-status";
import { freePort } from "../helpers/free-port";
import { runCli } from "../helpers/run-cli";

const REPO = path.resolve(__dirname, "..", "..");

describe("bundles copied alone (what the install ships)", function () {
  this.timeout(120_000);
  let work: string;
  let opt: string;
  let member: ChildProcess | undefined;

  before(() => {
    work = mkdtempSync(path.join(os.tmpdir(), "raftkv-standalone-"));
    const out = path.join(work, "build");
    const r = spawnSync(process.execPath, [path.join(REPO, "scripts", "build.mjs"), "--outdir", out, "raftkv", "raftkvctl"], { cwd: work, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    // /opt/raftkv: the two files and nothing else, away from the repository.
    opt = path.join(work, "opt", "raftkv");
    spawnSync("mkdir", ["-p", opt]);
    for (const f of ["raftkv.cjs", "raftkvctl.cjs"]) copyFileSync(path.join(out, f), path.join(opt, f));
  });

  after(async () => {
    if (member && member.exitCode === null && member.signalCode === null) {
      await new Promise<void>((resolve) => {
        member!.once("exit", () => resolve());
        member!.kill("SIGKILL");
      });
    }
    rmSync(work, { recursive: true, force: true });
  });

  it("a member starts and serves gRPC and JSON, and raftkvctl works, from the two files alone", async () => {
    // One member is enough to prove the bundle loads its API (planLocalMembers wants 3, 5 or 7).
    const m: MemberEndpoint | undefined = { name: "raftkv-1", host: "127.0.0.1", clientPort: await freePort(), peerPort: await freePort(), metricsPort: await freePort() };
    const pki = await writeClusterPki(path.join(work, "pki"), [m!], ["admin"]);
    const flags = renderMemberFlags(m!, [m!], {
      dataDir: path.join(work, "data"),
      certDir: path.join(work, "pki", m!.name),
      clusterToken: "standalone",
      clusterState: "new",
      listenHost: "127.0.0.1",
    });
    const logFile = path.join(work, "member.log");
    const fd = openSync(logFile, "a");
    // No RAFTKV_PROTO_DIR, cwd = the install directory: nothing but the bundle to go on.
    const env = { ...process.env };
    delete env["RAFTKV_PROTO_DIR"];
    member = spawn(process.execPath, [path.join(opt, "raftkv.cjs"), ...flags], { cwd: opt, env, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const st = await fetchStatus(m!);
      if (st?.healthy) break;
      assert.ok(member.exitCode === null && member.signalCode === null, `member exited:\n${readFileSync(logFile, "utf8").slice(-2000)}`);
      assert.ok(Date.now() < deadline, `member not healthy:\n${readFileSync(logFile, "utf8").slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const admin = pki.clients["admin"]!;
    const ctlEnv = {
      RAFTKV_PROTO_DIR: undefined,
      ETCDCTL_API: "3",
      ETCDCTL_ENDPOINTS: `127.0.0.1:${m!.clientPort}`,
      ETCDCTL_CACERT: admin.ca,
      ETCDCTL_CERT: admin.cert,
      ETCDCTL_KEY: admin.key,
    };
    const ctl = (args: string[]) => runCli(process.execPath, [path.join(opt, "raftkvctl.cjs"), ...args], ctlEnv, { cwd: opt, timeoutMs: 30_000 });
    const put = await ctl(["put", "name", "john"]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout.trim(), "OK");
    const get = await ctl(["get", "name"]);
    assert.equal(get.stdout, "name\njohn\n");
    // The JSON gateway parses the same embedded definitions.
    const r = await runCli("curl", ["-s", "-S", "--max-time", "10", "--cacert", admin.ca, "--cert", admin.cert, "--key", admin.key, "-X", "POST", "-d", '{"key":"bmFtZQ=="}', `https://127.0.0.1:${m!.clientPort}/v3/kv/range`], {}, { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { kvs?: Array<{ value: string }> };
    assert.equal(Buffer.from(body.kvs![0]!.value, "base64").toString(), "john");
  });
});
