/**
 * A keep-alive sent just before a revoke of the same lease is answered with the lease's TTL, as
 * etcd 3.4 answers it (19 of 20 there; its renew does not wait for consensus). raftkv looked the
 * lease up only after confirming its leadership, by which time the revoke had been applied, and
 * answered TTL 0: the `etcd3` client then reports the lease lost before the revoke returns (every
 * try, through the leader or a follower; the etcd3 suite's "tears down if the lease gets revoked").
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { noop } from "cockatiel";
import { Etcd3 } from "etcd3";
import { TestCluster } from "../harness/cluster";

process.env["NODE_NO_WARNINGS"] = "1";

describe("lease keep-alive racing a revoke", function () {
  this.timeout(120_000);
  let cluster: TestCluster | undefined;

  before(async function () {
    this.timeout(120_000);
    cluster = await TestCluster.start({ size: 3 });
  });
  after(async () => {
    await cluster?.destroy();
  });

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
