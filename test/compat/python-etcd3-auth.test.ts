/**
 * python-etcd3 (Debian's python3-etcd3 0.12), unmodified, logs in with a user and password
 * (its `user=`/`password=` options: Authenticate, then the token on every call) against a
 * 3-member raftkv cluster with auth enabled, as its own test_user_pwd_auth does against etcd:
 * the user reads and writes its prefix and is refused elsewhere with etcd's permission error.
 */
import { strict as assert } from "node:assert";
import { ETCDCTL_BIN } from "../helpers/etcd-reference";
import { cleanCtlEnv, runCli } from "../helpers/run-cli";
import { TestCluster } from "../server/harness/cluster";

const PYTHON = "/usr/bin/python3";

const SCRIPT = `
import json, sys, etcd3
host, port, ca, cert, key = sys.argv[1:6]
c = etcd3.client(host=host, port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key, user="alice", password="alicepw", timeout=20)
c.put("/py/k", "from-python")
out = {"get": c.get("/py/k")[0].decode()}
try:
    c.get("/other/k")
    out["other"] = "allowed"
except Exception as e:
    out["other"] = type(e).__name__ + ": " + str(e)
try:
    etcd3.client(host=host, port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key, user="alice", password="wrong", timeout=20).get("/py/k")
    out["wrong"] = "allowed"
except Exception as e:
    out["wrong"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
`;

describe("python-etcd3: password auth against a 3-member raftkv cluster", function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;

  before(async function () {
    this.timeout(90_000);
    c = await TestCluster.start({ size: 3, extraFlags: ["--bcrypt-cost=4"] });
    const env = cleanCtlEnv(c.ctlEnv(["raftkv-1"]));
    for (const args of [
      ["user", "add", "root:rootpw"],
      ["user", "grant-role", "root", "root"],
      ["user", "add", "alice:alicepw"],
      ["role", "add", "py"],
      ["role", "grant-permission", "py", "readwrite", "/py/", "--prefix"],
      ["user", "grant-role", "alice", "py"],
      ["auth", "enable"],
    ]) {
      const r = await runCli(ETCDCTL_BIN, args, env, { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
    }
  });
  after(async () => {
    await c?.destroy();
  });

  it("logs in, writes and reads its prefix, and is refused elsewhere and with a wrong password", async () => {
    const admin = c!.pki.clients["admin"]!;
    const r = await runCli(PYTHON, ["-c", SCRIPT, "127.0.0.1", String(c!.member("raftkv-2").clientPort), admin.ca, admin.cert, admin.key], {}, { timeoutMs: 50_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, string>;
    assert.equal(out["get"], "from-python");
    assert.match(out["other"]!, /permission denied/);
    assert.match(out["wrong"]!, /authentication failed, invalid user ID or password/);
  });
});
