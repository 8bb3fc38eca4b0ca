/**
 * IPv6 literal URLs, as etcd accepts them (https://[::1]:2380): a 3-member cluster whose every
 * listener, peer URL, advertised client URL and certificate IP SAN is ::1, reached with Debian's
 * etcdctl 3.4; a fourth member added on ::1 joins through the peer identity check for a member
 * not started yet (its certificate must cover the host of its peer URL: an IPv6 IP SAN, which
 * OpenSSL prints in full). Unusable URLs stay refused (http://, port > 65535).
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { peerUrl } from "../../../components/topology";
import { TestCluster } from "../harness/cluster";
import { etcdctlOn } from "./clients";

function hasIPv6Loopback(): boolean {
  try {
    return /inet6 ::1\/128/.test(execFileSync("ip", ["-6", "addr", "show", "lo"], { encoding: "utf8" }));
  } catch {
    return false;
  }
}

describe("cluster: IPv6 literal URLs", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;

  before(async function () {
    // The test machine and CI have ::1 on lo; say so loudly rather than skip if one does not.
    assert.ok(hasIPv6Loopback(), "this test needs ::1 on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0)");
    c = await TestCluster.start({ size: 3, host: "::1" });
  });
  after(async () => {
    await c?.destroy();
  });

  it("serves etcdctl over [::1], lists bracketed URLs, and adds and starts a member on ::1", async () => {
    const cl = c!;
    const ctl = (args: string[], via = "raftkv-1") => etcdctlOn(cl, via, args);
    const put = await ctl(["put", "v6/k", "v"]);
    assert.equal(put.code, 0, put.stderr);
    for (const m of cl.members) {
      const get = await ctl(["get", "v6/k", "--print-value-only"], m.name);
      assert.equal(get.stdout.trim(), "v", `${m.name}: ${get.stderr}`);
    }
    const list = await ctl(["member", "list"]);
    assert.equal(list.code, 0, list.stderr);
    for (const m of cl.members) {
      assert.ok(list.stdout.includes(`${m.name}, https://[::1]:${m.peerPort}, https://[::1]:${m.clientPort}`), list.stdout);
    }
    const status = await ctl(["endpoint", "status", "--cluster", "-w", "simple"]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.stdout.trim().split("\n").length, 3, status.stdout);
    assert.ok(status.stdout.includes("[::1]"), status.stdout);

    for (const bad of ["http://[::1]:2380", "https://[::1]:70000"]) {
      const r = await ctl(["member", "add", "x", `--peer-urls=${bad}`]);
      assert.notEqual(r.code, 0, `${bad} accepted: ${r.stdout}`);
      assert.match(r.stderr, /etcdserver: given member URLs are invalid/);
    }

    const m4 = await cl.planExtraMember("raftkv-4");
    assert.equal(peerUrl(m4), `https://[::1]:${m4.peerPort}`);
    const add = await ctl(["member", "add", "raftkv-4", `--peer-urls=${peerUrl(m4)}`, "--learner"]);
    assert.equal(add.code, 0, add.stderr);
    cl.startMember("raftkv-4", cl.flags(m4, "existing", cl.members));
    await cl.waitHealthy(["raftkv-4"], 90_000);
    const got = await ctl(["get", "v6/k", "--print-value-only", "--consistency=s"], "raftkv-4");
    assert.equal(got.stdout.trim(), "v", got.stderr);
    assert.doesNotMatch(cl.log("raftkv-4"), /rejected peer connection/);
    for (const m of cl.members.slice(0, 3)) assert.doesNotMatch(cl.log(m.name), /rejected peer connection/);
  });
});
