/**
 * Connections on the client port (issue 15, "Medium/low"): a connection that never completes
 * its TLS handshake is closed, CBC-SHA1 suites and renegotiation are refused, and a flood of
 * connections against a member with a low open-file limit neither kills it (EMFILE) nor stops
 * it from writing its WAL and snapshots; it serves again once the flood is gone.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { RawPool } from "../server/cluster/clients";
import { BUNDLE, sleep, TestCluster } from "../server/harness/cluster";
import type { ClientFiles } from "../server/gateway/support";

function tlsConnect(port: number, files: ClientFiles, extra: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      ca: fs.readFileSync(files.ca),
      cert: fs.readFileSync(files.cert!),
      key: fs.readFileSync(files.key!),
      ALPNProtocols: ["h2"],
      ...extra,
    });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Resolves once the server closes the socket; rejects if it is still open after `ms`. */
function closedWithin(s: net.Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve();
    const t = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    s.on("error", () => undefined);
    s.once("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe("abuse: connections on the client port", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool;
  let admin: ClientFiles;
  const port = (name = "raftkv-1") => c!.member(name).clientPort;

  before(async function () {
    this.timeout(60_000);
    // A short handshake deadline (production: 10 s) so the silent-connection test does not wait it out.
    c = await TestCluster.start({ size: 3, snapshotCount: 50, extraFlags: ["--client-handshake-timeout=4s"] });
    pool = new RawPool(c);
    admin = c.pki.clients["admin"]!;
  });

  after(async () => {
    pool?.closeAll();
    await c?.destroy();
  });

  it("a connection that never starts its TLS handshake is closed", async () => {
    const s = net.connect(port(), "127.0.0.1");
    await new Promise((r) => s.once("connect", r));
    await closedWithin(s, 30_000);
  });

  it("TLS 1.2 CBC-SHA1 suites are refused, AEAD suites accepted", async () => {
    await assert.rejects(tlsConnect(port(), admin, { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA" }), /handshake failure|no shared cipher|alert/i);
    const ok = await tlsConnect(port(), admin, { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256" });
    assert.match(ok.getCipher().name, /GCM/);
    ok.destroy();
  });

  it("TLS renegotiation is refused", async () => {
    const s = await tlsConnect(port(), admin, { maxVersion: "TLSv1.2" });
    const outcome = await new Promise<string>((resolve) => {
      s.on("error", (e) => resolve(`error: ${e.message}`));
      s.once("close", () => resolve("closed"));
      const started = s.renegotiate({}, (err) => resolve(err ? `error: ${err.message}` : "renegotiated"));
      if (!started) resolve("not started");
    });
    s.destroy();
    assert.notEqual(outcome, "renegotiated");
  });

  it("a connection flood against a member with 600 open files neither kills it nor stops its WAL and snapshots", async () => {
    const name = "raftkv-3";
    await c!.kill(name);
    const logFile = path.join(c!.dir, `${name}.log`);
    const fd = fs.openSync(logFile, "a");
    const child = spawn("prlimit", ["--nofile=600:600", process.execPath, BUNDLE, ...c!.flags(c!.member(name)), "--client-handshake-timeout=10s"], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    c!.procs.set(name, child);
    await c!.waitHealthy();

    const flood: net.Socket[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const s = net.connect(port(name), "127.0.0.1");
        s.on("error", () => undefined);
        flood.push(s);
      }
      await sleep(1000);
      // Writes through the others replicate to it: WAL appends and (every 50) snapshots.
      const writer = pool.of("raftkv-1");
      for (let i = 0; i < 200; i++) await writer.put(`flood/${i}`, "x".repeat(100));
      assert.equal(c!.running(name), true, `member died:\n${c!.log(name).slice(-2000)}`);
    } finally {
      for (const s of flood) s.destroy();
    }
    await c!.waitHealthy([name], 30_000);
    pool.reset(name);
    const r = await pool.of(name).get("flood/199");
    assert.equal(r.kvs[0]?.value.toString(), "x".repeat(100));
    assert.match(c!.log(name), /client connection limit reached/);
  });
});
