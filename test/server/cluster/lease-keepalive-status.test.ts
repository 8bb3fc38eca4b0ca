/**
 * A LeaseKeepAlive stream that fails ends with a gRPC status, as etcd ends it: here a user
 * keeping alive a lease whose key it may not write gets PERMISSION_DENIED with etcd's message in
 * the stream's trailers. grpc-js's call.destroy(err) (what the handler used) sends no status:
 * the client then waits forever, or takes the reset for a failed host.
 */
import { strict as assert } from "node:assert";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { loadEtcdGrpc } from "../../../node-runtime/server/proto";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { runCli } from "../../helpers/run-cli";
import { TestCluster } from "../harness/cluster";

describe("cluster: a failed lease keep-alive stream ends with a status", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  const clients: grpc.Client[] = [];

  before(async function () {
    this.timeout(120_000);
    c = await TestCluster.start({ size: 3, extraFlags: ["--bcrypt-cost=4"] });
  });
  after(async () => {
    for (const x of clients) x.close();
    await c?.destroy();
  });

  it("PERMISSION_DENIED for a lease attached to a key the user may not write", async () => {
    const env = { ...c!.ctlEnv(["raftkv-1"]), ETCDCTL_DIAL_TIMEOUT: "20s", ETCDCTL_COMMAND_TIMEOUT: "30s" };
    const ctl = async (...args: string[]): Promise<string> => {
      const r = await runCli(ETCDCTL_BIN, args, env, { timeoutMs: 60_000 });
      assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const lease = /lease ([0-9a-f]+) granted/.exec(await ctl("lease", "grant", "600"))![1]!;
    await ctl("put", "/b/leased", "x", `--lease=${lease}`);
    await ctl("user", "add", "root:rootpw");
    await ctl("user", "add", "alice:apw");
    await ctl("role", "add", "ra");
    await ctl("role", "grant-permission", "ra", "readwrite", "/a/", "--prefix");
    await ctl("user", "grant-role", "alice", "ra");
    await ctl("auth", "enable");

    const admin = c!.pki.clients["admin"]!;
    const creds = grpc.credentials.createSsl(readFileSync(admin.ca), readFileSync(admin.key), readFileSync(admin.cert));
    const address = `127.0.0.1:${c!.member("raftkv-1").clientPort}`;
    const { clients: ctors } = loadEtcdGrpc();
    const auth = new ctors.Auth(address, creds);
    const leases = new ctors.Lease(address, creds);
    clients.push(auth, leases);
    const token = await new Promise<string>((resolve, reject) =>
      (auth as unknown as { Authenticate: (r: object, o: grpc.CallOptions, cb: (e: Error | null, r: { token: string }) => void) => void }).Authenticate(
        { name: "alice", password: "apw" },
        { deadline: Date.now() + 30_000 },
        (e, r) => (e ? reject(e) : resolve(r.token)),
      ),
    );
    const md = new grpc.Metadata();
    md.set("token", token);
    const stream = (leases as unknown as { LeaseKeepAlive: (md: grpc.Metadata) => grpc.ClientDuplexStream<object, unknown> }).LeaseKeepAlive(md);
    const outcome = new Promise<grpc.StatusObject>((resolve) => {
      stream.on("error", () => undefined);
      stream.on("status", (s: grpc.StatusObject) => resolve(s));
    });
    stream.write({ ID: BigInt(`0x${lease}`).toString() });
    const noStatus = new Promise<"no status">((resolve) => setTimeout(() => resolve("no status"), 30_000));
    const s = await Promise.race([outcome, noStatus]);
    stream.cancel();
    assert.notEqual(s, "no status", "the stream ended without a status");
    const st = s as grpc.StatusObject;
    assert.equal(st.code, grpc.status.PERMISSION_DENIED);
    assert.equal(st.details, "etcdserver: permission denied");
  });
});
