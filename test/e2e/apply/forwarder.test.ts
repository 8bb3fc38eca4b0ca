import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { reservePorts, type PortReservation } from "../../helpers/free-port";
import type { ForwarderConfig } from "./forwarder";
import { tsxNodeArgv } from "./tsxNode";

/** A target on its own loopback address: a TCP service naming itself, and a /health page. */
class FakeTarget {
  healthy = true;
  readonly sockets = new Set<net.Socket>();
  private readonly tcp: net.Server;
  private readonly web: http.Server;
  constructor(readonly ip: string) {
    this.tcp = net.createServer((s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s)).on("error", () => undefined);
      s.write(ip);
    });
    this.web = http.createServer((_req, res) => {
      res.statusCode = this.healthy ? 200 : 503;
      res.end();
    });
  }
  async listen(port: number, healthPort: number): Promise<void> {
    await new Promise<void>((r) => this.tcp.listen(port, this.ip, r));
    await new Promise<void>((r) => this.web.listen(healthPort, this.ip, r));
  }
  close(): void {
    for (const s of this.sockets) s.destroy();
    this.tcp.close();
    this.web.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `cond` until it holds. A dial that fails meanwhile (the forwarder closing a connection
 * while a slow health check flips a target) counts as "not yet", and is reported on timeout.
 */
async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last === undefined ? "" : ` (last error: ${String(last)})`}`);
    await sleep(100);
  }
}

/** Connects through the forwarder; resolves with the target's name and the open socket. */
function dial(port: number): Promise<{ name: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("data", (d) => resolve({ name: d.toString(), socket: s }));
    s.once("error", reject);
    s.once("close", () => reject(new Error("closed before the target answered")));
  });
}

async function namesSeen(port: number, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const { name, socket } = await dial(port);
    seen.add(name);
    socket.destroy();
  }
  return seen;
}

describe("e2e load balancer forwarder (like an AWS NLB with default attributes)", function () {
  this.timeout(60_000);
  // Reserved against other test processes (parallel mocha workers), below the ephemeral range.
  let ports: PortReservation | undefined;
  let [listenPort, targetPort, healthPort] = [0, 0, 0];
  let dir: string;
  let proc: ChildProcess | undefined;
  const a = new FakeTarget("127.0.0.2");
  const b = new FakeTarget("127.0.0.3");

  const configure = (targets: FakeTarget[]) => {
    const cfg: ForwarderConfig = {
      listenHost: "127.0.0.1",
      listeners: [
        {
          port: listenPort,
          targets: targets.map((t) => ({ ip: t.ip, port: targetPort })),
          healthCheck: { port: healthPort, path: "/health", intervalSec: 0.2, timeoutSec: 1, healthyThreshold: 2, unhealthyThreshold: 2, matcher: "200" },
          deregistrationDelaySec: 1,
        },
      ],
    };
    writeFileSync(path.join(dir, "cfg.json"), JSON.stringify(cfg));
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-fwd-"));
    ports = await reservePorts(3);
    [listenPort, targetPort, healthPort] = [ports.base, ports.base + 1, ports.base + 2];
    await a.listen(targetPort, healthPort);
    await b.listen(targetPort, healthPort);
    configure([a, b]);
    const [cmd, ...args] = tsxNodeArgv(path.join(__dirname, "forwarder.ts"), path.join(dir, "cfg.json"), String(process.pid));
    proc = spawn(cmd!, args, { stdio: ["ignore", "ignore", "inherit"] });
  });

  after(() => {
    proc?.kill("SIGKILL");
    a.close();
    b.close();
    ports?.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends new connections to every healthy target", async () => {
    await waitFor("both targets in rotation", async () => {
      try {
        return (await namesSeen(listenPort, 4)).size === 2;
      } catch {
        return false;
      }
    });
  });

  it("takes an unhealthy target out and closes the connections it had; fails open when none is healthy", async () => {
    let held: net.Socket | undefined;
    await waitFor("a connection held to b", async () => {
      const c = await dial(listenPort);
      if (c.name === b.ip) held = c.socket;
      else c.socket.destroy();
      return held !== undefined;
    });
    const closed = new Promise<void>((r) => held!.once("close", () => r()));
    b.healthy = false;
    await closed;
    await waitFor("only a in rotation", async () => {
      const seen = await namesSeen(listenPort, 4);
      return seen.size === 1 && seen.has(a.ip);
    });
    a.healthy = false;
    await waitFor("both targets again (fail open)", async () => (await namesSeen(listenPort, 6)).size === 2);
    a.healthy = true;
    b.healthy = true;
  });

  it("stops sending to a deregistered target and closes its connections after the deregistration delay", async () => {
    await waitFor("both targets in rotation", async () => (await namesSeen(listenPort, 4)).size === 2);
    let held: net.Socket | undefined;
    await waitFor("a connection held to a", async () => {
      const c = await dial(listenPort);
      if (c.name === a.ip) held = c.socket;
      else c.socket.destroy();
      return held !== undefined;
    });
    const closed = new Promise<void>((r) => held!.once("close", () => r()));
    configure([b]);
    await waitFor("only b in rotation", async () => {
      const seen = await namesSeen(listenPort, 4);
      return seen.size === 1 && seen.has(b.ip);
    });
    await closed;
  });
});
