/**
 * raftkvctl against etcdctl 3.4, command by command, on one real etcd 3.4 server with mutual
 * TLS. Read commands run on the same state and must print the same bytes; write commands are
 * compared after normalising only what the two writes legitimately change (IDs, revisions).
 */
import { strict as assert } from "node:assert";
import { statSync } from "node:fs";
import * as path from "node:path";
import { bundleRaftkvctl, type CtlBundle } from "../helpers/ctl-bundle";
import { ETCDCTL_BIN, startReferenceEtcd, type ReferenceEtcd } from "../helpers/etcd-reference";
import { cleanCtlEnv, runCli, type CliResult } from "../helpers/run-cli";
import { runUntil } from "../helpers/stream-cli";
import { leaseHex } from "../compat/support";
import { COMMON_GET_CASES, SEED_KEYS, TXN_SCRIPTS } from "../helpers/ctl-fixtures";

describe("raftkvctl matches etcdctl 3.4 against etcd 3.4", function () {
  this.timeout(60000);
  let etcd: ReferenceEtcd;
  let bundle: CtlBundle;
  let env: Record<string, string | undefined>;

  const etcdctl = (args: string[], stdin?: string): Promise<CliResult> => runCli(ETCDCTL_BIN, args, env, stdin === undefined ? {} : { stdin });
  const raftkvctl = (args: string[], stdin?: string, extraEnv: Record<string, string | undefined> = {}): Promise<CliResult> =>
    runCli(process.execPath, [bundle.file, ...args], { ...env, ...extraEnv }, stdin === undefined ? {} : { stdin });

  /** The `Error: ...` line etcdctl prints (it also logs JSON warnings we do not imitate). */
  const errorLine = (stderr: string): string => stderr.split("\n").filter((l) => l.startsWith("Error:"))[0] ?? "";

  async function same(args: string[], stdin?: string): Promise<CliResult> {
    const [a, b] = await Promise.all([etcdctl(args, stdin), raftkvctl(args, stdin)]);
    const what = `raftkvctl ${args.join(" ")}`;
    assert.equal(b.stdout, a.stdout, `${what}: stdout`);
    assert.equal(b.code, a.code, `${what}: exit code (stderr: ${b.stderr})`);
    assert.equal(errorLine(b.stderr), errorLine(a.stderr), `${what}: error line`);
    assert.doesNotMatch(b.stderr, /^\s+at /m, `${what}: no stack trace`);
    return b;
  }

  before(async () => {
    [etcd, bundle] = await Promise.all([startReferenceEtcd(), bundleRaftkvctl()]);
    env = cleanCtlEnv({ ...etcd.ctlEnv, ...bundle.env });
    for (const [k, v] of SEED_KEYS) {
      const r = await etcdctl(["put", k, v]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await etcd?.stop();
    bundle?.dispose();
  });

  describe("get", () => {
    const cases: string[][] = [
      ...COMMON_GET_CASES,
      ["get", "foo", "--prefix", "--sort-by=version", "--order=descend"],
      ["get", "foo", "--prefix", "--consistency", "s"],
      ["get", "foo2", "--rev", "3"],
      ["get", "foo", "--prefix", "-w", "json"],
      ["get", "foo", "--prefix", "--keys-only", "-w", "json"],
      ["get", "nothing-here", "-w", "json"],
      ["get", "foo", "-w", "fields"],
      ["--hex", "get", "foo", "--prefix"],
      ["get", "foo", "-w", "table"],
      ["get"],
      ["get", "a", "b", "--prefix"],
      ["get", "a", "--prefix", "--from-key"],
      ["get", "a", "--consistency", "x"],
      ["get", "a", "--order", "sideways"],
      ["get", "a", "--sort-by", "color"],
      ["get", "foo", "-w", "json", "--print-value-only"],
    ];
    for (const args of cases) it(args.join(" ") || "(none)", () => same(args).then(() => undefined));
  });

  describe("put and del", () => {
    it("put prints OK, --prev-kv prints the previous pair, in simple and json", async () => {
      await same(["put", "p1", "v1"]);
      const [a, b] = [await etcdctl(["put", "p1", "v2", "--prev-kv"]), await raftkvctl(["put", "p1", "v3", "--prev-kv"])];
      assert.equal(a.stdout, "OK\np1\nv1\n");
      assert.equal(b.stdout, "OK\np1\nv2\n");
      const ja = await etcdctl(["put", "p2", "x", "-w", "json"]);
      const jb = await raftkvctl(["put", "p3", "x", "-w", "json"]);
      const norm = (s: string): string => s.replace(/"revision":\d+/, '"revision":N');
      assert.equal(norm(jb.stdout), norm(ja.stdout));
    });

    it("put reads the value from stdin when only a key is given", async () => {
      assert.equal((await raftkvctl(["put", "from-stdin"], "line one\n")).stdout, "OK\n");
      await same(["get", "from-stdin"]);
      assert.equal((await etcdctl(["get", "from-stdin", "--print-value-only"])).stdout, "line one\n\n");
    });

    it("put --ignore-value and --ignore-lease keep the current value and lease", async () => {
      await same(["put", "p1", "--ignore-value"]);
      await same(["put", "p1", "again", "--ignore-lease"]);
      await same(["put", "p1", "v", "--ignore-value"]);
      await same(["put"]);
      await same(["put", "never", "--ignore-value"]);
      await same(["put", "k", "v", "--lease", "zz"]);
    });

    it("del with --prefix, --prev-kv and --from-key", async () => {
      for (const k of ["d/1", "d/2", "e/1", "e/2"]) await etcdctl(["put", k, k]);
      const a = await etcdctl(["del", "d/", "--prefix", "--prev-kv"]);
      const b = await raftkvctl(["del", "e/", "--prefix", "--prev-kv"]);
      assert.equal(a.stdout, "2\nd/1\nd/1\nd/2\nd/2\n");
      assert.equal(b.stdout, "2\ne/1\ne/1\ne/2\ne/2\n");
      await same(["del", "no-such-key"]);
      await same(["del", "no-such-key", "-w", "json"]);
      await same(["del"]);
      await same(["del", "a", "--prefix", "--from-key"]);
      await same(["del", "~", "--from-key"]);
    });
  });

  describe("txn", () => {
    for (const s of TXN_SCRIPTS) {
      it(`reads ${JSON.stringify(s)}`, async () => {
        await same(["txn"], s);
        await same(["txn", "-w", "json"], s);
        await same(["txn", "-i"], s);
      });
    }
    it("writes in both branches", async () => {
      const a = await etcdctl(["txn"], 'value("foo") = "bar"\n\nput t1 one\ndel nothing\n\nput t1 other\n\n');
      const b = await raftkvctl(["txn"], 'value("foo") = "bar"\n\nput t2 one\ndel nothing\n\nput t2 other\n\n');
      assert.equal(a.stdout, "SUCCESS\n\nOK\n\n0\n");
      assert.equal(b.stdout, a.stdout);
      await same(["get", "t", "--prefix", "--print-value-only"]);
    });
  });

  describe("lease", () => {
    it("grant, timetolive, list, keep-alive --once and revoke", async () => {
      const a = await etcdctl(["lease", "grant", "300"]);
      const b = await raftkvctl(["lease", "grant", "300"]);
      const idRe = /^lease ([0-9a-f]{16}) granted with TTL\(300s\)\n$/;
      assert.match(a.stdout, idRe);
      assert.match(b.stdout, idRe);
      const id = idRe.exec(b.stdout)![1]!;
      const gj = await raftkvctl(["lease", "grant", "60", "-w", "json"]);
      assert.match(gj.stdout, /^\{"cluster_id":\d+,"member_id":\d+,"revision":\d+,"raft_term":\d+,"ID":\d+,"TTL":60,"Error":""\}\n$/);
      assert.equal((await raftkvctl(["put", "leased", "v", "--lease", id])).stdout, "OK\n");
      await same(["get", "leased", "-w", "json"]);
      await same(["lease", "list"]);
      await same(["lease", "list", "-w", "json"]);
      const ttl = async (args: string[]): Promise<void> => {
        const [x, y] = await Promise.all([etcdctl(args), raftkvctl(args)]);
        const norm = (s: string): string => s.replace(/remaining\(\d+s\)/, "remaining(Ns)").replace(/"ttl":\d+/, '"ttl":N');
        assert.equal(norm(y.stdout), norm(x.stdout));
        assert.equal(y.code, x.code);
      };
      await ttl(["lease", "timetolive", id]);
      await ttl(["lease", "timetolive", id, "--keys"]);
      await ttl(["lease", "timetolive", id, "--keys", "-w", "json"]);
      await same(["lease", "timetolive", "1234"]);
      await same(["lease", "timetolive", "xyz"]);
      const ka = await raftkvctl(["lease", "keep-alive", "--once", id]);
      assert.equal(ka.stdout, `lease ${id} keepalived with TTL(300)\n`);
      await same(["lease", "keep-alive", "--once", "1234"]);
      await same(["lease", "revoke", "1234"]);
      await same(["lease", "grant"]);
      await same(["lease", "grant", "ten"]);
      assert.equal((await raftkvctl(["lease", "revoke", id])).stdout, `lease ${id} revoked\n`);
      await same(["get", "leased"]);
      // The other two leases would expire during a later test and add a raft entry between the
      // two clients' calls there (endpoint status prints the raft index): revoke them now.
      const others = [idRe.exec(a.stdout)![1]!, leaseHex(/"ID":(\d+)/.exec(gj.stdout)![1]!)];
      for (const l of others) assert.equal((await raftkvctl(["lease", "revoke", l])).stdout, `lease ${l} revoked\n`);
    });

    it("keep-alive keeps renewing until stopped", async () => {
      const id = /lease (\S+) granted/.exec((await etcdctl(["lease", "grant", "3"])).stdout)![1]!;
      const r = await runUntil(process.execPath, [bundle.file, "lease", "keep-alive", id], env, (o) => o.split("\n").length > 2, 15000);
      assert.equal(r.timedOut, false, r.stderr);
      assert.match(r.stdout, new RegExp(`^(lease ${id} keepalived with TTL\\(3\\)\\n){2}`));
    });
  });

  describe("watch", () => {
    it("prints historical and new events like etcdctl, with --prefix, --rev and --prev-kv", async () => {
      await etcdctl(["put", "w/1", "a"]);
      await etcdctl(["put", "w/1", "b"]);
      await etcdctl(["del", "w/1"]);
      const rev = /"revision":(\d+)/.exec((await etcdctl(["get", "w/1", "-w", "json"])).stdout)![1]!;
      const startRev = String(Number(rev) - 2);
      // Three events: 9 lines plain, 13 with the previous values, one response line as JSON.
      const cases: Array<[string[], number]> = [[["--prefix"], 9], [["--prefix", "--prev-kv"], 13], [["--prefix", "-w", "json"], 1]];
      for (const [extra, lines] of cases) {
        const args = ["watch", "w/", "--rev", startRev, ...extra];
        const enough = (o: string): boolean => o.split("\n").length > lines;
        const [a, b] = await Promise.all([
          runUntil(ETCDCTL_BIN, args, env, enough, 10000, 300),
          runUntil(process.execPath, [bundle.file, ...args], env, enough, 10000, 300),
        ]);
        assert.equal(b.stdout, a.stdout, `watch ${extra.join(" ")}`);
        assert.ok(a.stdout.length > 0);
      }
    });

    it("sees a live put", async () => {
      const p = runUntil(process.execPath, [bundle.file, "watch", "live"], env, (o) => o.includes("now\n"), 10000);
      // The watch may not be registered yet when the first put lands; keep writing until seen.
      let r: Awaited<typeof p> | undefined;
      p.then((x) => (r = x)).catch(() => undefined);
      for (let i = 0; i < 50 && r === undefined; i++) {
        await etcdctl(["put", "live", "now"]);
        await new Promise((res) => setTimeout(res, 100));
      }
      const out = await p;
      assert.match(out.stdout, /^PUT\nlive\nnow\n/);
    });
  });

  describe("cluster and maintenance", () => {
    it("member list in every format", async () => {
      await same(["member", "list"]);
      await same(["member", "list", "-w", "table"]);
      await same(["member", "list", "-w", "json"]);
    });

    it("member add (learner), update, promote and remove", async () => {
      // etcd allows one learner at a time, so each client adds, changes and removes its own.
      const cycle = async (
        ctl: (args: string[]) => Promise<CliResult>,
        name: string,
        port: number,
      ): Promise<{ add: string; list: string; table: string; promote: CliResult; update: string; remove: string }> => {
        const add = await ctl(["member", "add", name, `--peer-urls=https://127.0.0.1:${port}`, "--learner"]);
        assert.equal(add.code, 0, add.stderr);
        const id = /Member +([0-9a-f]+) added/.exec(add.stdout)![1]!;
        const list = (await ctl(["member", "list"])).stdout;
        const table = (await ctl(["member", "list", "-w", "table"])).stdout;
        const promote = await ctl(["member", "promote", id]);
        const update = (await ctl(["member", "update", id, `--peer-urls=https://127.0.0.1:${port + 1}`])).stdout;
        const remove = (await ctl(["member", "remove", id])).stdout;
        // etcdctl pads IDs to 16 columns (%16x, table cells) and lists ETCD_INITIAL_CLUSTER in ID
        // order; the two new IDs differ, so normalise both.
        const norm = (t: string): string =>
          t
            .replace(/^ETCD_INITIAL_CLUSTER="(.*)"$/m, (_, l: string) => `ETCD_INITIAL_CLUSTER="${l.split(",").sort().join(",")}"`)
            .replace(new RegExp(` +${id}`, "g"), " NEWID").split(id).join("NEWID").split(name).join("NEWNAME").replace(new RegExp(`127\\.0\\.0\\.1:${port}(?!\\d)`, "g"), "NEWPEER");
        // Members are listed in ID order too: compare the rows as sets.
        const rows = (t: string): string => t.split("\n").sort().join("\n");
        return { add: norm(add.stdout), list: rows(norm(list)), table: rows(norm(table)), promote, update: norm(update), remove: norm(remove) };
      };
      const a = await cycle(etcdctl, "learner-a", 11);
      const b = await cycle((args) => raftkvctl(args), "learner-b", 13);
      assert.match(a.add, /^Member NEWID added to cluster [0-9a-f ]{16}\n\nETCD_NAME="NEWNAME"\n/);
      assert.equal(b.add, a.add);
      assert.equal(b.list, a.list);
      assert.equal(b.table.replace(/[-+]+\n/g, ""), a.table.replace(/[-+]+\n/g, ""));
      assert.equal(b.promote.code, a.promote.code);
      assert.equal(errorLine(b.promote.stderr), errorLine(a.promote.stderr));
      assert.equal(b.update, a.update);
      assert.equal(b.remove, a.remove);
      await same(["member", "remove", "zz"]);
      await same(["member", "remove", "1234"]);
      await same(["member", "add", "x"]);
      await same(["member", "list", "-w", "json"]);
    });

    it("endpoint status in every format", async () => {
      await same(["endpoint", "status"]);
      await same(["endpoint", "status", "-w", "table"]);
      await same(["endpoint", "status", "-w", "json"]);
      await same(["endpoint", "status", "--cluster"]);
    });

    it("endpoint health prints to stderr like etcdctl", async () => {
      const took = (s: string): string => s.replace(/took = [0-9.]+(ns|µs|ms|s)/g, "took = T").replace(/"took":"[^"]+"/g, '"took":"T"');
      for (const extra of [[], ["--cluster"], ["-w", "json"]]) {
        const args = ["endpoint", "health", ...extra];
        const [a, b] = await Promise.all([etcdctl(args), raftkvctl(args)]);
        assert.equal(took(b.stdout), took(a.stdout));
        assert.equal(took(b.stderr), took(a.stderr));
        assert.equal(b.code, a.code);
      }
      const t = await raftkvctl(["endpoint", "health", "-w", "table"]);
      const ta = await etcdctl(["endpoint", "health", "-w", "table"]);
      const cells = (s: string): string => s.replace(/\| *[0-9.]+(ns|µs|ms|s) \|/, "| T |").replace(/[-+]+\n/g, "").replace(/ +/g, " ");
      assert.equal(cells(t.stdout), cells(ta.stdout));
    });

    it("alarm list and disarm, defrag", async () => {
      await same(["alarm", "list"]);
      await same(["alarm", "list", "-w", "json"]);
      await same(["alarm", "disarm"]);
      await same(["defrag"]);
    });

    it("snapshot save writes a snapshot etcdctl accepts", async () => {
      const file = path.join(etcd.dir, "ours.db");
      const r = await raftkvctl(["snapshot", "save", file]);
      assert.equal(r.stdout, `Snapshot saved at ${file}\n`, r.stderr);
      assert.equal(statSync(file).size % 512, 32);
      const st = await runCli(ETCDCTL_BIN, ["snapshot", "status", file, "-w", "json"], env);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /"totalKey":\d+/);
      const multi = await raftkvctl(["--endpoints", `${etcd.endpoint},${etcd.endpoint}`, "snapshot", "save", file]);
      assert.equal(multi.code, 128);
    });

    it("compaction, then reads and watches below it fail like etcdctl", async () => {
      const ra = await etcdctl(["compaction", "3"]);
      const rb = await raftkvctl(["compaction", "4", "--physical"]);
      assert.equal(ra.stdout, "compacted revision 3\n");
      assert.equal(rb.stdout, "compacted revision 4\n");
      await same(["compaction", "2"]);
      await same(["compaction", "x"]);
      await same(["get", "foo", "--rev", "2"]);
      const args = ["watch", "foo", "--rev", "2"];
      const [a, b] = await Promise.all([etcdctl(args), raftkvctl(args)]);
      assert.equal(b.code, a.code);
      assert.equal(b.stderr.replace(/^\{.*\n/gm, ""), a.stderr.replace(/^\{.*\n/gm, ""));
    });
  });

  describe("connection flags, environment and errors", () => {
    it("flags work like the ETCDCTL_* environment", async () => {
      const flagsOnly = cleanCtlEnv(bundle.env);
      const r = await runCli(process.execPath, [bundle.file, ...etcd.ctlFlags, "get", "foo"], flagsOnly);
      assert.equal(r.stdout, "foo\nbar\n", r.stderr);
    });

    it("RAFTKVCTL_* takes precedence over ETCDCTL_*", async () => {
      const r = await raftkvctl(["get", "foo"], undefined, { ETCDCTL_ENDPOINTS: "https://127.0.0.1:1", RAFTKVCTL_ENDPOINTS: etcd.endpoint });
      assert.equal(r.stdout, "foo\nbar\n", r.stderr);
    });

    it("an unreachable endpoint fails after --dial-timeout with one line", async () => {
      const r = await raftkvctl(["--dial-timeout=300ms", "get", "foo"], undefined, { ETCDCTL_ENDPOINTS: "https://127.0.0.1:1" });
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^Error: context deadline exceeded.*\n$/);
    });

    it("a TLS failure (no client certificate, wrong CA) fails with one line", async () => {
      const noCert = await raftkvctl(["--dial-timeout=1s", "get", "foo"], undefined, { ETCDCTL_CERT: undefined, ETCDCTL_KEY: undefined });
      assert.notEqual(noCert.code, 0);
      assert.match(noCert.stderr, /^Error: [^\n]+\n$/);
      const wrongCa = await raftkvctl(["--dial-timeout=1s", "get", "foo"], undefined, { ETCDCTL_CACERT: etcd.client.cert });
      assert.notEqual(wrongCa.code, 0);
      assert.match(wrongCa.stderr, /^Error: [^\n]+\n$/);
      const missing = await raftkvctl(["get", "foo"], undefined, { ETCDCTL_CACERT: "/nonexistent/ca.crt" });
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /^Error: could not read CA certificate \/nonexistent\/ca.crt: ENOENT\n$/);
    });

    it("bad flags and unknown commands give one line and a non-zero exit", async () => {
      const a = await raftkvctl(["get", "foo", "--bogus"]);
      assert.equal(a.stderr, "Error: unknown flag: --bogus\n");
      assert.equal(a.code, 1);
      const b = await raftkvctl(["frobnicate"]);
      assert.match(b.stderr, /^Error: unknown command "frobnicate" for "raftkvctl"\n$/);
      const c = await raftkvctl(["--dial-timeout=soon", "get", "foo"]);
      assert.match(c.stderr, /^Error: invalid argument "soon" for "--dial-timeout" flag/);
      const d = await raftkvctl(["-w", "yaml", "get", "foo"]);
      assert.notEqual(d.code, 0);
    });

    it("version", async () => {
      const r = await raftkvctl(["version"]);
      assert.match(r.stdout, /^raftkvctl version: \d+\.\d+\.\d+\nAPI version: 3\.4\n$/);
    });
  });
});
