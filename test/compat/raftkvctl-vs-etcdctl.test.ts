/**
 * Issue 6's acceptance test: raftkvctl (the shipped dist/raftkvctl.cjs) and Debian's etcdctl 3.4
 * against the SAME 3-member raftkv cluster, command by command. Reads run on the same state and
 * must print the same bytes; for writes, each client makes its own and the outputs are compared
 * after replacing only what the two writes change (revision, lease or member ID).
 */
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { ETCDCTL_BIN } from "../helpers/etcd-reference";
import { cleanCtlEnv, runCli, type CliResult } from "../helpers/run-cli";
import { runUntil } from "../helpers/stream-cli";
import { REPO, TestCluster } from "../server/harness/cluster";
import { assertSameResult, errorLines, leaseHex, normaliseTtl, replaceAll, sortLeaseKeys, tableRows } from "./support";
import { COMMON_GET_CASES, SEED_KEYS, TXN_SCRIPTS } from "../helpers/ctl-fixtures";

type Env = Record<string, string | undefined>;
const RAFTKVCTL = path.join(REPO, "dist", "raftkvctl.cjs");

describe("raftkvctl prints what etcdctl 3.4 prints, against the same raftkv cluster", function () {
  this.timeout(60_000);
  let cluster: TestCluster | undefined;
  /** One member (both clients then talk to the same one: same member_id in headers). */
  let env: Env;
  /** Every member, for endpoint commands. */
  let allEnv: Env;

  const etcdctl = (args: string[], stdin?: string, e: Env = env): Promise<CliResult> =>
    runCli(ETCDCTL_BIN, args, e, { timeoutMs: 20_000, ...(stdin === undefined ? {} : { stdin }) });
  const raftkvctl = (args: string[], stdin?: string, e: Env = env): Promise<CliResult> =>
    runCli(process.execPath, [RAFTKVCTL, ...args], e, { timeoutMs: 20_000, ...(stdin === undefined ? {} : { stdin }) });

  /** Same command, same state: the same bytes on stdout, the same exit code and error line. */
  async function same(args: string[], stdin?: string, e: Env = env): Promise<CliResult> {
    const [a, b] = await Promise.all([etcdctl(args, stdin, e), raftkvctl(args, stdin, e)]);
    assertSameResult(`raftkvctl ${args.join(" ")}`, a, b, (s) => s);
    return b;
  }

  const revision = (s: string): string => s.replace(/"revision":\d+/g, '"revision":R');

  before(async function () {
    this.timeout(90_000);
    cluster = await TestCluster.start({ size: 3 });
    env = cleanCtlEnv(cluster.ctlEnv(["raftkv-2"]));
    allEnv = cleanCtlEnv(cluster.ctlEnv());
    for (const [k, v] of SEED_KEYS) {
      const r = await etcdctl(["put", k, v]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await cluster?.destroy();
  });

  describe("get", () => {
    const cases: string[][] = [
      ...COMMON_GET_CASES,
      ["get", "foo", "--prefix", "--limit", "2", "-w", "json"],
      ["get", "foo", "--prefix", "--sort-by=version", "--order=descend"],
      ["get", "foo", "--prefix", "--consistency", "s"],
      ["get", "foo", "--prefix", "--consistency", "l"],
      ["get", "foo2", "--rev", "3"],
      ["get", "foo2", "--rev", "99"],
      ["get", "foo", "--prefix", "-w", "json"],
      ["get", "foo", "--prefix", "--keys-only", "-w", "json"],
      ["get", "nothing-here", "-w", "json"],
      ["get", "foo", "-w", "fields"],
      ["get", "foo", "-w", "table"],
      ["--hex", "get", "foo", "--prefix"],
      ["get", ""],
      ["get"],
      ["get", "a", "--prefix", "--from-key"],
      ["get", "a", "--consistency", "x"],
      ["get", "a", "--order", "sideways"],
    ];
    for (const args of cases) it(args.join(" ") || "(none)", () => same(args).then(() => undefined));

    it("--count-only (etcdctl 3.5's flag) prints etcdctl 3.4's header and count", async () => {
      const [a, b] = await Promise.all([etcdctl(["get", "foo", "--prefix", "-w", "json"]), raftkvctl(["get", "foo", "--prefix", "--count-only", "-w", "json"])]);
      const full = JSON.parse(a.stdout) as { header: unknown; count: number };
      assert.deepEqual(JSON.parse(b.stdout), { header: full.header, count: full.count });
    });
  });

  describe("put, del, txn", () => {
    it("put, with --prev-kv, -w json, from stdin, and its errors", async () => {
      assert.equal((await etcdctl(["put", "p1", "v1"])).stdout, "OK\n");
      assert.equal((await raftkvctl(["put", "p2", "v1"])).stdout, "OK\n");
      const [a, b] = [await etcdctl(["put", "p1", "v2", "--prev-kv"]), await raftkvctl(["put", "p2", "v2", "--prev-kv"])];
      assert.equal(replaceAll(b.stdout, { p2: "P" }), replaceAll(a.stdout, { p1: "P" }));
      const [ja, jb] = [await etcdctl(["put", "p1", "v3", "--prev-kv", "-w", "json"]), await raftkvctl(["put", "p2", "v3", "--prev-kv", "-w", "json"])];
      const key = (s: string): string => s.replace(/"key":"[^"]+"/g, '"key":K').replace(/"(create|mod)_revision":\d+/g, '"$1_revision":R');
      assert.equal(key(revision(jb.stdout)), key(revision(ja.stdout)));
      assert.equal((await raftkvctl(["put", "from-stdin"], "line one\n")).stdout, "OK\n");
      await same(["get", "from-stdin", "-w", "json"]);
      await same(["put"]);
      await same(["put", "", "v"]);
      await same(["put", "k", "v", "--lease", "1234"]);
      await same(["put", "k", "v", "--lease", "zz"]);
      await same(["put", "never", "--ignore-value"]);
    });

    it("del with --prefix, --prev-kv and --from-key", async () => {
      for (const k of ["d/1", "d/2", "e/1", "e/2"]) await etcdctl(["put", k, k]);
      const a = await etcdctl(["del", "d/", "--prefix", "--prev-kv"]);
      const b = await raftkvctl(["del", "e/", "--prefix", "--prev-kv"]);
      assert.equal(a.stdout, "2\nd/1\nd/1\nd/2\nd/2\n");
      assert.equal(b.stdout, "2\ne/1\ne/1\ne/2\ne/2\n");
      await same(["del", "no-such-key"]);
      await same(["del", "no-such-key", "-w", "json"]);
      await same(["del", ""]);
      await same(["del"]);
      await same(["del", "~", "--from-key"]);
    });

    for (const script of TXN_SCRIPTS) {
      it(`txn reads ${JSON.stringify(script)} from stdin and interactively`, async () => {
        await same(["txn"], script);
        await same(["txn", "-w", "json"], script);
        await same(["txn", "-i"], script);
      });
    }

    it("txn writes in both branches", async () => {
      const a = await etcdctl(["txn"], 'value("foo") = "bar"\n\nput t1 one\ndel nothing\n\nput t1 other\n\n');
      const b = await raftkvctl(["txn"], 'value("foo") = "bar"\n\nput t2 one\ndel nothing\n\nput t2 other\n\n');
      assert.equal(a.stdout, "SUCCESS\n\nOK\n\n0\n");
      assert.equal(b.stdout, a.stdout);
      const fa = await etcdctl(["txn", "-w", "json"], 'value("foo") = "nope"\n\nput t1 one\n\nput t1 other\ndel t1 --prev-kv\n\n');
      const fb = await raftkvctl(["txn", "-w", "json"], 'value("foo") = "nope"\n\nput t2 one\n\nput t2 other\ndel t2 --prev-kv\n\n');
      const norm = (s: string): string => revision(s).replace(/"key":"[^"]+"/g, '"key":K').replace(/"(create|mod)_revision":\d+/g, '"$1_revision":R');
      assert.equal(norm(fb.stdout), norm(fa.stdout));
      await same(["get", "t", "--prefix"]);
    });
  });

  describe("watch", () => {
    it("prints the same history with --prefix, --rev and --prev-kv, and a live event", async () => {
      await etcdctl(["put", "w/1", "a"]);
      await etcdctl(["put", "w/1", "b"]);
      await etcdctl(["del", "w/1"]);
      const rev = /"revision":(\d+)/.exec((await etcdctl(["get", "w/1", "-w", "json"])).stdout)![1]!;
      const from = String(Number(rev) - 2);
      // Done at the last event (the delete); output arriving within 300 ms after it is kept.
      const cases: Array<[string[], (o: string) => boolean]> = [
        [["w/", "--prefix"], (o) => o.includes("DELETE\nw/1\n")],
        [["w/", "--prefix", "--prev-kv"], (o) => o.includes("DELETE\n")],
        [["w/", "--prefix", "-w", "json"], (o) => o.includes("\n")],
        [["w/1"], (o) => o.includes("DELETE\nw/1\n")],
      ];
      for (const [extra, enough] of cases) {
        const args = ["watch", ...extra, "--rev", from];
        const [a, b] = await Promise.all([
          runUntil(ETCDCTL_BIN, args, env, enough, 10_000, 300),
          runUntil(process.execPath, [RAFTKVCTL, ...args], env, enough, 10_000, 300),
        ]);
        assert.equal(a.timedOut, false, `etcdctl ${args.join(" ")}: ${a.stdout} ${a.stderr}`);
        assert.equal(b.stdout, a.stdout, `watch ${args.join(" ")}`);
      }
      const live = runUntil(process.execPath, [RAFTKVCTL, "watch", "live"], env, (o) => o.includes("now\n"), 15_000);
      let done = false;
      void live.then(() => (done = true));
      for (let i = 0; i < 100 && !done; i++) {
        await etcdctl(["put", "live", "now"]);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match((await live).stdout, /^PUT\nlive\nnow\n/);
    });
  });

  describe("lease", () => {
    it("grant, timetolive, list, keep-alive (--once and streaming), revoke", async () => {
      const idRe = /^lease ([0-9a-f]{16}) granted with TTL\(300s\)\n$/;
      const ga = await etcdctl(["lease", "grant", "300"]);
      const gb = await raftkvctl(["lease", "grant", "300"]);
      assert.match(ga.stdout, idRe);
      assert.match(gb.stdout, idRe);
      const id = idRe.exec(gb.stdout)![1]!;
      const gj = await raftkvctl(["lease", "grant", "60", "-w", "json"]);
      assert.match(gj.stdout, /^\{"cluster_id":\d+,"member_id":\d+,"revision":\d+,"raft_term":\d+,"ID":\d+,"TTL":60,"Error":""\}\n$/);
      assert.equal((await raftkvctl(["put", "leased/1", "v", "--lease", id])).stdout, "OK\n");
      assert.equal((await etcdctl(["put", "leased/2", "v", "--lease", id])).stdout, "OK\n");
      await same(["get", "leased/", "--prefix", "-w", "json"]);
      await same(["lease", "list"]);
      await same(["lease", "list", "-w", "json"]);
      for (const args of [["lease", "timetolive", id], ["lease", "timetolive", id, "--keys"], ["lease", "timetolive", id, "--keys", "-w", "json"]]) {
        const [a, b] = await Promise.all([etcdctl(args), raftkvctl(args)]);
        // Two reads a moment apart may straddle a second boundary; the order of keys is etcd's.
        assertSameResult(`raftkvctl ${args.join(" ")}`, a, b, (s) => sortLeaseKeys(normaliseTtl(s)));
      }
      await same(["lease", "keep-alive", "--once", id]);
      await same(["lease", "keep-alive", "--once", id, "-w", "json"]);
      // Both clients renew every TTL/3: a 3 s lease shows two renewals within about two seconds.
      const short = /lease (\S+) granted/.exec((await etcdctl(["lease", "grant", "3"])).stdout)![1]!;
      const twice = (o: string): boolean => o.split("\n").length > 2;
      const [ka, kb] = await Promise.all([
        runUntil(ETCDCTL_BIN, ["lease", "keep-alive", short], env, twice, 15_000),
        runUntil(process.execPath, [RAFTKVCTL, "lease", "keep-alive", short], env, twice, 15_000),
      ]);
      assert.equal(kb.stdout.split("\n").slice(0, 2).join("\n"), ka.stdout.split("\n").slice(0, 2).join("\n"));
      assert.match(kb.stdout, new RegExp(`^(lease ${short} keepalived with TTL\\(3\\)\\n){2}`));
      await same(["lease", "timetolive", "1234"]);
      await same(["lease", "timetolive", "xyz"]);
      await same(["lease", "keep-alive", "--once", "1234"]);
      await same(["lease", "revoke", "1234"]);
      await same(["lease", "grant"]);
      await same(["lease", "grant", "ten"]);
      assert.equal((await raftkvctl(["lease", "revoke", id])).stdout, `lease ${id} revoked\n`);
      await same(["get", "leased/", "--prefix"]);
      await same(["lease", "timetolive", id]);
      await same(["lease", "revoke", id]);
      // The other leases would expire during a later test and add a raft entry between the two
      // clients' calls there (endpoint status prints the raft index): revoke them now.
      const others = [idRe.exec(ga.stdout)![1]!, leaseHex(/"ID":(\d+)/.exec(gj.stdout)![1]!)];
      for (const l of others) assert.equal((await raftkvctl(["lease", "revoke", l])).stdout, `lease ${l} revoked\n`);
      // The 3 s lease has usually expired by now; if not, it goes too.
      const r = await raftkvctl(["lease", "revoke", short]);
      assert.ok(r.stdout === `lease ${short} revoked\n` || /requested lease not found/.test(r.stderr), `revoke ${short}: ${r.stdout}${r.stderr}`);
    });
  });

  describe("cluster and maintenance", () => {
    it("member list in every format", async () => {
      await same(["member", "list"]);
      await same(["member", "list", "-w", "table"]);
      await same(["member", "list", "-w", "json"]);
    });

    it("member add --learner, list, promote (refused: not started), update, remove", async () => {
      // raftkv, like etcd 3.4, takes one learner at a time: each client adds and removes its own.
      const cycle = async (ctl: (args: string[]) => Promise<CliResult>, name: string, port: number) => {
        const add = await ctl(["member", "add", name, `--peer-urls=https://127.0.0.1:${port}`, "--learner"]);
        assert.equal(add.code, 0, add.stderr);
        const id = /Member +([0-9a-f]+) added/.exec(add.stdout)![1]!;
        const list = (await ctl(["member", "list"])).stdout;
        const table = (await ctl(["member", "list", "-w", "table"])).stdout;
        const second = await ctl(["member", "add", `${name}-2`, `--peer-urls=https://127.0.0.1:${port + 1}`, "--learner"]);
        const promote = await ctl(["member", "promote", id]);
        const update = (await ctl(["member", "update", id, `--peer-urls=https://127.0.0.1:${port + 2}`])).stdout;
        const remove = (await ctl(["member", "remove", id])).stdout;
        const again = await ctl(["member", "remove", id]);
        // ETCD_INITIAL_CLUSTER lists members in ID order, and the two new IDs differ.
        const sortCluster = (t: string): string =>
          t.replace(/^ETCD_INITIAL_CLUSTER="(.*)"$/m, (_, l: string) => `ETCD_INITIAL_CLUSTER="${l.split(",").sort().join(",")}"`);
        // etcdctl pads IDs to 16 columns (%16x); the two new IDs may differ in width.
        const norm = (t: string): string =>
          sortCluster(t)
            .replace(new RegExp(` +${id}`, "g"), " NEWID")
            .split(id)
            .join("NEWID")
            .split(name)
            .join("NEWNAME")
            .replace(new RegExp(`127\\.0\\.0\\.1:${port}(?!\\d)`, "g"), "NEWPEER");
        // Members are listed in ID order, and the two new IDs differ: compare the rows as sets.
        const rows = (t: string): string => t.split("\n").sort().join("\n");
        return { add: norm(add.stdout), list: rows(norm(list)), table: tableRows(norm(table)).sort(), second, promote, update: norm(update), remove: norm(remove), again };
      };
      const a = await cycle((args) => etcdctl(args), "learner-a", 11);
      const b = await cycle((args) => raftkvctl(args), "learner-b", 21);
      assert.match(a.add, /^Member NEWID added to cluster +[0-9a-f]+\n\nETCD_NAME="NEWNAME"\n/);
      assert.equal(b.add, a.add);
      assert.equal(b.list, a.list);
      // Column widths follow the names' lengths, which are equal here; compare cells anyway.
      assert.deepEqual(b.table, a.table);
      for (const k of ["second", "promote", "again"] as const) {
        assert.equal(b[k].code, a[k].code, k);
        assert.equal(errorLines(b[k].stderr), errorLines(a[k].stderr), k);
        assert.equal(b[k].stdout, a[k].stdout, k);
      }
      assert.equal(errorLines(a.second.stderr), "Error: etcdserver: too many learner members in cluster");
      assert.equal(b.update, a.update);
      assert.equal(b.remove, a.remove);
      await same(["member", "remove", "zz"]);
      await same(["member", "remove", "1234"]);
      await same(["member", "promote", "1234"]);
      await same(["member", "add", "x"]);
      await same(["member", "list", "-w", "json"]);
    });

    it("endpoint status in every format, on every member and with --cluster", async () => {
      await same(["endpoint", "status"], undefined, allEnv);
      await same(["endpoint", "status", "-w", "table"], undefined, allEnv);
      await same(["endpoint", "status", "-w", "json"], undefined, allEnv);
      await same(["endpoint", "status", "--cluster"]);
      await same(["endpoint", "status", "--cluster", "-w", "table"]);
    });

    it("endpoint health on stderr, every member and --cluster", async () => {
      // Endpoints are checked concurrently: lines come in the order the answers arrive.
      const lines = (s: string): string[] =>
        s
          .split("\n")
          .filter((l) => l !== "" && !l.startsWith("{"))
          .map((l) => l.replace(/took = [0-9.]+(ns|µs|ms|s)/, "took = T").replace(/"took":"[^"]+"/g, '"took":"T"'))
          .flatMap((l) => (l.startsWith("[") ? (JSON.parse(l) as unknown[]).map((x) => JSON.stringify(x)) : [l]))
          .sort();
      for (const [extra, e] of [[[], allEnv], [["--cluster"], env], [["-w", "json"], allEnv]] as Array<[string[], Env]>) {
        const args = ["endpoint", "health", ...extra];
        const [a, b] = await Promise.all([etcdctl(args, undefined, e), raftkvctl(args, undefined, e)]);
        assert.equal(b.code, a.code, args.join(" "));
        assert.deepEqual(lines(b.stdout), lines(a.stdout), args.join(" "));
        assert.deepEqual(lines(b.stderr), lines(a.stderr), args.join(" "));
        assert.equal(lines(a.stdout).length + lines(a.stderr).length, 3, `${a.stdout}${a.stderr}`);
      }
    });

    it("alarm list and disarm, defrag", async () => {
      await same(["alarm", "list"]);
      await same(["alarm", "list", "-w", "json"]);
      await same(["alarm", "disarm"]);
      await same(["alarm", "disarm", "-w", "json"]);
      await same(["defrag"]);
      await same(["defrag"], undefined, allEnv);
    });

    it("snapshot save: the same message and the same bytes", async () => {
      const [fa, fb] = [path.join(cluster!.dir, "etcdctl.db"), path.join(cluster!.dir, "raftkvctl.db")];
      const fc = path.join(cluster!.dir, "etcdctl-after.db");
      // The file carries the applied index, so an entry applied between two saves (a lease expiring
      // from an earlier test) changes it. Bracket raftkvctl's save by two etcdctl saves: when those
      // two agree nothing was applied in between, and raftkvctl's file must be the same bytes.
      let bracketed = false;
      for (let attempt = 0; attempt < 5 && !bracketed; attempt++) {
        const a = await etcdctl(["snapshot", "save", fa]);
        const b = await raftkvctl(["snapshot", "save", fb]);
        const c = await etcdctl(["snapshot", "save", fc]);
        assert.equal(a.stdout, `Snapshot saved at ${fa}\n`, a.stderr);
        assert.equal(b.stdout, `Snapshot saved at ${fb}\n`, b.stderr);
        assert.equal(c.stdout, `Snapshot saved at ${fc}\n`, c.stderr);
        if (!readFileSync(fa).equals(readFileSync(fc))) continue;
        bracketed = true;
        assert.ok(readFileSync(fb).equals(readFileSync(fa)), "both clients stored the stream the member sent");
      }
      assert.ok(bracketed, "the cluster kept applying entries across five attempts to save three snapshots");
      const [ma, mb] = [await etcdctl(["snapshot", "save", fa], undefined, allEnv), await raftkvctl(["snapshot", "save", fb], undefined, allEnv)];
      assert.notEqual(ma.code, 0);
      assert.notEqual(mb.code, 0);
    });

    it("compaction, then reads and watches below it fail alike", async () => {
      const rev = Number(/"revision":(\d+)/.exec((await etcdctl(["get", "foo", "-w", "json"])).stdout)![1]);
      const ra = await etcdctl(["compaction", String(rev - 4)]);
      const rb = await raftkvctl(["compaction", String(rev - 3), "--physical"]);
      assert.equal(ra.stdout, `compacted revision ${rev - 4}\n`);
      assert.equal(rb.stdout, `compacted revision ${rev - 3}\n`);
      await same(["compaction", String(rev - 5)]);
      await same(["compaction", String(rev + 100)]);
      await same(["compaction", "x"]);
      await same(["get", "foo", "--rev", String(rev - 4)]);
      await same(["get", "foo", "--rev", String(rev - 3)]);
      const args = ["watch", "foo", "--rev", "2"];
      const [a, b] = await Promise.all([etcdctl(args), raftkvctl(args)]);
      assert.equal(b.code, a.code);
      assert.equal(b.stderr.replace(/^\{.*\n/gm, ""), a.stderr.replace(/^\{.*\n/gm, ""));
    });
  });
});
