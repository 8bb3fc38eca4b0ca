// Issue 15, Critical #2, against real member processes with real TLS: the attacks that let a
// client certificate join the peer mesh, impersonate members, forge senders and kill or bloat
// members. Each case says what it sends and what must still hold afterwards.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { encodeMessage } from "../../../node-runtime/raft/codec";
import { EntryType, type Message } from "../../../node-runtime/raft/types";
import { memberIdFor } from "../../../node-runtime/server/identity";
import { FrameParser, FrameType, encodeFrame } from "../../../node-runtime/server/transport/frame";
import { PROTOCOL_VERSION, encodeHello } from "../../../node-runtime/server/transport/handshake";
import { peerUrl, type MemberEndpoint } from "../../../components/topology";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { cleanCtlEnv, runCli } from "../../helpers/run-cli";
import { TestCluster } from "../harness/cluster";

/** The member process's tag for raft messages on a peer connection (member.ts). */
const TAG_RAFT = 0;

interface Creds {
  cert: string;
  key: string;
}

interface Attacker {
  socket: TLSSocket;
  frames: Array<{ type: number; body: Buffer }>;
  closed: boolean;
  authorized: boolean;
  send(type: FrameType, body?: Uint8Array): boolean;
  raft(m: Message): void;
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d)).on("end", () => resolve(body));
    }).on("error", reject);
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("peer port abuse against a real 3-member cluster (issue 15, Critical #2)", function () {
  this.timeout(180_000);
  let c: TestCluster;
  let ids: Record<string, number>;
  let peerCa: string;

  const peerCreds = (name: string): Creds => ({ cert: c.pki.members[name]!.peerCert, key: c.pki.members[name]!.peerKey });
  const adminCreds = (): Creds => ({ cert: c.pki.clients["admin"]!.cert, key: c.pki.clients["admin"]!.key });

  /** Connects to `target`'s peer port with `creds`; resolves once TLS finished either way. */
  async function attack(target: MemberEndpoint, creds: Creds): Promise<Attacker> {
    const socket = tlsConnect({
      host: target.host,
      port: target.peerPort,
      ca: peerCa,
      cert: fs.readFileSync(creds.cert),
      key: fs.readFileSync(creds.key),
    });
    const a: Attacker = {
      socket,
      frames: [],
      closed: false,
      authorized: false,
      send: (type, body) => !socket.destroyed && socket.write(encodeFrame(type, body)),
      raft: (m) => {
        const body = encodeMessage(m);
        const payload = Buffer.alloc(body.length + 1);
        payload[0] = TAG_RAFT;
        payload.set(body, 1);
        a.send(FrameType.Msg, payload);
      },
    };
    const parser = new FrameParser((type, body) => a.frames.push({ type, body: Buffer.from(body) }));
    socket.on("data", (d: Buffer) => parser.push(d));
    socket.on("error", () => {});
    socket.on("close", () => (a.closed = true));
    await new Promise<void>((resolve) => {
      socket.once("secureConnect", () => resolve());
      socket.once("close", () => resolve());
    });
    // TLS 1.3: the server checks the client certificate after the client's handshake is done,
    // so a refusal shows up as the connection closing right after.
    await new Promise((r) => setTimeout(r, 300));
    a.authorized = !a.closed;
    return a;
  }

  async function identify(a: Attacker, from: string, to: string): Promise<boolean> {
    a.send(FrameType.Hello, encodeHello({ version: PROTOCOL_VERSION, clusterId: c.token, from: ids[from]!, to: ids[to]! }));
    await waitFor("an answer to the handshake", () => a.closed || a.frames.length > 0);
    return a.frames.some((f) => f.type === FrameType.HelloOk);
  }

  async function term(name: string): Promise<number> {
    return (await c.status(name))!.term;
  }

  async function metric(name: string, pattern: RegExp): Promise<number> {
    const text = await get(`http://127.0.0.1:${c.member(name).metricsPort}/metrics`);
    const line = text.split("\n").find((l) => pattern.test(l));
    return line === undefined ? 0 : Number(line.split(" ").at(-1));
  }

  /** The members not stopped by the test are running and healthy. */
  async function allAlive(names = c.members.map((m) => m.name)): Promise<void> {
    for (const name of names) assert.ok(c.running(name), `${name} exited: ${c.log(name).slice(-2000)}`);
    await c.waitHealthy(names);
  }

  before(async () => {
    // A small quota keeps the snapshot cap (2 x quota + 64 MiB) small enough to measure.
    c = await TestCluster.start({ size: 3, extraFlags: [`--quota-backend-bytes=${16 * 1024 * 1024}`] });
    ids = Object.fromEntries(c.members.map((m) => [m.name, memberIdFor([peerUrl(m)], c.token)]));
    peerCa = fs.readFileSync(c.pki.peerCaCertPath, "utf8");
  });
  after(async () => {
    await c?.destroy();
  });

  it("refuses the cluster's client certificates (admin, a member's server certificate) at the TLS handshake", async () => {
    const target = c.member("raftkv-1");
    const member2 = c.pki.members["raftkv-2"]!;
    for (const creds of [adminCreds(), { cert: member2.serverCert, key: member2.serverKey }]) {
      const a = await attack(target, creds);
      assert.equal(a.authorized, false, `${creds.cert} completed the TLS handshake on the peer port`);
      assert.equal(a.frames.length, 0);
    }
    await waitFor("the refusal in the log", () => /client certificate rejected/.test(c.log("raftkv-1")));
    await allAlive();
  });

  it("refuses member 3's real peer certificate claiming to be member 2, telling it nothing", async () => {
    const a = await attack(c.member("raftkv-1"), peerCreds("raftkv-3"));
    assert.equal(a.authorized, true);
    assert.equal(await identify(a, "raftkv-2", "raftkv-1"), false);
    const text = a.frames.filter((f) => f.type === FrameType.Reject).map((f) => f.body.toString("utf8"));
    assert.deepEqual(text, ["peer connection refused"]);
    for (const secret of [c.token, ...Object.values(ids).map((id) => id.toString(16))]) assert.ok(!text[0]!.includes(secret));
    await allAlive();
  });

  // The attacker holds member 3's peer certificate and key. The genuine member 3 is stopped
  // meanwhile: it would redial and, as the newest connection of member 3, replace the attacker's.
  async function asMember3<T>(f: () => Promise<T>): Promise<T> {
    await c.kill("raftkv-3");
    try {
      return await f();
    } finally {
      c.startMember("raftkv-3");
      await c.waitHealthy();
    }
  }

  it("drops a message whose sender differs from the connection's identity, and counts it", async () => {
    await asMember3(async () => {
      const leader = await c.leader(10_000, ["raftkv-1", "raftkv-2"]);
      const target = leader === "raftkv-1" ? "raftkv-2" : "raftkv-1";
      const a = await attack(c.member(target), peerCreds("raftkv-3"));
      assert.equal(await identify(a, "raftkv-3", target), true);
      const t = await term(target);
      // As the leader: a heartbeat of a much higher term and an append injecting an entry.
      a.raft({ type: "heartbeat", from: ids[leader]!, to: ids[target]!, term: t + 100, commit: 0, readSeq: 0 });
      a.raft({ type: "app", from: ids[leader]!, to: ids[target]!, term: t, index: 1_000_000, logTerm: t, commit: 1_000_001, entries: [{ term: t, index: 1_000_001, type: EntryType.Normal, data: Buffer.from("forged") }] });
      const counter = new RegExp(`^raftkv_network_peer_forged_messages_dropped_total\\{From="${ids["raftkv-3"]!.toString(16)}"\\}`);
      await waitFor("both counted", async () => (await metric(target, counter)) === 2);
      assert.ok((await term(target)) < t + 100, "the forged term was not adopted");
      a.socket.destroy();
      await allAlive(["raftkv-1", "raftkv-2"]);
    });
  });

  it("a heartbeat with term 2^53-1 and a 4-byte garbage proposal kill no one", async () => {
    await asMember3(async () => {
      const leader = await c.leader(10_000, ["raftkv-1", "raftkv-2"]);
      for (const target of ["raftkv-1", "raftkv-2"]) {
        const a = await attack(c.member(target), peerCreds("raftkv-3"));
        assert.equal(await identify(a, "raftkv-3", target), true);
        a.raft({ type: "heartbeat", from: ids["raftkv-3"]!, to: ids[target]!, term: Number.MAX_SAFE_INTEGER, commit: 0, readSeq: 0 });
        await waitFor(`${target} refuses the term at decode`, () => /term or index out of range","msg":"dropping malformed raft message"/.test(c.log(target)));
        if (target === leader) {
          // A proposal as a follower forwards it, but 4 bytes that no member could apply.
          a.raft({ type: "prop", from: ids["raftkv-3"]!, to: ids[leader]!, term: 0, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: Buffer.from([0xde, 0xad, 0xbe, 0xef]) }] });
          await waitFor("the leader drops the proposal", () => /"msg":"dropping a forwarded proposal that would not apply"/.test(c.log(leader)));
        }
        a.socket.destroy();
      }
      await allAlive(["raftkv-1", "raftkv-2"]);
      for (const m of ["raftkv-1", "raftkv-2"]) assert.ok((await term(m)) < 1_000_000, `${m} adopted the huge term`);
    });
    // Writes still commit everywhere, member 3 included.
    const admin = c.pki.clients["admin"]!;
    const flags = [`--endpoints=https://127.0.0.1:${c.member("raftkv-3").clientPort}`, `--cacert=${admin.ca}`, `--cert=${admin.cert}`, `--key=${admin.key}`];
    const put = await runCli(ETCDCTL_BIN, [...flags, "put", "after-abuse", "ok"], cleanCtlEnv());
    assert.equal(put.stdout, "OK\n", put.stderr);
    await allAlive();
  });

  it("an unterminated snapshot stream is dropped at the cap and does not grow the member without bound", async () => {
    const target = "raftkv-1";
    const sender = "raftkv-2";
    // The genuine member 2 would redial and, as the newest connection of member 2, replace ours.
    await c.kill(sender);
    const pid = c.procs.get(target)!.pid!;
    const rssBefore = rssBytes(pid);
    const a = await attack(c.member(target), peerCreds(sender));
    assert.equal(await identify(a, sender, target), true);
    const piece = Buffer.alloc(1024 * 1024, 0x5a);
    let sent = 0;
    let peak = rssBefore;
    // 400 MiB offered; the cap for --quota-backend-bytes=16 MiB is 96 MiB.
    while (sent < 400 && !a.closed) {
      if (!a.send(FrameType.SnapPart, piece)) await new Promise((r) => a.socket.once("drain", r).once("close", r));
      sent++;
      if (sent % 16 === 0) peak = Math.max(peak, rssBytes(pid));
    }
    await waitFor("the transfer dropped", () => a.closed);
    peak = Math.max(peak, rssBytes(pid));
    assert.ok(sent < 400, `the member accepted all ${sent} MiB`);
    assert.ok(peak - rssBefore < 250 * 1024 * 1024, `RSS grew by ${Math.round((peak - rssBefore) / 2 ** 20)} MiB`);
    assert.equal(await metric(target, /^raftkv_network_peer_rejected_connections_total\{reason="oversize"\}/), 1);
    await allAlive(["raftkv-1", "raftkv-3"]);
    assert.match(c.log(target), /snapshot exceeds the limit of \d+ bytes","msg":"closing peer connection"/);
    c.startMember(sender);
    await allAlive();
  });

  it("etcdctl with the admin certificate still works on the client port; a peer certificate does not", async () => {
    const admin = c.pki.clients["admin"]!;
    const endpoint = `--endpoints=https://127.0.0.1:${c.member("raftkv-2").clientPort}`;
    const ok = await runCli(ETCDCTL_BIN, [endpoint, `--cacert=${admin.ca}`, `--cert=${admin.cert}`, `--key=${admin.key}`, "get", "after-abuse"], cleanCtlEnv());
    assert.equal(ok.stdout, "after-abuse\nok\n", ok.stderr);
    const peer = peerCreds("raftkv-2");
    const refused = await runCli(
      ETCDCTL_BIN,
      [endpoint, `--cacert=${admin.ca}`, `--cert=${peer.cert}`, `--key=${peer.key}`, "--dial-timeout=1s", "--command-timeout=2s", "get", "x"],
      cleanCtlEnv(),
    );
    assert.notEqual(refused.code, 0);
  });

  it("/status and /metrics on the metrics port carry no cluster token", async () => {
    for (const m of c.members) {
      for (const path of ["/status", "/metrics", "/health"]) {
        const body = await get(`http://127.0.0.1:${m.metricsPort}${path}`);
        assert.ok(body.length > 0);
        assert.ok(!body.includes(c.token), `${m.name}${path} reveals the cluster token`);
      }
    }
  });
});
