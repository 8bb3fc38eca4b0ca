import assert from "node:assert/strict";
import { createServer as createNetServer, type Server as NetServer } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import { PeerTransport } from "../../../node-runtime/server/transport";
import { FrameParser, FrameType, encodeFrame } from "../../../node-runtime/server/transport/frame";
import { decodeHello } from "../../../node-runtime/server/transport/handshake";
import { Metrics } from "../../../node-runtime/server/obs/metrics";
import { makeCa, makeLeaf, type TestCa } from "../tls/certs";
import { Cluster, numbered, seqOf, testDirectory, waitFor } from "./harness";

describe("peer transport over mutual TLS on loopback", function () {
  let ca: TestCa;
  let cluster: Cluster;

  before(async () => {
    ca = await makeCa("peer-ca");
  });
  beforeEach(() => {
    cluster = new Cluster();
  });
  afterEach(async () => {
    await cluster.close();
  });

  it("delivers thousands of messages between three members, in order per pair", async () => {
    const ms = [await cluster.member(1, { ca }), await cluster.member(2, { ca }), await cluster.member(3, { ca })];
    cluster.mesh(...ms);
    const perPair = 3000;
    for (let seq = 0; seq < perPair; seq++) {
      for (const a of ms) for (const b of ms) if (a !== b) a.transport.send(b.id, numbered(seq, 100 + (seq % 400)));
      // Spread over several turns so batching and queueing both take part.
      if (seq % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor("all messages", () => ms.every((m) => m.received.length === 2 * perPair));
    for (const m of ms) {
      for (const other of ms) {
        if (other === m) continue;
        const seqs = m.received.filter((r) => r.from === other.id).map((r) => seqOf(r.payload));
        assert.deepEqual(seqs, [...Array(perPair).keys()], `order ${other.id} -> ${m.id}`);
      }
      const sizes = m.received.map((r) => r.payload.length);
      assert.ok(sizes.some((s) => s === 100) && sizes.some((s) => s === 499));
    }
    const stats = ms[0]!.transport.stats().get(2)!;
    assert.equal(stats.connected, true);
    assert.equal(stats.sentFrames, perPair);
    assert.equal(stats.droppedFrames, 0);
    assert.equal(stats.queuedBytes, 0);
  });

  it("measures peer round trips and counts bytes in the metrics", async () => {
    const metricsA = new Metrics({ processMetrics: false });
    const metricsB = new Metrics({ processMetrics: false });
    const a = await cluster.member(1, { ca, metrics: metricsA, extra: { pingIntervalMs: 20 } });
    const b = await cluster.member(2, { ca, metrics: metricsB });
    cluster.mesh(a, b);
    a.transport.send(2, numbered(1));
    await waitFor("a round trip", () => a.transport.stats().get(2)!.rttMs !== undefined && b.received.length === 1);
    const text = await metricsA.exposition();
    assert.match(text, /etcd_network_peer_round_trip_time_seconds_count\{To="2"\} [1-9]/);
    assert.match(text, /etcd_network_peer_sent_bytes_total\{To="2"\} [1-9]/);
    assert.match(await metricsB.exposition(), /etcd_network_peer_received_bytes_total\{From="1"\} [1-9]/);
  });

  it("rejects and logs a member whose certificate is signed by another CA", async () => {
    const otherCa = await makeCa("other-ca");
    const a = await cluster.member(1, { ca });
    // The intruder trusts our CA (so it gets as far as presenting its certificate) but its own
    // certificate comes from another CA.
    const intruder = await cluster.member(9, { ca: otherCa, trust: [ca, otherCa] });
    a.transport.addPeer(9, intruder.url);
    intruder.transport.addPeer(1, a.url);
    intruder.transport.send(1, numbered(1));
    await waitFor("rejection in a's log", () => a.log.find("rejected peer connection: TLS handshake failed").length > 0);
    const line = a.log.find("rejected peer connection: TLS handshake failed")[0]!;
    assert.equal(line.level, "warn");
    assert.match(String(line.reason), /^client certificate rejected: /);
    await waitFor("intruder logs the failure", () => intruder.log.find("cannot connect to peer").length > 0);
    assert.equal(a.received.length, 0);
    assert.equal(intruder.transport.stats().get(1)!.connected, false);
  });

  it("refuses a member of another cluster at the handshake and logs why, once, telling the dialer nothing", async () => {
    const a = await cluster.member(1, { ca, clusterId: "cluster-1" });
    const b = await cluster.member(2, { ca, clusterId: "cluster-2" });
    cluster.mesh(a, b);
    b.transport.send(1, numbered(1));
    await waitFor("a's rejection", () => a.log.find("rejected peer connection").length > 0);
    assert.match(String(a.log.find("rejected peer connection")[0]!.reason), /cluster ID mismatch/);
    // The dialer learns that it was refused, not a's cluster token or member IDs.
    await waitFor("b sees the refusal", () =>
      b.log.find("cannot connect to peer").some((l) => String(l.reason) === "peer refused the connection: peer connection refused"),
    );
    assert.doesNotMatch(JSON.stringify(b.log.find("cannot connect to peer")), /cluster-1/);
    // Several redials later, each side has still logged it once.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(a.log.find("rejected peer connection").length, 1);
    assert.equal(b.log.find("cannot connect to peer").length, 1);
    assert.equal(a.received.length, 0);
  });

  it("reconnects to a restarted peer and resumes delivery", async () => {
    const unreachable: number[] = [];
    const a = await cluster.member(1, { ca, extra: { onPeerUnreachable: (id) => unreachable.push(id) } });
    const b = await cluster.member(2, { ca });
    cluster.mesh(a, b);
    a.transport.send(2, numbered(1));
    await waitFor("first message", () => b.received.length === 1);
    const port = b.transport.port;
    await b.transport.stop();
    await waitFor("a notices", () => !a.transport.stats().get(2)!.connected && unreachable.includes(2));
    // Sent while the peer is down: queued, delivered after the reconnection.
    for (let i = 2; i <= 50; i++) a.transport.send(2, numbered(i));
    const b2 = await cluster.member(2, { ca, port });
    b2.transport.addPeer(1, a.url);
    await waitFor("delivery resumes", () => b2.received.length === 49);
    assert.deepEqual(
      b2.received.map((r) => seqOf(r.payload)),
      Array.from({ length: 49 }, (_, i) => i + 2),
    );
    assert.equal(a.log.find("lost connection to peer").length, 1);
    assert.ok(a.log.find("peer connected").length >= 2);
  });

  it("drops the oldest messages when a stalled peer lets the queue fill, and counts them", async () => {
    const a = await cluster.member(1, { ca, extra: { maxQueueBytes: 64 * 1024, peerTimeoutMs: 60_000 } });
    const stalled = await stalledPeer(ca, 2);
    try {
      a.transport.addPeer(2, `https://127.0.0.1:${stalled.port}`);
      await waitFor("connected to the stalled peer", () => a.transport.stats().get(2)!.connected);
      const total = 40_000;
      const size = 1000;
      for (let seq = 0; seq < total; seq++) {
        a.transport.send(2, numbered(seq, size));
        if (seq % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      const stats = a.transport.stats().get(2)!;
      assert.ok(stats.droppedFrames > 0, "some messages dropped");
      assert.ok(stats.queuedBytes <= 64 * 1024, `queue bounded, was ${stats.queuedBytes}`);
      // Let the reader go: everything not dropped arrives, in order, and the newest survived.
      stalled.resume();
      await waitFor("queue drained", () => a.transport.stats().get(2)!.queuedBytes === 0);
      await waitFor("all sent messages received", () => stalled.received.length === a.transport.stats().get(2)!.sentFrames);
      const after = a.transport.stats().get(2)!;
      assert.equal(after.sentFrames + after.droppedFrames, total);
      const seqs = stalled.received.map(seqOf);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, "in order");
      assert.equal(seqs[seqs.length - 1], total - 1, "the newest message is delivered");
      assert.ok(seqs.length < total);
    } finally {
      await stalled.close();
    }
  });

  it("streams a 50 MB snapshot intact while small messages keep flowing", async () => {
    const a = await cluster.member(1, { ca });
    const b = await cluster.member(2, { ca });
    cluster.mesh(a, b);
    a.transport.send(2, numbered(0));
    await waitFor("connected", () => b.received.length === 1);
    const snapshot = Buffer.alloc(50 * 1024 * 1024);
    for (let i = 0; i < snapshot.length; i += 4096) snapshot.writeUInt32BE(i, i);
    snapshot.writeUInt32BE(0xffffffff, 0); // distinguishes it from the small messages
    let smallSent = 1;
    let snapshotDone = false;
    const ticker = setInterval(() => a.transport.send(2, numbered(smallSent++)), 1);
    try {
      await a.transport.sendSnapshot(2, snapshot);
      snapshotDone = true;
      await waitFor("snapshot received", () => b.received.some((r) => r.payload.length === snapshot.length));
    } finally {
      clearInterval(ticker);
    }
    assert.ok(snapshotDone);
    const index = b.received.findIndex((r) => r.payload.length === snapshot.length);
    assert.ok(Buffer.from(b.received[index]!.payload).equals(snapshot), "snapshot intact");
    // Small messages sent after the snapshot started arrived before it completed.
    assert.ok(index > 1, `small messages overtook the snapshot (index ${index})`);
    const small = b.received.filter((r) => r.payload.length === 300).map((r) => seqOf(r.payload));
    for (let i = 1; i < small.length; i++) assert.equal(small[i], small[i - 1]! + 1);
  });

  it("sends an ordered message larger than one chunk intact and in order", async () => {
    const a = await cluster.member(1, { ca });
    const b = await cluster.member(2, { ca });
    cluster.mesh(a, b);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 9);
    big.writeUInt32BE(1, 0);
    a.transport.send(2, numbered(0));
    a.transport.send(2, big);
    a.transport.send(2, numbered(2));
    await waitFor("three messages", () => b.received.length === 3);
    assert.deepEqual(b.received.map((r) => seqOf(r.payload)), [0, 1, 2]);
    assert.ok(Buffer.from(b.received[1]!.payload).equals(big));
  });

  it("says clearly when the peer port is in use", async () => {
    const blocker: NetServer = createNetServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const a = await cluster.member(1, { ca });
      const t = new PeerTransport({
        selfId: 5,
        clusterId: "c",
        listen: { host: "127.0.0.1", port },
        tls: a.tls,
        logger: a.log.logger,
        directory: testDirectory,
        onMessage: () => {},
      });
      await assert.rejects(t.start(), {
        message: `cannot listen on https://127.0.0.1:${port} for peers: address already in use`,
      });
      await t.stop();
    } finally {
      blocker.close();
    }
  });

  it("refuses to add itself and validates peer URLs", async () => {
    const a = await cluster.member(1, { ca });
    assert.throws(() => a.transport.addPeer(1, "https://127.0.0.1:1"), /own peer/);
    assert.throws(() => a.transport.addPeer(2, "http://127.0.0.1:1"), /invalid peer URL/);
  });
});

/** A peer that completes the handshake and then stops reading until resume(). */
async function stalledPeer(ca: TestCa, id: number) {
  const leaf = await makeLeaf(ca, `member-${id}`, { member: `member-${id}` });
  const received: Uint8Array[] = [];
  const sockets: TLSSocket[] = [];
  const server: TlsServer = createTlsServer(
    { cert: leaf.certPem, key: leaf.keyPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true },
    (socket) => {
      sockets.push(socket);
      let greeted = false;
      const parser = new FrameParser((type, body) => {
        if (!greeted) {
          assert.equal(type, FrameType.Hello);
          const hello = decodeHello(body);
          assert.ok(typeof hello !== "string" && hello.to === id);
          greeted = true;
          socket.write(encodeFrame(FrameType.HelloOk));
          // Stop reading right after the handshake; the sender's socket fills up.
          socket.pause();
        } else if (type === FrameType.Msg) {
          received.push(Buffer.from(body));
        }
      });
      socket.on("data", (c: Buffer) => parser.push(c));
      socket.on("error", () => {});
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    received,
    resume: () => sockets.forEach((s) => s.resume()),
    close: () =>
      new Promise<void>((r) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => r());
      }),
  };
}
