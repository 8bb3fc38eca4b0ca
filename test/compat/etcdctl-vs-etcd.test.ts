/**
 * Debian's etcdctl 3.4 against two servers given the same commands in the same order: the
 * reference etcd 3.4.23 (one member) and a raftkv cluster (three members, the client talking
 * to one of them, or to all where the command takes several endpoints). Both start at revision
 * 1, so revisions, keys, values, versions, counts, error strings and exit codes must agree;
 * only IDs, raft terms, versions, sizes, timings and addresses are replaced by placeholders.
 */
import { strict as assert } from "node:assert";
import { statSync } from "node:fs";
import * as path from "node:path";
import { ETCDCTL_BIN, startReferenceEtcd, type ReferenceEtcd } from "../helpers/etcd-reference";
import { cleanCtlEnv, runCli, type CliResult } from "../helpers/run-cli";
import { runUntil } from "../helpers/stream-cli";
import { TestCluster } from "../server/harness/cluster";
import { assertSameResult, errorLines, jsonShape, normaliseIds, normaliseTtl, replaceAll, sortLeaseKeys, tableRows, type Compared } from "./support";
import { COMMON_GET_CASES, SEED_KEYS } from "../helpers/ctl-fixtures";

type Env = Record<string, string | undefined>;

describe("etcdctl 3.4 gets the same answers from raftkv (3 members) as from etcd 3.4", function () {
  this.timeout(60_000);
  let etcd: ReferenceEtcd | undefined;
  let cluster: TestCluster | undefined;
  let refEnv: Env;
  /** One raftkv member: most commands talk to a single endpoint, like the reference. */
  let oneEnv: Env;
  /** Every raftkv member, for the commands that report per endpoint. */
  let allEnv: Env;

  interface RunOpts {
    stdin?: string;
    all?: boolean;
  }
  const run = (env: Env, args: string[], o: RunOpts): Promise<CliResult> =>
    runCli(ETCDCTL_BIN, args, env, { timeoutMs: 20_000, ...(o.stdin === undefined ? {} : { stdin: o.stdin }) });

  async function both(args: string[], o: RunOpts = {}): Promise<Compared> {
    const [a, b] = await Promise.all([run(refEnv, args, o), run(o.all ? allEnv : oneEnv, args, o)]);
    return { a, b };
  }

  async function same(args: string[], o: RunOpts & { norm?: (s: string) => string } = {}): Promise<Compared> {
    const r = await both(args, o);
    assertSameResult(`etcdctl ${args.join(" ")}`, r.a, r.b, o.norm);
    return r;
  }

  before(async function () {
    this.timeout(90_000);
    const [e, c] = await Promise.allSettled([startReferenceEtcd(), TestCluster.start({ size: 3 })]);
    if (e.status === "fulfilled") etcd = e.value;
    if (c.status === "fulfilled") cluster = c.value;
    if (e.status === "rejected") throw e.reason;
    if (c.status === "rejected") throw c.reason;
    refEnv = cleanCtlEnv(etcd!.ctlEnv);
    oneEnv = cleanCtlEnv(cluster!.ctlEnv(["raftkv-1"]));
    allEnv = cleanCtlEnv(cluster!.ctlEnv());
  });
  after(async () => {
    await Promise.all([etcd?.stop(), cluster?.destroy()]);
  });

  // Mocha runs a suite's own tests before its child suites, so every stage is a suite: the
  // state both servers are compared on is built in this order.
  describe("put", () => {
    it("the same answers and revisions for the same writes", async () => {
      for (const [k, v] of SEED_KEYS) {
        await same(["put", k, v]);
      }
      const { b } = await same(["put", "p1", "v1", "-w", "json"]);
      assert.match(b.stdout, /"revision":9,/);
      await same(["put", "p1", "v2", "--prev-kv"]);
      await same(["put", "p1", "v3", "--prev-kv", "-w", "json"]);
      await same(["put", "", "v"]);
      await same(["put", "k", "v", "--lease", "1234"]);
      // Over --max-request-bytes (1.5 MiB on both), the value read from stdin.
      await same(["put", "big"], { stdin: "x".repeat(1_700_000) });
    });
  });

  describe("get", () => {
    const cases: string[][] = [
      ...COMMON_GET_CASES,
      ["get", "foo", "--prefix", "--limit", "1", "-w", "json"],
      ["get", "foo", "--prefix", "--sort-by", "CREATE", "--order", "DESCEND", "--keys-only"],
      ["get", "foo", "--prefix", "--consistency", "s"],
      ["get", "foo2", "--rev", "3"],
      ["get", "foo2", "--rev", "7", "-w", "json"],
      ["get", "foo2", "--rev", "99"],
      ["get", "foo", "--prefix", "-w", "json"],
      ["get", "foo", "--prefix", "--keys-only", "-w", "json"],
      ["get", "nothing-here", "-w", "json"],
      ["get", "foo", "-w", "table"],
      ["get", "foo", "-w", "fields"],
      ["get", ""],
    ];
    for (const args of cases) it(args.join(" "), () => same(args).then(() => undefined));
  });

  describe("del, txn, watch", () => {
    it("del with --prefix, --prev-kv, --from-key, and its errors", async () => {
      for (const k of ["d/1", "d/2", "d/3"]) await same(["put", k, `v-${k}`]);
      await same(["del", "d/", "--prefix", "--prev-kv"]);
      await same(["put", "x", "1"]);
      await same(["del", "x", "--prev-kv", "-w", "json"]);
      await same(["del", "no-such-key"]);
      await same(["del", "no-such-key", "-w", "json"]);
      await same(["del", ""]);
      await same(["del", "~", "--from-key"]);
    });

    it("txn from stdin: success and failure branches, simple and json", async () => {
      await same(["txn"], { stdin: 'value("foo") = "bar"\n\nput t1 one\nget foo\n\nput t1 other\n\n' });
      await same(["txn"], { stdin: 'value("foo") = "nope"\n\nput t2 one\n\nput t2 other\ndel t1\n\n' });
      await same(["txn", "-w", "json"], { stdin: 'mod("foo2") > "3"\nversion("foo2") = "2"\n\nget foo --prefix --keys-only\n\nget zeta\n\n' });
      await same(["txn", "-w", "json"], { stdin: 'create("foo") > "5"\n\nget foo\n\ndel t2 --prev-kv\n\n' });
      await same(["get", "t", "--prefix", "-w", "json"]);
      await same(["txn"], { stdin: 'mod("foo") > "0"\n\nput\n\n' });
      const puts = (n: number, key: (i: number) => string): string => Array.from({ length: n }, (_, i) => `put ${key(i)} v\n`).join("");
      await same(["txn"], { stdin: `\n${puts(129, (i) => `many/${i}`)}\n\n` });
      await same(["txn"], { stdin: `\n${puts(2, () => "dup")}\n\n` });
    });

    it("watch replays history with --rev, --prefix and --prev-kv", async () => {
      await same(["put", "w/1", "a"]);
      await same(["put", "w/1", "b"]);
      await same(["del", "w/1"]);
      const { b } = await same(["put", "w/2", "c", "-w", "json"]);
      const last = Number(/"revision":(\d+)/.exec(b.stdout)![1]);
      const from = String(last - 3);
      // Each watch is done once it printed its last event: the put of w/2 (as JSON, "c" is
      // "Yw=="), or for w/1 alone its delete.
      const cases: Array<[string[], (o: string) => boolean]> = [
        [["w/", "--prefix"], (o) => o.endsWith("w/2\nc\n")],
        [["w/", "--prefix", "--prev-kv"], (o) => o.endsWith("w/2\nc\n")],
        [["w/", "--prefix", "-w", "json"], (o) => o.includes('"Yw=="')],
        [["w/1"], (o) => o.includes("DELETE\nw/1\n")],
      ];
      for (const [extra, enough] of cases) {
        const args = ["watch", ...extra, "--rev", from];
        const [ra, rb] = await Promise.all([
          runUntil(ETCDCTL_BIN, args, refEnv, enough, 10_000, 300),
          runUntil(ETCDCTL_BIN, args, oneEnv, enough, 10_000, 300),
        ]);
        assert.equal(ra.timedOut, false, `reference watch ${args.join(" ")}: ${ra.stderr}`);
        assert.equal(normaliseIds(rb.stdout), normaliseIds(ra.stdout), `watch ${args.join(" ")}`);
      }
    });

    it("watch sees a live put", async () => {
      const watchers = [refEnv, oneEnv].map((env) => runUntil(ETCDCTL_BIN, ["watch", "live", "--prev-kv"], env, (o) => o.includes("now\n"), 15_000));
      let settled = 0;
      for (const w of watchers) void w.then(() => settled++);
      // A watch may not be registered yet when a put lands, so keep writing until both print it;
      // the same number of puts goes to each server so revisions stay in step.
      for (let i = 0; i < 100 && settled < 2; i++) {
        await same(["put", "live", "now"]);
        await new Promise((r) => setTimeout(r, 100));
      }
      const [wa, wb] = await Promise.all(watchers);
      // Which put a watch sees first depends on when it registered; each event reads the same.
      assert.match(wa.stdout, /^PUT\n(live\nnow\n)?live\nnow\n/);
      assert.match(wb.stdout, /^PUT\n(live\nnow\n)?live\nnow\n/);
    });

  });

  describe("lease", () => {
    it("lease grant, timetolive --keys, list, keep-alive --once, revoke", async () => {
      const g = await both(["lease", "grant", "300"]);
      const idRe = /^lease ([0-9a-f]{16}) granted with TTL\(300s\)\n$/;
      const [ida, idb] = [idRe.exec(g.a.stdout)?.[1], idRe.exec(g.b.stdout)?.[1]];
      assert.ok(ida && idb, `${g.a.stdout} / ${g.b.stdout} ${g.b.stderr}`);
      const dec = (h: string): string => BigInt(`0x${h}`).toString();
      const sameLease = async (args: (id: string) => string[]): Promise<Compared> => {
        const [a, b] = await Promise.all([run(refEnv, args(ida), {}), run(oneEnv, args(idb), {})]);
        const norm = (s: string): string =>
          sortLeaseKeys(normaliseTtl(normaliseIds(replaceAll(s, { [ida]: "LEASE", [idb]: "LEASE", [dec(ida)]: "LEASE", [dec(idb)]: "LEASE" }))));
        assertSameResult(`etcdctl ${args("<id>").join(" ")}`, a, b, norm);
        return { a, b };
      };
      await sameLease((id) => ["put", "leased/1", "v", "--lease", id]);
      await sameLease((id) => ["put", "leased/2", "v", "--lease", id]);
      await sameLease((id) => ["lease", "timetolive", id]);
      await sameLease((id) => ["lease", "timetolive", id, "--keys"]);
      await sameLease((id) => ["lease", "timetolive", id, "--keys", "-w", "json"]);
      await sameLease(() => ["lease", "list"]);
      await sameLease(() => ["lease", "list", "-w", "json"]);
      await sameLease((id) => ["lease", "keep-alive", "--once", id]);
      await sameLease((id) => ["lease", "keep-alive", "--once", id, "-w", "json"]);
      await sameLease(() => ["get", "leased/", "--prefix", "-w", "json"]);
      await sameLease((id) => ["lease", "revoke", id]);
      await sameLease(() => ["get", "leased/", "--prefix", "-w", "json"]);
      await sameLease((id) => ["lease", "timetolive", id]);
      await sameLease((id) => ["lease", "revoke", id]);
      await sameLease((id) => ["lease", "keep-alive", "--once", id]);
      await same(["lease", "timetolive", "1234"]);
      await same(["lease", "revoke", "1234"]);
      await same(["lease", "grant", "9999999999"]);
    });
  });

  describe("cluster and maintenance", () => {
    it("member list: the same columns in simple, table and json", async () => {
      const line = /^[0-9a-f]+, started, [\w-]+, https:\/\/127\.0\.0\.1:\d+, https:\/\/127\.0\.0\.1:\d+, false$/;
      const simple = await same(["member", "list"], { norm: () => "" });
      for (const l of [...simple.a.stdout.trim().split("\n"), ...simple.b.stdout.trim().split("\n")]) assert.match(l, line);
      assert.equal(simple.b.stdout.trim().split("\n").length, 3);
      const table = await same(["member", "list", "-w", "table"], { norm: () => "" });
      const [ta, tb] = [tableRows(table.a.stdout), tableRows(table.b.stdout)];
      assert.deepEqual(tb[0], ta[0]);
      assert.deepEqual(ta[0], ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]);
      assert.equal(tb.length, 4);
      for (const row of tb.slice(1)) assert.deepEqual([row[1], row[5]], [ta[1]![1], ta[1]![5]]);
      const json = await same(["member", "list", "-w", "json"], { norm: () => "" });
      const [ja, jb] = [JSON.parse(json.a.stdout) as unknown, JSON.parse(json.b.stdout) as unknown];
      assert.deepEqual(jsonShape(jb), jsonShape(ja));
    });

    it("member add --learner, promote refused, remove; errors as etcd's", async () => {
      // A learner whose peer URL never answers: both servers accept it and keep serving (a
      // voter would cost the one-member reference its quorum, so that is not compared).
      const add = ["member", "add", "learner-x", "--peer-urls=https://127.0.0.1:9", "--learner"];
      const initialCluster = (s: string): string =>
        s.replace(/^ETCD_INITIAL_CLUSTER="(.*)"$/m, (_, list: string) => {
          const entries = list.split(",").map((e) => (e.startsWith("learner-x=") ? e : "MEMBER"));
          return `ETCD_INITIAL_CLUSTER="${[...new Set(entries)].sort().join(",")}"`;
        });
      const added = await same(add, { norm: (s) => initialCluster(normaliseIds(s)) });
      const idOf = (s: string): string => /Member +([0-9a-f]+) added/.exec(s)![1]!;
      const [ida, idb] = [idOf(added.a.stdout), idOf(added.b.stdout)];
      const list = await both(["member", "list"]);
      const learnerLine = (s: string, id: string): string => s.split("\n").find((l) => l.startsWith(`${id},`))!.replace(id, "ID");
      assert.equal(learnerLine(list.b.stdout, idb), learnerLine(list.a.stdout, ida));
      assert.equal(learnerLine(list.a.stdout, ida), "ID, unstarted, , https://127.0.0.1:9, , true");
      const lj = await both(["member", "list", "-w", "json"]);
      type MemberJson = { members: Array<{ ID: number; isLearner?: boolean }> };
      const learnerJson = (s: string): string => {
        const learner = (JSON.parse(s) as MemberJson).members.find((m) => m.isLearner);
        return JSON.stringify({ ...learner, ID: "ID" });
      };
      assert.equal(learnerJson(lj.b.stdout), learnerJson(lj.a.stdout));
      await same(["member", "add", "learner-y", "--peer-urls=https://127.0.0.1:10", "--learner"]);
      // A second add of the same peer URL is not compared: etcd 3.4 derives the new ID from the
      // URLs and the current second, so within that second it answers "member ID already exist"
      // and later "Peer URLs already exists" (raftkv's answer).
      const per = async (args: (id: string) => string[]): Promise<void> => {
        const [a, b] = await Promise.all([run(refEnv, args(ida), {}), run(oneEnv, args(idb), {})]);
        assertSameResult(`etcdctl ${args("<id>").join(" ")}`, a, b);
      };
      await per((id) => ["member", "promote", id]);
      await per((id) => ["member", "remove", id]);
      await per((id) => ["member", "remove", id]);
      await same(["member", "remove", "1234"]);
      await same(["member", "promote", "1234"]);
      await same(["member", "remove", "zz"]);
      const after = await both(["member", "list"]);
      assert.equal(after.b.stdout.trim().split("\n").length, 3);
      assert.doesNotMatch(after.a.stdout + after.b.stdout, /unstarted/);
    });

    it("endpoint status: the same columns in simple, table and json, --cluster too", async () => {
      const cells = (l: string): string[] => l.split(", ");
      for (const extra of [[], ["--cluster"]]) {
        const r = await same(["endpoint", "status", ...extra], { all: true, norm: () => "" });
        const lines = (s: string): string[][] => s.split("\n").filter((l) => l !== "").map(cells);
        const ref = lines(r.a.stdout)[0]!;
        const ours = lines(r.b.stdout);
        assert.equal(ours.length, 3);
        assert.equal(ours.filter((c) => c[4] === "true").length, 1, r.b.stdout);
        for (const c of ours) {
          assert.equal(c.length, ref.length);
          assert.match(c[0]!, /^(https:\/\/)?127\.0\.0\.1:\d+$/);
          assert.match(c[1]!, /^[0-9a-f]+$/);
          assert.match(c[2]!, /^3\.4\.\d+$/);
          assert.match(c[3]!, /^[\d.]+ [kM]?B$/);
          assert.deepEqual([c[5], c[9]], [ref[5], ref[9]]);
        }
      }
      const t = await same(["endpoint", "status", "-w", "table"], { all: true, norm: () => "" });
      assert.deepEqual(tableRows(t.b.stdout)[0], tableRows(t.a.stdout)[0]);
      const j = await same(["endpoint", "status", "-w", "json", "--cluster"], { all: true, norm: () => "" });
      const [ja, jb] = [JSON.parse(j.a.stdout) as unknown[], JSON.parse(j.b.stdout) as unknown[]];
      assert.equal(jb.length, 3);
      assert.deepEqual(jsonShape(jb), jsonShape(ja));
      const revs = (s: string): string[] => [...s.matchAll(/"revision":(\d+)/g)].map((m) => m[1]!);
      assert.deepEqual(new Set(revs(j.b.stdout)), new Set(revs(j.a.stdout)), "every member at the reference's revision");
    });

    it("endpoint health: one line per endpoint on stderr, --cluster too", async () => {
      for (const extra of [[], ["--cluster"]]) {
        const r = await both(["endpoint", "health", ...extra], { all: true });
        assert.equal(r.b.code, r.a.code);
        assert.equal(r.b.stdout, r.a.stdout);
        const lines = (s: string): string[] =>
          s
            .split("\n")
            .filter((l) => l !== "" && !l.startsWith("{"))
            .map((l) => l.replace(/^(https:\/\/)?127\.0\.0\.1:\d+/, "EP").replace(/took = [0-9.]+(ns|µs|ms|s)$/, "took = T"));
        const ref = lines(r.a.stderr);
        assert.deepEqual(ref, ["EP is healthy: successfully committed proposal: took = T"]);
        assert.deepEqual(lines(r.b.stderr), [ref[0], ref[0], ref[0]]);
      }
    });

    it("endpoint hashkv: the same members agree, never-compacted shows -1", async () => {
      const r = await same(["endpoint", "hashkv", "-w", "json"], { all: true, norm: () => "" });
      type HashKv = Array<{ HashKV: { hash: number; compact_revision: number } }>;
      const [a, b] = [JSON.parse(r.a.stdout) as HashKv, JSON.parse(r.b.stdout) as HashKv];
      assert.deepEqual(jsonShape(b), jsonShape(a));
      assert.deepEqual(
        b.map((x) => x.HashKV.compact_revision),
        [-1, -1, -1],
      );
      assert.equal(a[0]!.HashKV.compact_revision, -1);
      assert.equal(new Set(b.map((x) => x.HashKV.hash)).size, 1, "every member holds the same state");
    });

    it("lock runs a command while holding the lock", async () => {
      await same(["lock", "the-lock", "echo", "held"]);
      await same(["get", "the-lock", "--prefix", "--keys-only"]);
    });

    it("alarm list and disarm, defrag", async () => {
      await same(["alarm", "list"]);
      await same(["alarm", "list", "-w", "json"]);
      await same(["alarm", "disarm", "-w", "json"]);
      const d = await same(["defrag"], { norm: (s) => s.replace(/member\[[^\]]+\]/, "member[EP]") });
      assert.match(d.b.stdout, /^Finished defragmenting etcd member\[127\.0\.0\.1:\d+\]\n$/);
    });

    it("snapshot save writes a file etcdctl accepts", async () => {
      const [fa, fb] = [path.join(etcd!.dir, "ref.db"), path.join(cluster!.dir, "ours.db")];
      const [a, b] = await Promise.all([run(refEnv, ["snapshot", "save", fa], {}), run(oneEnv, ["snapshot", "save", fb], {})]);
      assert.equal(a.stdout, `Snapshot saved at ${fa}\n`, a.stderr);
      assert.equal(b.stdout, `Snapshot saved at ${fb}\n`, b.stderr);
      assert.equal(b.code, a.code);
      assert.equal(errorLines(b.stderr), "");
      assert.equal(statSync(fb).size % 512, 32);
    });

  });

  describe("compaction", () => {
    it("compaction, then reads and watches below it fail with etcd's errors", async () => {
      const { b } = await same(["get", "foo", "-w", "json"]);
      const rev = Number(/"revision":(\d+)/.exec(b.stdout)![1]);
      const at = String(rev - 5);
      await same(["compaction", at]);
      await same(["get", "foo2", "--rev", String(rev - 6)]);
      await same(["get", "foo2", "--rev", at]);
      await same(["get", "foo2", "--rev", String(rev + 100)]);
      await same(["compaction", String(rev - 6)]);
      await same(["compaction", String(rev + 100)]);
      await same(["compaction", "x"]);
      const w = await both(["watch", "foo", "--rev", "2"]);
      assertSameResult("etcdctl watch foo --rev 2", w.a, w.b);
      const canceled = "watch was canceled (etcdserver: mvcc: required revision has been compacted)";
      assert.ok(w.a.stderr.includes(canceled), w.a.stderr);
      assert.ok(w.b.stderr.includes(canceled), w.b.stderr);
    });
  });
});

