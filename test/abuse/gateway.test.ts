/**
 * The HTTP/JSON gateway against hostile bodies and slow clients (issue 15, "High" 4 and the
 * gateway items): deep nesting answers etcd's 400, an oversized value answers etcd's 429
 * (not a connection reset), megabytes of leading whitespace cost linear time off the event
 * loop's critical path, and a client that never finishes its headers or body is cut off.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { RawPool } from "../server/cluster/clients";
import { TestCluster } from "../server/harness/cluster";
import { curl, json, type ClientFiles } from "../server/gateway/support";
import { StallProbe } from "./support";

/** Connects with ALPN http/1.1 and resolves with how the server ended the connection. */
function silentHttpClient(port: number, files: ClientFiles, first: string): Promise<{ closedAfterMs: number; reply: string }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let reply = "";
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      ca: readFileSync(files.ca),
      cert: readFileSync(files.cert!),
      key: readFileSync(files.key!),
      ALPNProtocols: ["http/1.1"],
    });
    s.setEncoding("utf8");
    s.on("data", (d: string) => (reply += d));
    s.once("secureConnect", () => s.write(first));
    s.on("error", () => undefined);
    s.once("close", () => resolve({ closedAfterMs: Date.now() - t0, reply }));
    setTimeout(() => {
      s.destroy();
      reject(new Error(`connection still open after 60 s (reply so far: ${JSON.stringify(reply)})`));
    }, 60_000);
  });
}

describe("abuse: HTTP gateway bodies and slow clients", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let pool: RawPool;
  let admin: ClientFiles;
  let tmp: string;
  const base = (name = "raftkv-1") => `https://127.0.0.1:${c!.member(name).clientPort}`;

  before(async function () {
    this.timeout(60_000);
    tmp = mkdtempSync(path.join(os.tmpdir(), "raftkv-abuse-gw-"));
    // Short gateway deadlines (production: 10 s / 30 s) so the slow-client tests do not wait them out.
    c = await TestCluster.start({ size: 3, extraFlags: ["--gateway-header-timeout=4s", "--gateway-body-timeout=5s"] });
    pool = new RawPool(c);
    admin = c.pki.clients["admin"]!;
  });

  after(async () => {
    pool?.closeAll();
    await c?.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("20,000-deep JSON answers etcd's 400, not 500", async () => {
    for (const body of ['{"key":"Zm9v","x":' + "[".repeat(20_000) + "]".repeat(20_000) + "}", "[".repeat(20_000) + "]".repeat(20_000)]) {
      const file = path.join(tmp, "deep.json");
      writeFileSync(file, body);
      const r = await curl(base(), "/v3/kv/range", undefined, admin, ["--data-binary", `@${file}`]);
      assert.equal(r.status, 400, r.body + r.stderr);
      // etcd 3.4.23's answer, byte for byte.
      assert.deepEqual(json(r), { error: "invalid character '[' exceeded max depth", message: "invalid character '[' exceeded max depth", code: 3 });
    }
  });

  it("a 20 MB value answers etcd's 429 'received message larger than max' instead of a reset", async () => {
    const file = path.join(tmp, "big.json");
    writeFileSync(file, '{"key":"' + "A".repeat(20 * 1024 * 1024) + '"}');
    const r = await curl(base(), "/v3/kv/put", undefined, admin, ["--data-binary", `@${file}`]);
    assert.equal(r.exit, 0, `curl failed (${String(r.exit)}): ${r.stderr}`);
    assert.equal(r.status, 429, r.body);
    const body = json(r) as { error: string; code: number };
    assert.equal(body.code, 8);
    assert.match(body.error, /^grpc: received message larger than max \(\d+ vs\. \d+\)$/);
  });

  it("60 MB of leading whitespace is read in linear time while the cluster keeps serving", async () => {
    const file = path.join(tmp, "ws.json");
    writeFileSync(file, " ".repeat(60 * 1024 * 1024) + `{"key":"${Buffer.from("ws-key").toString("base64")}"}`);
    const leader = await c!.leader();
    const m = pool.of(leader);
    const probe = new StallProbe(() => m.put("probe", "x", 5_000));
    // curl's own limit (see support.ts) is 10 s; the old parser took minutes for this body.
    const r = await curl(base(leader), "/v3/kv/range", undefined, admin, ["--data-binary", `@${file}`]);
    await probe.stop();
    assert.equal(r.status, 200, `${r.body} ${r.stderr}`);
    assert.ok("header" in (json(r) as object));
    assert.deepEqual(probe.errors, []);
  });

  it("a client that never finishes its headers is disconnected", async () => {
    const r = await silentHttpClient(c!.member("raftkv-1").clientPort, admin, "POST /v3/kv/range HTTP/1.1\r\nHost: x\r\n");
    assert.match(r.reply, /^HTTP\/1\.1 408|^$/);
  });

  it("a client that never finishes its body is answered 408 and disconnected", async () => {
    const r = await silentHttpClient(
      c!.member("raftkv-1").clientPort,
      admin,
      "POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":",
    );
    assert.match(r.reply, /^HTTP\/1\.1 408 /);
    assert.match(r.reply, /request body not received within 5 s/);
  });
});
