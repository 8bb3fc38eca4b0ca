// Who may use the peer port: only a member's peer certificate (peer CA, peer profile), only for
// the member it names, within handshake/idle/size limits. Real TLS on loopback; the attacker is
// a raw TLS client speaking the frame protocol by hand.
import assert from "node:assert/strict";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Metrics } from "../../../node-runtime/server/obs/metrics";
import { FrameParser, FrameType, encodeFrame } from "../../../node-runtime/server/transport/frame";
import { PROTOCOL_VERSION, encodeHello } from "../../../node-runtime/server/transport/handshake";
import { makeCa, makeLeaf, type LeafOptions, type TestCa, type TestLeaf } from "../tls/certs";
import { Cluster, numbered, testDirectory, waitFor, type TestMember } from "./harness";

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

interface RawPeer {
  socket: TLSSocket;
  frames: Array<{ type: number; body: Buffer }>;
  closed: boolean;
  send(type: FrameType, body?: Uint8Array): void;
  hello(from: number, to: number, clusterId?: string): void;
}

/** A TLS client holding `leaf`, speaking frames by hand. */
async function rawPeer(target: TestMember, ca: TestCa, leaf: TestLeaf): Promise<RawPeer> {
  const socket = tlsConnect({ host: "127.0.0.1", port: target.transport.port, ca: [ca.certPem], cert: leaf.certPem, key: leaf.keyPem });
  const peer: RawPeer = {
    socket,
    frames: [],
    closed: false,
    send: (type, body) => socket.write(encodeFrame(type, body)),
    hello: (from, to, clusterId = "cluster-1") => peer.send(FrameType.Hello, encodeHello({ version: PROTOCOL_VERSION, clusterId, from, to })),
  };
  const parser = new FrameParser((type, body) => peer.frames.push({ type, body: Buffer.from(body) }));
  socket.on("data", (c: Buffer) => parser.push(c));
  socket.on("error", () => {});
  socket.on("close", () => (peer.closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("close", () => reject(new Error("closed during TLS handshake")));
  });
  return peer;
}

/** Makes `id` a peer `m` knows (only known members may connect); its address is never reached. */
function know(m: TestMember, ...ids: number[]): void {
  for (const id of ids) m.transport.addPeer(id, "https://127.0.0.1:9");
}

const rejectText = (p: RawPeer) => p.frames.filter((f) => f.type === FrameType.Reject).map((f) => f.body.toString("utf8"));

