/**
 * The `etcd3` npm client, unmodified, against a 3-member raftkv cluster over mutual TLS: KV,
 * transactions, watches (live and from a past revision), leases (keep-alive, revoke, expiry
 * decided by the leader) and the client's own lock and election recipes, which lean on
 * create-revision comparisons, sorted and filtered ranges, and watches on other clients' keys.
 * Retries and the circuit breaker are off, so any server error reaches the test.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { noop } from "cockatiel";
import { EtcdLeaseInvalidError, EtcdLockFailedError, Etcd3, type IKeyValue, type Watcher } from "etcd3";
import { sleep, TestCluster } from "../server/harness/cluster";

// grpc-js sets the TLS ServerName to the host's IP, which Node reports once per process as a
// deprecation (DEP0123); run with NODE_NO_WARNINGS=1 to hide it. The IP SAN is still verified.

function client(c: TestCluster, names: string[]): Etcd3 {
  const admin = c.pki.clients["admin"]!;
  return new Etcd3({
    hosts: names.map((n) => `https://127.0.0.1:${c.member(n).clientPort}`),
    credentials: {
      rootCertificate: fs.readFileSync(admin.ca),
      privateKey: fs.readFileSync(admin.key),
      certChain: fs.readFileSync(admin.cert),
    },
    faultHandling: { host: () => noop, global: noop },
  });
}

/** Polls until `probe` holds, or fails naming `what`. */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves with the first `n` values `on` delivers, or rejects after the timeout. */
function collect<T>(n: number, on: (push: (v: T) => void) => void, what: string, timeoutMs = 10_000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    const timer = setTimeout(() => reject(new Error(`${what}: got ${got.length} of ${n} within ${timeoutMs} ms`)), timeoutMs);
    on((v) => {
      got.push(v);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

describe("etcd3 npm client against a 3-member raftkv cluster", function () {
  this.timeout(60_000);
  let cluster: TestCluster | undefined;
  let etcd: Etcd3;
  let other: Etcd3;
  const watchers: Watcher[] = [];

  before(async function () {
    this.timeout(90_000);
    cluster = await TestCluster.start({ size: 3 });
    etcd = client(cluster, ["raftkv-1", "raftkv-2", "raftkv-3"]);
    // A second client bound to another member, for contention and cross-member visibility.
    other = client(cluster, ["raftkv-3"]);
  });
  after(async () => {
    await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
    etcd?.close();
    other?.close();
    await cluster?.destroy();
  });

  it("KV: put, get, getAll by prefix, delete, and reads through another member", async () => {
    await etcd.put("kv/a").value("1");
    await etcd.put("kv/b").value("2");
    await etcd.put("kv/c").value("3");
    await etcd.put("other").value("x");
    assert.equal(await etcd.get("kv/a").string(), "1");
    assert.equal(await other.get("kv/b").string(), "2", "a linearizable read on another member sees the write");
    assert.deepEqual(await etcd.getAll().prefix("kv/").strings(), { "kv/a": "1", "kv/b": "2", "kv/c": "3" });
    assert.deepEqual(await etcd.getAll().prefix("kv/").keys(), ["kv/a", "kv/b", "kv/c"]);
    assert.equal(await etcd.getAll().prefix("kv/").count(), 3);
    const desc = await etcd.getAll().prefix("kv/").sort("Key", "Descend").limit(2).keys();
    assert.deepEqual(desc, ["kv/c", "kv/b"]);
    const del = await etcd.delete().key("kv/a").getPrevious();
    assert.deepEqual(
      del.map((kv) => [kv.key.toString(), kv.value.toString()]),
      [["kv/a", "1"]],
    );
    assert.equal(await etcd.get("kv/a").string(), null);
    await etcd.delete().prefix("kv/");
    assert.equal(await etcd.getAll().prefix("kv/").count(), 0);
    assert.equal(await etcd.get("other").string(), "x");
  });

  it("KV: reads at a past revision, and etcd's error below the compaction point", async () => {
    const first = await etcd.put("rev").value("one");
    await etcd.put("rev").value("two");
    assert.equal(await etcd.get("rev").revision(first.header.revision).string(), "one");
    assert.equal(await etcd.get("rev").string(), "two");
    const now = await etcd.get("rev").exec();
    await etcd.put("rev").value("three");
    await etcd.put("rev").value("four");
    await etcd.put("rev").value("five");
    await etcd.get("rev").exec();
    const compactTo = String(Number(now.header.revision) + 2);
    await etcd.kv.compact({ revision: compactTo });
    await assert.rejects(etcd.get("rev").revision(first.header.revision).string(), /etcdserver: mvcc: required revision has been compacted/);
    assert.equal(await etcd.get("rev").revision(compactTo).string(), "four");
  });

  it("txn: if/then/else takes the right branch and applies its writes atomically", async () => {
    await etcd.put("tx").value("v1");
    const ok = await etcd.if("tx", "Value", "==", "v1").then(etcd.put("tx").value("v2"), etcd.put("tx-log").value("changed")).else(etcd.get("tx")).commit();
    assert.equal(ok.succeeded, true);
    assert.equal(await etcd.get("tx").string(), "v2");
    assert.equal(await etcd.get("tx-log").string(), "changed");
    const no = await etcd.if("tx", "Value", "==", "v1").then(etcd.put("tx").value("v3")).else(etcd.get("tx")).commit();
    assert.equal(no.succeeded, false);
    assert.equal(no.responses[0]!.response_range!.kvs[0]!.value.toString(), "v2");
    assert.equal(await etcd.get("tx").string(), "v2");
    const absent = await etcd.if("tx-none", "Create", "==", 0).then(etcd.put("tx-none").value("made")).commit();
    assert.equal(absent.succeeded, true);
    assert.equal(await etcd.get("tx-none").string(), "made");
  });

  it("watch: live put and delete events on a key, with previous values", async () => {
    const w = await etcd.watch().key("watched").withPreviousKV().create();
    watchers.push(w);
    const events = collect<[string, string, string | undefined]>(
      3,
      (push) => {
        w.on("put", (kv: IKeyValue, prev?: IKeyValue) => push(["put", kv.value.toString(), prev?.value.toString()]));
        w.on("delete", (kv: IKeyValue, prev?: IKeyValue) => push(["delete", kv.key.toString(), prev?.value.toString()]));
      },
      "watch events",
    );
    // Written through another member: the event still reaches this watcher.
    await other.put("watched").value("a");
    await other.put("watched").value("b");
    await other.delete().key("watched");
    assert.deepEqual(await events, [
      ["put", "a", undefined],
      ["put", "b", "a"],
      ["delete", "watched", "b"],
    ]);
    await w.cancel();
  });

  it("watch: replays history from a past revision on a prefix", async () => {
    const start = await etcd.put("hist/1").value("x");
    await etcd.put("hist/2").value("y");
    await etcd.delete().key("hist/1");
    await etcd.put("unrelated").value("z");
    const w = await other.watch().prefix("hist/").startRevision(start.header.revision).create();
    watchers.push(w);
    const events = collect<string>(
      3,
      (push) => {
        w.on("put", (kv: IKeyValue) => push(`put ${kv.key.toString()}=${kv.value.toString()} @${kv.mod_revision}`));
        w.on("delete", (kv: IKeyValue) => push(`delete ${kv.key.toString()} @${kv.mod_revision}`));
      },
      "history events",
    );
    const r = Number(start.header.revision);
    assert.deepEqual(await events, [`put hist/1=x @${r}`, `put hist/2=y @${r + 1}`, `delete hist/1 @${r + 2}`]);
    await w.cancel();
  });

  it("leases: grant, keep-alive events, attached key, revoke deletes the key", async () => {
    const lease = etcd.lease(3);
    const id = await lease.grant();
    assert.match(id, /^\d+$/);
    const renewed = collect<string>(1, (push) => lease.on("keepaliveSucceeded", (res) => push(String(res.TTL))), "keepaliveSucceeded", 8_000);
    await lease.put("leased").value("v");
    assert.equal(await other.get("leased").string(), "v");
    assert.deepEqual(await renewed, ["3"]);
    const once = await lease.keepaliveOnce();
    assert.equal(String(once.TTL), "3");
    await lease.revoke();
    assert.equal(await etcd.get("leased").string(), null);
    assert.equal(await other.get("leased").string(), null);
    // The client maps etcd's exact message to its own error class.
    await assert.rejects(etcd.put("leased").value("again").lease(id).exec(), EtcdLeaseInvalidError);
  });

  it("leases: without keep-alive the leader expires the lease after its TTL and deletes the key", async () => {
    const lease = etcd.lease(1, { autoKeepAlive: false });
    const id = await lease.grant();
    await lease.put("expiring").value("soon");
    assert.equal(await etcd.get("expiring").string(), "soon");
    await until("the key of the expired lease to be deleted", async () => (await etcd.get("expiring").string()) === null, 10_000);
    assert.equal(await other.get("expiring").string(), null);
    const listed = await etcd.leaseClient.leaseLeases();
    assert.equal(
      listed.leases.some((l) => String(l.ID) === id),
      false,
      "the expired lease is gone",
    );
    const ttl = await other.leaseClient.leaseTimeToLive({ ID: id, keys: false });
    assert.equal(String(ttl.TTL), "-1", "etcd reports an unknown lease with TTL -1");
    lease.release();
  });

  it("lock: two clients contend, never both inside, each gets its turns", async () => {
    let inside = 0;
    let maxInside = 0;
    let refused = 0;
    const log: string[] = [];
    const worker = async (c: Etcd3, name: string, turns: number): Promise<void> => {
      for (let done = 0; done < turns; ) {
        try {
          await c.lock("the-lock").ttl(5).do(async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            log.push(name);
            await sleep(30);
            inside--;
          });
          done++;
        } catch (e) {
          if (!(e instanceof EtcdLockFailedError)) throw e;
          refused++;
          await sleep(5);
        }
      }
    };
    await Promise.all([worker(etcd, "a", 4), worker(other, "b", 4)]);
    assert.equal(maxInside, 1, "mutual exclusion");
    assert.deepEqual([...log].sort(), ["a", "a", "a", "a", "b", "b", "b", "b"]);
    assert.ok(refused > 0, "the clients did contend");
    assert.equal(await etcd.getAll().prefix("the-lock").count(), 0, "released locks leave no key");
  });

  it("election: campaign, observe the leader, resign hands over to the next candidate", async () => {
    const observer = await etcd.election("leader-e").observe();
    const changes: Array<string | undefined> = [];
    observer.on("change", (v) => changes.push(v));
    const first = etcd.election("leader-e", 5).campaign("alpha");
    await new Promise<void>((resolve, reject) => {
      first.on("elected", () => resolve());
      first.on("error", reject);
    });
    const second = other.election("leader-e", 5).campaign("beta");
    let secondElected = false;
    const errors: Error[] = [];
    second.on("elected", () => (secondElected = true));
    second.on("error", (e: Error) => errors.push(e));
    await until("the observer to see alpha", async () => observer.leader() === "alpha");
    assert.equal(await other.election("leader-e").leader(), "alpha");
    await sleep(300);
    assert.equal(secondElected, false, "a second candidate waits while the first leads");
    await first.resign();
    await until("beta to be elected", async () => secondElected || errors.length > 0);
    assert.deepEqual(errors, []);
    await until("the observer to see beta", async () => observer.leader() === "beta");
    assert.equal(await etcd.election("leader-e").leader(), "beta");
    await second.resign();
    await until("no leader", async () => (await etcd.election("leader-e").leader()) === undefined);
    await observer.cancel();
    const seen = changes.filter((v, i) => v !== undefined && v !== changes[i - 1]);
    assert.deepEqual(seen, ["alpha", "beta"]);
  });
});
