// The member list query a joining member sends instead of a Hello (issue 14): it learns the ID
// `member add` gave it from a member's answer. Real TLS on loopback with peer certificates.
import assert from "node:assert/strict";
import { queryMembers } from "../../../node-runtime/server/transport/members-query";
import { makeCa, type TestCa } from "../tls/certs";
import { Cluster } from "./harness";

describe("peer port: member list query of a joining member", function () {
  let ca: TestCa;
  let cluster: Cluster;
  const list = { id: 1, clusterId: 77, members: [{ id: 1, name: "member-1", peerURLs: ["https://127.0.0.1:1"], clientURLs: [], isLearner: false }] };

  before(async () => {
    ca = await makeCa("peer-ca");
  });
  beforeEach(() => {
    cluster = new Cluster();
  });
  afterEach(async () => {
    await cluster.close();
  });

  it("answers a peer certificate with the cluster token, and nobody else", async () => {
    const answering = await cluster.member(1, { ca, extra: { memberList: () => list } });
    const joiner = await cluster.member(2, { ca });
    assert.deepEqual(await queryMembers({ url: answering.url, tls: joiner.tls, clusterId: "cluster-1", timeoutMs: 5000 }), list);
    // another cluster's token: refused with the generic answer, the reason only in the log
    await assert.rejects(queryMembers({ url: answering.url, tls: joiner.tls, clusterId: "cluster-2", timeoutMs: 5000 }), /refused the member list query: peer connection refused/);
    assert.match(String(answering.log.find("rejected peer connection").at(-1)!.reason), /cluster ID mismatch/);
    // a member that has no list to give (still starting) refuses too
    const starting = await cluster.member(3, { ca });
    await assert.rejects(queryMembers({ url: starting.url, tls: joiner.tls, clusterId: "cluster-1", timeoutMs: 5000 }), /refused the member list query/);
  });

  it("refuses a certificate from another CA at the TLS handshake", async () => {
    const other = await makeCa("other-ca");
    const answering = await cluster.member(1, { ca, extra: { memberList: () => list } });
    const stranger = await cluster.member(2, { ca: other, trust: [other, ca] });
    await assert.rejects(queryMembers({ url: answering.url, tls: stranger.tls, clusterId: "cluster-1", timeoutMs: 5000 }));
  });
});
