/**
 * Connections that never finish their handshake, on the client port and the peer port (issue 15,
 * "handshake-less connections held"): whatever the flood, a port holds at most its pending caps
 * (the oldest closed first), every pending connection is closed at a deadline counted from
 * accept even if it keeps trickling bytes, and genuine clients and members still get through
 * while the flood is open. The handshake deadline is set long here so only the caps can close
 * flood connections within the test.
 */
import * as grpc from "@grpc/grpc-js";
import { strict as assert } from "node:assert";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listenForClients, type ClientListener } from "../../node-runtime/server/api/listener";
import { ReloadingTls } from "../../node-runtime/server/tls/reloading";
import { makeCa, makeLeaf, writeMemberFiles, type TestCa, type TestLeaf } from "../server/tls/certs";
import { captureLog } from "../server/tls/log-capture";
import { Cluster, numbered, waitFor, type TestMember } from "../server/transport/harness";

interface Flood {
  sockets: net.Socket[];
  closed: Set<net.Socket>;
  open(): number;
  destroy(): void;
}

/** `n` plain TCP connections to `port` that send nothing, once all are connected (or closed). */
async function flood(port: number, n: number): Promise<Flood> {
  const sockets: net.Socket[] = [];
  const closed = new Set<net.Socket>();
  await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.connect(port, "127.0.0.1");
      s.on("error", () => undefined);
      s.once("close", () => closed.add(s));
      sockets.push(s);
      return new Promise<void>((resolve) => {
        s.once("connect", () => resolve());
        s.once("close", () => resolve());
      });
    }),
  );
  return {
    sockets,
    closed,
    open: () => sockets.length - closed.size,
    destroy: () => sockets.forEach((s) => s.destroy()),
  };
}

/** A TLS ClientHello's first bytes, one every `everyMs`: a handshake that never completes but is never idle. */
function trickle(port: number, everyMs: number): { socket: net.Socket; closed: () => boolean; stop(): void } {
  const socket = net.connect(port, "127.0.0.1");
  let closed = false;
  socket.on("error", () => undefined);
  socket.once("close", () => (closed = true));
  const bytes = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...Buffer.alloc(500, 7)]);
  let i = 0;
  const timer = setInterval(() => {
    if (!closed && i < bytes.length) socket.write(bytes.subarray(i, ++i));
  }, everyMs);
  return {
    socket,
    closed: () => closed,
    stop: () => {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

describe("abuse: connections that never finish their handshake", function () {
  this.timeout(60_000);
  let ca: TestCa;

  before(async () => {
    ca = await makeCa("flood-ca");
  });

  describe("client port", () => {
    let listener: ClientListener | undefined;
    let material: ReloadingTls | undefined;
    let gateway: http.Server | undefined;
    let grpcServer: grpc.Server | undefined;
    let client: TestLeaf;
    const dir = mkdtempSync(join(tmpdir(), "raftkv-flood-"));

    const start = async (opts: { handshakeTimeoutMs: number; maxPendingHandshakes?: number; maxPendingPerAddress?: number }) => {
      const server = await makeLeaf(ca, "server");
      client = await makeLeaf(ca, "client");
      const files = writeMemberFiles(join(dir, "client-port"), server, [ca]);
      material = new ReloadingTls({ ...files, flagPrefix: "" }, { logger: captureLog().logger, watch: false });
      gateway = http.createServer((_req, res) => res.end("served"));
      grpcServer = new grpc.Server();
      listener = await listenForClients({
        url: { url: "https://127.0.0.1:0", scheme: "https", host: "127.0.0.1", port: 0 },
        grpc: grpcServer,
        gateway,
        tls: { material, clientCertAuth: true },
        log: captureLog().logger,
        ...opts,
      });
      return listener.address.port;
    };
    const get = (port: number) =>
      new Promise<string>((resolve, reject) => {
        const req = https.get({ host: "127.0.0.1", port, path: "/", ca: ca.certPem, cert: client.certPem, key: client.keyPem, agent: false }, (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve(body));
        });
        req.on("error", reject);
      });

    afterEach(() => {
      listener?.destroy();
      material?.close();
      grpcServer?.forceShutdown();
      gateway?.close();
      listener = undefined;
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("holds at most its pending caps under a flood of 600 silent connections, and still serves a genuine client", async () => {
      const port = await start({ handshakeTimeoutMs: 120_000, maxPendingHandshakes: 200, maxPendingPerAddress: 100 });
      const f = await flood(port, 600);
      try {
        // One remote address: its oldest are closed beyond 100 pending.
        await waitFor("the flood cut to the per-address cap", () => f.open() <= 100, 30_000);
        // The survivors are the newest ones.
        assert.ok(f.sockets.slice(-50).every((s) => !f.closed.has(s)));
        assert.equal(await get(port), "served");
      } finally {
        f.destroy();
      }
    });

    it("closes a connection trickling its ClientHello at the deadline counted from accept", async () => {
      const port = await start({ handshakeTimeoutMs: 1500 });
      const t = trickle(port, 100);
      try {
        await waitFor("the trickling connection closed", t.closed, 20_000);
      } finally {
        t.stop();
      }
    });
  });

  describe("peer port", () => {
    let cluster: Cluster;
    beforeEach(() => {
      cluster = new Cluster();
    });
    afterEach(() => cluster.close());

    it("holds at most its pending caps under a flood of 600 silent connections, and a member still joins and delivers", async () => {
      const a: TestMember = await cluster.member(1, { ca, extra: { handshakeTimeoutMs: 120_000, idleTimeoutMs: 120_000, maxConnections: 1000 } });
      const f = await flood(a.transport.port, 600);
      try {
        await waitFor("the flood cut to the per-address cap", () => f.open() <= 16, 30_000);
        const b = await cluster.member(2, { ca });
        cluster.mesh(a, b);
        b.transport.send(1, numbered(1));
        await waitFor("b delivers to a", () => a.received.length === 1, 30_000);
      } finally {
        f.destroy();
      }
    });

    it("closes a connection trickling its ClientHello at the deadline counted from accept", async () => {
      const a = await cluster.member(1, { ca, extra: { handshakeTimeoutMs: 1500 } });
      const t = trickle(a.transport.port, 100);
      try {
        await waitFor("the trickling connection closed", t.closed, 20_000);
      } finally {
        t.stop();
      }
    });
  });
});