describe("peer port authentication and limits", function () {
  let ca: TestCa;
  let cluster: Cluster;
  const leaf = (cn: string, opts: LeafOptions = {}) => makeLeaf(ca, cn, opts);

  before(async () => {
    ca = await makeCa("peer-ca");
  });
  beforeEach(() => {
    cluster = new Cluster();
  });
  afterEach(async () => {
    await cluster.close();
  });

  it("refuses a client certificate signed by the peer CA at once, before any handshake, telling it nothing", async () => {
    const metrics = new Metrics({ processMetrics: false });
    const a = await cluster.member(1, { ca, metrics });
    for (const intruder of [
      await leaf("admin", { ekus: [CLIENT_AUTH] }), // a client certificate
      await leaf("member-2"), // right CN, but not the peer profile (no OU, no member URI)
      await leaf("member-2", { ou: "raftkv peer" }), // OU only
      await leaf("member-3", { member: "member-2" }), // URI and CN disagree
      await leaf("member-2", { member: "member-2", ekus: [CLIENT_AUTH] }), // peer profile without server auth
      await leaf("member-2", { member: "member-2", uris: ["urn:raftkv:member:member-3"] }), // two members
    ]) {
      const p = await rawPeer(a, ca, intruder);
      await waitFor("refusal", () => p.closed);
      assert.deepEqual(rejectText(p), ["peer connection refused"]);
    }
    assert.equal(a.received.length, 0);
    assert.match(await metrics.exposition(), /raftkv_network_peer_rejected_connections_total\{reason="identity"\} 6/);
    const reasons = a.log.find("rejected peer connection").map((l) => String(l.reason));
    assert.ok(reasons.some((r) => /not a peer certificate/.test(r)), reasons.join("; "));
  });

  it("refuses member 3's real peer certificate claiming to be member 2; the genuine member 2 keeps its connection", async () => {
    const a = await cluster.member(1, { ca });
    const b = await cluster.member(2, { ca });
    cluster.mesh(a, b);
    b.transport.send(1, numbered(1));
    await waitFor("b connected to a", () => a.received.length === 1);
    const impostor = await rawPeer(a, ca, await leaf("member-3", { member: "member-3" }));
    impostor.hello(2, 1);
    impostor.send(FrameType.Msg, numbered(666));
    await waitFor("impostor refused", () => impostor.closed);
    assert.deepEqual(rejectText(impostor), ["peer connection refused"]);
    assert.match(String(a.log.find("rejected peer connection").at(-1)!.reason), /names member member-3, not the claimed member/);
    // "Newest connection wins" did not let the impostor displace b.
    b.transport.send(1, numbered(2));
    await waitFor("b still delivers", () => a.received.length === 2);
    assert.deepEqual(a.received.map((r) => r.from), [2, 2]);
    assert.ok(!a.received.some((r) => Buffer.from(r.payload).readUInt32BE(0) === 666));
    // The same certificate claiming its own member is accepted.
    know(a, 3);
    const honest = await rawPeer(a, ca, await leaf("member-3", { member: "member-3" }));
    honest.hello(3, 1);
    await waitFor("accepted", () => honest.frames.some((f) => f.type === FrameType.HelloOk));
    honest.socket.destroy();
  });

  it("the dialer refuses a server whose certificate names another member, and says nothing to it", async () => {
    const a = await cluster.member(1, { ca });
    // Listening where a expects member 2, holding member 3's peer certificate.
    const wrong = await cluster.member(3, { ca });
    a.transport.addPeer(2, wrong.url);
    a.transport.send(2, numbered(1));
    await waitFor("a refuses", () => a.log.find("cannot connect to peer").some((l) => /peer certificate refused: certificate names member member-3/.test(String(l.reason))));
    assert.equal(wrong.received.length, 0);
    // a may abort inside the TLS handshake (then wrong logs "…: TLS handshake failed") or right
    // after it; either way it never said hello, so wrong never judged a claimed member.
    const judged = wrong.log.find("rejected peer connection").filter((l) => l.msg === "rejected peer connection");
    assert.equal(judged.length, 0, `a hung up before saying hello: ${JSON.stringify(judged)}`);
  });

  it("a member added but not started (no name yet) must present a certificate valid for its peer URL and naming no other member", async () => {
    const directory = () => [...testDirectory().filter((r) => r.id !== 7), { id: 7, name: "", peerURLs: ["https://127.0.0.1:2380"] }];
    const a = await cluster.member(1, { ca, extra: { directory } });
    know(a, 7);
    const other = await rawPeer(a, ca, await leaf("member-4", { member: "member-4" }));
    other.hello(7, 1);
    await waitFor("refused", () => other.closed);
    assert.deepEqual(rejectText(other), ["peer connection refused"]);
    const newcomer = await rawPeer(a, ca, await leaf("newcomer", { member: "newcomer" }));
    newcomer.hello(7, 1);
    await waitFor("accepted", () => newcomer.frames.some((f) => f.type === FrameType.HelloOk));
    newcomer.socket.destroy();
  });

  it("--peer-cert-allowed-cn and --peer-cert-allowed-hostname narrow who may connect", async () => {
    const strict = await cluster.member(1, { ca, extra: { policy: { allowedCn: ["member-9"] } } });
    const byHost = await cluster.member(4, { ca, extra: { policy: { allowedHostnames: ["10.9.9.9", "peer.example"] } } });
    const open = await cluster.member(5, { ca, extra: { policy: { allowedCn: ["member-2"], allowedHostnames: ["127.0.0.1"] } } });
    const cert = await leaf("member-2", { member: "member-2" });
    know(strict, 2);
    know(byHost, 2);
    know(open, 2);
    for (const [target, to, accepted] of [[strict, 1, false], [byHost, 4, false], [open, 5, true]] as const) {
      const p = await rawPeer(target, ca, cert);
      p.hello(2, to);
      await waitFor("an answer", () => p.closed || p.frames.length > 0);
      assert.equal(p.frames.some((f) => f.type === FrameType.HelloOk), accepted, `member ${to}`);
      p.socket.destroy();
    }
    assert.match(String(strict.log.find("rejected peer connection")[0]!.reason), /--peer-cert-allowed-cn/);
    assert.match(String(byHost.log.find("rejected peer connection")[0]!.reason), /--peer-cert-allowed-hostname/);
  });

  it("closes a connection that never says hello, one that goes idle, and connections beyond the cap", async () => {
    const metrics = new Metrics({ processMetrics: false });
    // The deadline counts from accept and covers TLS and the hello: it must outlast the raw
    // peer's TLS handshake on a loaded machine, or "silent" is cut before it could be refused;
    // the idle timeout (which also runs before the hello) stays longer than it.
    const a = await cluster.member(1, { ca, metrics, extra: { handshakeTimeoutMs: 1500, idleTimeoutMs: 2000, maxConnections: 3 } });
    const cert = await leaf("member-2", { member: "member-2" });
    know(a, 2);
    const silent = await rawPeer(a, ca, cert);
    await waitFor("silent one closed", () => silent.closed);
    assert.deepEqual(rejectText(silent), ["peer connection refused"]);
    const idle = await rawPeer(a, ca, cert);
    idle.hello(2, 1);
    await waitFor("accepted", () => idle.frames.some((f) => f.type === FrameType.HelloOk));
    await waitFor("idle one closed", () => idle.closed);
    // Plain TCP sockets that never start TLS count against the cap too.
    const sockets: Socket[] = [];
    const closed = new Set<Socket>();
    for (let i = 0; i < 5; i++) {
      const s = netConnect({ host: "127.0.0.1", port: a.transport.port });
      s.on("error", () => {});
      s.on("close", () => closed.add(s));
      sockets.push(s);
      await new Promise((r) => s.once("connect", r));
    }
    await waitFor("two beyond the cap closed", () => closed.size >= 2);
    const text = await metrics.exposition();
    assert.match(text, /raftkv_network_peer_rejected_connections_total\{reason="limit"\} 2/);
    assert.match(text, /raftkv_network_peer_rejected_connections_total\{reason="idle"\} 1/);
    // The TLS handshake timeout closes the rest.
    await waitFor("all closed", () => closed.size === 5);
    sockets.forEach((s) => s.destroy());
  });

  it("drops an unterminated snapshot beyond the size cap, and one that stalls, freeing their buffers", async () => {
    const metrics = new Metrics({ processMetrics: false });
    const a = await cluster.member(1, { ca, metrics, extra: { maxSnapshotBytes: 4 * 1024 * 1024, stallTimeoutMs: 500 } });
    const cert = await leaf("member-2", { member: "member-2" });
    know(a, 2);
    const big = await rawPeer(a, ca, cert);
    big.hello(2, 1);
    const piece = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 6 && !big.closed; i++) {
      big.send(FrameType.SnapPart, piece);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor("oversized transfer dropped", () => big.closed);
    const stalled = await rawPeer(a, ca, cert);
    stalled.hello(2, 1);
    stalled.send(FrameType.SnapPart, piece);
    // Pings keep the connection from going idle; only the stalled transfer closes it.
    const pinger = setInterval(() => stalled.send(FrameType.Ping, Buffer.alloc(8)), 100);
    try {
      await waitFor("stalled transfer dropped", () => stalled.closed);
    } finally {
      clearInterval(pinger);
    }
    assert.equal(a.received.length, 0);
    const text = await metrics.exposition();
    assert.match(text, /reason="oversize"\} 1/);
    assert.match(text, /reason="stalled"\} 1/);
    // A snapshot within the cap still arrives whole.
    const b = await cluster.member(2, { ca });
    a.transport.updatePeer(2, b.url);
    b.transport.addPeer(1, a.url);
    b.transport.send(1, numbered(0));
    await waitFor("connected", () => a.received.length === 1);
    const snap = Buffer.alloc(3 * 1024 * 1024, 3);
    await b.transport.sendSnapshot(1, snap);
    await waitFor("snapshot", () => a.received.some((r) => r.payload.length === snap.length));
  });
});
