/**
 * Every value the API accepts must survive the log (issue 15, critical #1). Each request below
 * once passed validation and then killed every member on apply, on every restart: integers of
 * 2^62 and more (the codec wrote a 10-byte varint its decoder refused) and peer URLs the
 * transport cannot dial. Driven with Debian's etcdctl against a real 3-member cluster: each
 * request gets etcd 3.4.23's answer, the cluster keeps serving, and every member survives a
 * restart afterwards (the log holds nothing that cannot be applied).
 */
import { strict as assert } from "node:assert";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { cleanCtlEnv, runCli, type CliResult } from "../../helpers/run-cli";
import { TestCluster } from "../harness/cluster";
import { RawPool, rejection } from "./clients";
import { curl, json } from "../gateway/support";

const INT64_MAX = "9223372036854775807";
const INT64_MIN = "-9223372036854775808";

describe("cluster: every accepted value survives the log", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool | undefined;
  const names = () => c!.members.map((m) => m.name);

  before(async () => {
    c = await TestCluster.start({ size: 3 });
    pool = new RawPool(c);
  });
  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  function etcdctl(args: string[], opts: { endpoint?: string; stdin?: string } = {}): Promise<CliResult> {
    const env = { ...cleanCtlEnv(), ...c!.ctlEnv(opts.endpoint ? [opts.endpoint] : undefined) };
    return runCli(ETCDCTL_BIN, ["--dial-timeout=3s", "--command-timeout=10s", ...args], env, { timeoutMs: 30_000, ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) });
  }

  /** etcdctl failed with exactly this last line (etcdctl prints "Error: <server message>"). */
  async function refused(args: string[], message: string, stdin?: string): Promise<void> {
    for (const n of names()) {
      const r = await etcdctl(args, { endpoint: n, ...(stdin !== undefined ? { stdin } : {}) });
      assert.notEqual(r.code, 0, `${args.join(" ")} succeeded on ${n}: ${r.stdout}`);
      const last = r.stderr.trim().split("\n").pop() ?? "";
      assert.ok(last.includes(message), `${args.join(" ")} on ${n}: expected ${JSON.stringify(message)}, got ${JSON.stringify(last)}`);
    }
  }

  let round = 0;
  /** Every member is running, takes a write and serves it back linearizably. */
  async function allStillServe(): Promise<void> {
    round++;
    for (const n of names()) {
      assert.ok(c!.running(n), `${n} exited:\n${c!.log(n).slice(-2000)}`);
      const put = await etcdctl(["put", `alive/${n}`, String(round)], { endpoint: n });
      assert.equal(put.code, 0, `put on ${n}: ${put.stderr}`);
    }
    for (const n of names()) {
      const get = await etcdctl(["get", "alive/", "--prefix", "--print-value-only"], { endpoint: n });
      assert.equal(get.code, 0, get.stderr);
      assert.deepEqual(get.stdout.trim().split("\n"), names().map(() => String(round)));
    }
  }

  it("compaction at int64 extremes gets etcd's answers", async () => {
    await refused(["compaction", INT64_MAX], "etcdserver: mvcc: required revision is a future revision");
    await refused(["compaction", "--", INT64_MIN], "etcdserver: mvcc: required revision has been compacted");
    await refused(["compaction", "4611686018427387904"], "etcdserver: mvcc: required revision is a future revision");
    await allStillServe();
  });

  it("lease grant beyond etcd's maximum TTL is refused; a negative TTL gets the minimum", async () => {
    await refused(["lease", "grant", INT64_MAX], "etcdserver: too large lease TTL");
    await refused(["lease", "grant", "9000000001"], "etcdserver: too large lease TTL");
    const neg = await etcdctl(["lease", "grant", "--", "-5"]);
    assert.equal(neg.code, 0, neg.stderr);
    assert.match(neg.stdout, /granted with TTL\(\d+s\)/);
    await allStillServe();
  });

  it("txn with int64 extremes in compares and in range limit/revision", async () => {
    assert.equal((await etcdctl(["put", "t", "v"])).code, 0);
    // A range at a future revision inside a txn fails the whole txn, as in etcd.
    await refused(
      ["txn"],
      "etcdserver: mvcc: required revision is a future revision",
      `version("t") < "${INT64_MAX}"\nmod("t") > "${INT64_MIN}"\n\nget t --rev=${INT64_MAX}\n\n\n`,
    );
    // Extreme compare values and limits are valid: the compare fails, the else branch reads.
    const r = await etcdctl(["txn"], { stdin: `create("t") = "${INT64_MAX}"\nversion("t") > "4611686018427387904"\n\n\nget t --limit=${INT64_MAX}\n\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["FAILURE", "", "t", "v"]);
    const neg = await etcdctl(["txn"], { stdin: `mod("t") > "${INT64_MIN}"\n\nget t --rev=-5 --limit=-3\n\n\n` });
    assert.equal(neg.code, 0, neg.stderr);
    assert.deepEqual(neg.stdout.trim().split("\n"), ["SUCCESS", "", "t", "v"]);
    await allStillServe();
  });

  it("member add/update refuse peer URLs the transport cannot use, before proposing", async () => {
    const bad = ["http://127.0.0.1:12380", "http://[::1]:2380", "https://[::1]:70000", "https://[127.0.0.1]:2380", "https://[::1%25lo]:2380", "https://127.0.0.1:70000", "https://host_x:2380"];
    for (const url of bad) await refused(["member", "add", "x", `--peer-urls=${url}`], "etcdserver: given member URLs are invalid");
    // etcdctl refuses a URL without a scheme itself; a raw client reaches the server with it.
    for (const n of names()) {
      for (const peerURLs of [["garbage"], [], ["https://127.0.0.1"], ["https://127.0.0.1:2380/path"], ["https://127.0.0.1:2380", "http://127.0.0.1:2381"]]) {
        assert.equal(await rejection(pool!.of(n).call("Cluster", "MemberAdd", { peerURLs })), "etcdserver: given member URLs are invalid");
      }
    }
    const list = await etcdctl(["member", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim().split("\n").length, 3, list.stdout);
    const id = list.stdout.split(",")[0]!.trim();
    for (const url of bad) await refused(["member", "update", id, `--peer-urls=${url}`], "etcdserver: given member URLs are invalid");
    await allStillServe();
  });

  it("the JSON gateway goes through the same validation (int64 extremes as JSON strings)", async () => {
    const admin = c!.pki.clients["admin"]!;
    const files = { ca: admin.ca, cert: admin.cert, key: admin.key };
    const cases: Array<[string, string, string]> = [
      ["/v3/kv/compaction", `{"revision":"${INT64_MAX}"}`, "etcdserver: mvcc: required revision is a future revision"],
      ["/v3/lease/grant", `{"TTL":"${INT64_MAX}"}`, "etcdserver: too large lease TTL"],
      ["/v3/kv/txn", `{"success":[{"request_range":{"key":"dA==","revision":"${INT64_MAX}","limit":"${INT64_MIN}"}}]}`, "etcdserver: mvcc: required revision is a future revision"],
      ["/v3/cluster/member/add", `{"peerURLs":["http://127.0.0.1:12380"]}`, "etcdserver: given member URLs are invalid"],
    ];
    for (const n of names()) {
      for (const [path, body, message] of cases) {
        const r = await curl(`https://127.0.0.1:${c!.member(n).clientPort}`, path, body, files);
        const err = json(r) as { error?: string; message?: string };
        assert.equal(err.message ?? err.error, message, `${path} ${body} on ${n}: ${r.status} ${r.body}`);
      }
    }
    await allStillServe();
  });

  it("afterwards every member survives a restart: nothing in the log fails to apply", async () => {
    for (const n of names()) {
      await c!.kill(n, "SIGKILL");
      c!.startMember(n);
      await c!.waitHealthy(names(), 60_000);
    }
    await allStillServe();
    for (const n of names()) assert.doesNotMatch(c!.log(n), /cannot apply committed entry|"level":60/, `${n} log`);
    const alarms = await etcdctl(["alarm", "list"]);
    assert.equal(alarms.code, 0, alarms.stderr);
    assert.equal(alarms.stdout.trim(), "");
  });
});
