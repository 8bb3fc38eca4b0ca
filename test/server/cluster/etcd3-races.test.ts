/**
 * Races the `etcd3` client runs into, each answered as etcd 3.4 answers it, on one 3-member cluster.
 *
 * A client that closes its connection (GOAWAY) while it opens a stream still gets that stream
 * served (node-runtime/server/api/client-goaway.ts). First at the HTTP/2 level, deterministic:
 * a request submitted in the same tick as the client's session.close() goes out after the
 * GOAWAY (nghttp2 sends GOAWAY ahead of new HEADERS); Node's default answer refused it with
 * REFUSED_STREAM. Then as the `etcd3` client meets it: it closes every channel to a host when
 * one of its watch streams ends CANCELLED (its own cancel), while a call it just started (here
 * the second of two reads, started when the first returns) is on its way; that call failed with
 * `14 UNAVAILABLE: Channel closed before call started` in about one try in six.
 *
 * A keep-alive sent just before a revoke of the same lease is answered with the lease's TTL, as
 * etcd 3.4 answers it (19 of 20 there; its renew does not wait for consensus). raftkv looked the
 * lease up only after confirming its leadership, by which time the revoke had been applied, and
 * answered TTL 0: the `etcd3` client then reports the lease lost before the revoke returns (every
 * try, through the leader or a follower; the etcd3 suite's "tears down if the lease gets revoked").
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import { noop } from "cockatiel";
import { Etcd3 } from "etcd3";
import { TestCluster } from "../harness/cluster";

process.env["NODE_NO_WARNINGS"] = "1";

describe("etcd3 client races against a 3-member cluster", function () {
  this.timeout(120_000);
  let cluster: TestCluster | undefined;

  before(async function () {
    this.timeout(120_000);
    cluster = await TestCluster.start({ size: 3 });
  });
  after(async () => {
    await cluster?.destroy();
  });

  describe("client GOAWAY: streams the client opens as it closes are served", () => {
    function tlsOptions(): { ca: Buffer; cert: Buffer; key: Buffer } {
      const admin = cluster!.pki.clients["admin"]!;
      return { ca: fs.readFileSync(admin.ca), cert: fs.readFileSync(admin.cert), key: fs.readFileSync(admin.key) };
    }

    it("answers a request whose HEADERS follow the client's GOAWAY(NO_ERROR)", async () => {
      const m = cluster!.members[0]!;
      const session = http2.connect(`https://127.0.0.1:${m.clientPort}`, { ...tlsOptions(), servername: "" });
      session.on("error", () => undefined);
      await new Promise<void>((resolve, reject) => {
        session.once("connect", () => resolve());
        session.once("error", reject);
      });
      const goaways: number[] = [];
      session.on("goaway", (_code: number, lastStreamId: number) => goaways.push(lastStreamId));
      // KV/Range of key "health" (the key etcdctl's endpoint health reads): a gRPC message is a
      // 5-byte prefix (uncompressed, length) and the RangeRequest { key: "health" }.
      const request = Buffer.from([0x0a, 0x06, ...Buffer.from("health")]);
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, request.length]), request]);
      const stream = session.request({ ":method": "POST", ":path": "/etcdserverpb.KV/Range", "content-type": "application/grpc", te: "trailers" });
      stream.end(framed);
      session.close();
      const outcome = await new Promise<{ status?: string; data: number; rst: number; error?: string }>((resolve) => {
        let status: string | undefined;
        let data = 0;
        let error: string | undefined;
        stream.on("trailers", (t) => (status = String(t["grpc-status"])));
        stream.on("data", (d: Buffer) => (data += d.length));
        stream.on("error", (e: Error) => (error = e.message));
        stream.on("close", () => resolve({ ...(status !== undefined ? { status } : {}), data, rst: stream.rstCode ?? -1, ...(error !== undefined ? { error } : {}) }));
      });
      assert.deepEqual(
        { status: outcome.status, error: outcome.error, refusedBy: goaways },
        { status: "0", error: undefined, refusedBy: [] },
        `the stream was not served: ${JSON.stringify(outcome)}`,
      );
      assert.ok(outcome.data > 5, "the Range answer came back");
    });

    it("etcd3 client: a call started as its own watch cancel closes its channels still succeeds (40 tries)", async () => {
      const m = cluster!.members[0]!;
      const t = tlsOptions();
      const failures: string[] = [];
      for (let i = 0; i < 40; i++) {
        const client = new Etcd3({
          hosts: `https://127.0.0.1:${m.clientPort}`,
          credentials: { rootCertificate: t.ca, certChain: t.cert, privateKey: t.key },
          faultHandling: { host: () => noop, global: noop },
        });
        try {
          const key = `goaway/${i}`;
          await client.put(key).value("v");
          const watcher = await client.watch().key(key).create();
          // The first read goes out before the cancel; the second starts when the first returns,
          // which can be the same tick as the cancel's answer that makes the client close its channels.
          const second = client
            .get(key)
            .serializable(true)
            .then(() => client.get(key).serializable(true));
          await new Promise((r) => setTimeout(r, 0));
          const settled = await Promise.allSettled([watcher.cancel(), second]);
          for (const s of settled) if (s.status === "rejected") failures.push(`try ${i}: ${String(s.reason)}`);
        } finally {
          client.close();
        }
      }
      assert.deepEqual(failures, []);
    });
  });

  describe("lease keep-alive racing a revoke", () => {
    async function tries(member: string, n: number): Promise<string[]> {
      const admin = cluster!.pki.clients["admin"]!;
      const client = new Etcd3({
        hosts: `https://127.0.0.1:${cluster!.member(member).clientPort}`,
        credentials: { rootCertificate: fs.readFileSync(admin.ca), certChain: fs.readFileSync(admin.cert), privateKey: fs.readFileSync(admin.key) },
        faultHandling: { host: () => noop, global: noop },
      });
      const outcomes: string[] = [];
      try {
        for (let i = 0; i < n; i++) {
          const lease = client.lease(60);
          const events: string[] = [];
          lease.on("lost", () => events.push("lost"));
          lease.on("keepaliveSucceeded", (r: { TTL: string }) => events.push(`keep-alive TTL ${r.TTL}`));
          // The client fires its first keep-alive right after this event; the revoke follows it.
          await new Promise<void>((resolve) => lease.once("keepaliveEstablished", () => resolve()));
          await client.leaseClient.leaseRevoke({ ID: await lease.grant() });
          events.push("revoked");
          outcomes.push(events.join(", "));
          lease.removeAllListeners();
        }
      } finally {
        client.close();
      }
      return outcomes;
    }

    it("answers the keep-alive with the TTL, through the leader and through a follower", async () => {
      const leader = await cluster!.leader();
      const follower = cluster!.members.map((m) => m.name).find((n) => n !== leader)!;
      for (const member of [leader, follower]) {
        const outcomes = await tries(member, 10);
        assert.deepEqual(outcomes, Array(10).fill("keep-alive TTL 60, revoked"), `through ${member === leader ? "the leader" : "a follower"}`);
      }
    });
  });
});
