/**
 * One client port, two protocols: gRPC clients (etcdctl) and HTTP/1.1 clients (curl, node)
 * reach the same member on the same port, over TLS (chosen by ALPN, or by the first bytes
 * when a client sends no ALPN) and over plain HTTP (by the first bytes); clients without a
 * valid certificate are refused on both; a rotated server certificate and CA bundle take
 * effect without a restart.
 */
import { strict as assert } from "node:assert";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";
import * as tls from "node:tls";
import { clientCertProfile, memberCertProfiles } from "../../../components/topology";
import { createCa, issueCert } from "../../../node-runtime/pki";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { freePort } from "../../helpers/free-port";
import { cleanCtlEnv, runCli } from "../../helpers/run-cli";
import { sleep, TestCluster } from "../harness/cluster";
import { curl, json, LineStream, type ClientFiles } from "./support";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function etcdctl(endpoint: string, files: ClientFiles | undefined, args: string[], timeouts = ["--dial-timeout=2s", "--command-timeout=3s"]) {
  const tlsFlags = files ? [`--cacert=${files.ca}`, ...(files.cert ? [`--cert=${files.cert}`, `--key=${files.key!}`] : [])] : [];
  return runCli(ETCDCTL_BIN, [`--endpoints=${endpoint}`, ...tlsFlags, ...timeouts, ...args], cleanCtlEnv(), {
    timeoutMs: 15_000,
  });
}

/** The protocol the member's TLS server settles on for the protocols a client offers. */
function negotiated(port: number, files: ClientFiles, offer: string[] | undefined): Promise<string | false | Error> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      ca: readFileSync(files.ca),
      cert: readFileSync(files.cert!),
      key: readFileSync(files.key!),
      ...(offer ? { ALPNProtocols: offer } : {}),
    });
    s.once("secureConnect", () => {
      resolve(s.alpnProtocol ?? false);
      s.destroy();
    });
    s.once("error", (e) => resolve(e));
  });
}

function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.new`, text);
  renameSync(`${file}.new`, file);
}

describe("client port: gRPC and the HTTP gateway on one listener", function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;
  let admin: ClientFiles;
  const url = (name: string) => `https://127.0.0.1:${c!.member(name).clientPort}`;

  before(async function () {
    this.timeout(60_000);
    c = await TestCluster.start({ size: 3 });
    admin = c.pki.clients["admin"]!;
  });

  after(async () => {
    await c?.destroy();
  });

  it("serves etcdctl (gRPC) and curl (HTTP/JSON) on the same port, each seeing the other's writes", async () => {
    const put = await curl(url("raftkv-1"), "/v3/kv/put", JSON.stringify({ key: b64("shared"), value: b64("from-curl") }), admin);
    assert.equal(put.status, 200, put.body + put.stderr);
    const get = await etcdctl(url("raftkv-1"), admin, ["get", "shared", "--print-value-only"]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "from-curl\n");
    const put2 = await etcdctl(url("raftkv-2"), admin, ["put", "shared", "from-etcdctl"]);
    assert.equal(put2.code, 0, put2.stderr);
    const range = json(await curl(url("raftkv-2"), "/v3/kv/range", JSON.stringify({ key: b64("shared") }), admin)) as { kvs: Array<{ value: string }> };
    assert.equal(Buffer.from(range.kvs[0]!.value, "base64").toString(), "from-etcdctl");
    const health = await etcdctl(c!.members.map((m) => url(m.name)).join(","), admin, ["endpoint", "health"]);
    assert.equal(health.code, 0, health.stderr);
    assert.equal((health.stderr.match(/is healthy/g) ?? []).length, 3, health.stderr);
  });

  it("chooses HTTP/1.1 when a client offers it, h2 when it offers only h2, and refuses other protocols", async () => {
    const port = c!.member("raftkv-1").clientPort;
    assert.equal(await negotiated(port, admin, ["h2", "http/1.1"]), "http/1.1");
    assert.equal(await negotiated(port, admin, ["h2"]), "h2");
    assert.equal(await negotiated(port, admin, undefined), false);
    const refused = await negotiated(port, admin, ["spdy/3.1"]);
    assert.ok(refused instanceof Error, `expected a handshake failure, got ${String(refused)}`);
  });

  it("tells HTTP/1.1 from HTTP/2 by the first bytes when a TLS client sends no ALPN", async () => {
    // gRPC over a TLS connection that negotiated nothing: Maintenance/Status with an empty message.
    const port = c!.member("raftkv-3").clientPort;
    const socket = tls.connect({ host: "127.0.0.1", port, ca: readFileSync(admin.ca), cert: readFileSync(admin.cert!), key: readFileSync(admin.key!) });
    const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
    try {
      const grpcStatus = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/etcdserverpb.Maintenance/Status", "content-type": "application/grpc", te: "trailers" });
        req.on("trailers", (t) => resolve(String(t["grpc-status"])));
        req.on("error", reject);
        req.resume();
        req.end(Buffer.alloc(5));
      });
      assert.equal(socket.alpnProtocol, false);
      assert.equal(grpcStatus, "0");
    } finally {
      session.destroy();
    }
    // node:https sends no ALPN; the watch stream proves the whole HTTP/1.1 path works.
    const w = new LineStream(`${url("raftkv-3")}/v3/watch`, JSON.stringify({ create_request: { key: b64("noalpn") } }), admin);
    try {
      const created = (await w.next()) as { result: { created?: boolean } };
      assert.equal(created.result.created, true);
      await curl(url("raftkv-1"), "/v3/kv/put", JSON.stringify({ key: b64("noalpn"), value: b64("v") }), admin);
      const ev = (await w.next()) as { result: { events: Array<{ kv: { value: string } }> } };
      assert.equal(ev.result.events[0]!.kv.value, b64("v"));
    } finally {
      w.close();
    }
  });

  it("refuses clients without a certificate, or with one from another CA, on both protocols", async () => {
    const noCert = await curl(url("raftkv-1"), "/v3/kv/range", JSON.stringify({ key: b64("shared") }), { ca: admin.ca });
    assert.notEqual(noCert.exit, 0, `curl without a certificate got an answer: ${noCert.status} ${noCert.body}`);
    assert.ok(!(noCert.status >= 100), `HTTP status ${noCert.status} without a certificate`);
    const fast = ["--dial-timeout=1s", "--command-timeout=1s"];
    const ctl = await etcdctl(url("raftkv-1"), { ca: admin.ca }, ["get", "shared"], fast);
    assert.notEqual(ctl.code, 0);
    assert.equal(ctl.stdout, "");

    const otherCa = await createCa("someone else's CA", 1);
    const stranger = await issueCert(otherCa, clientCertProfile("stranger"), 1);
    const dir = path.join(c!.dir, "stranger");
    mkdirSync(dir, { recursive: true });
    const files = { ca: admin.ca, cert: path.join(dir, "c.crt"), key: path.join(dir, "c.key") };
    writeFileSync(files.cert, stranger.certPem);
    writeFileSync(files.key, stranger.keyPem);
    const foreign = await curl(url("raftkv-1"), "/v3/kv/range", JSON.stringify({ key: b64("shared") }), files);
    assert.notEqual(foreign.exit, 0, `a foreign certificate got an answer: ${foreign.status} ${foreign.body}`);
    const foreignCtl = await etcdctl(url("raftkv-1"), files, ["get", "shared"], fast);
    assert.notEqual(foreignCtl.code, 0);
  });

  it("serves both protocols on a plain http:// client URL, told apart by the HTTP/2 preface", async () => {
    const m = c!.member("raftkv-3");
    const plainPort = await freePort();
    const plain = `http://127.0.0.1:${plainPort}`;
    await c!.kill("raftkv-3");
    const flags = c!.flags(m).map((f) => (f.startsWith("--listen-client-urls=") ? `${f},${plain}` : f));
    c!.startMember("raftkv-3", flags);
    await c!.waitHealthy(["raftkv-3"]);
    const put = await curl(plain, "/v3/kv/put", JSON.stringify({ key: b64("plain"), value: b64("text") }));
    assert.equal(put.status, 200, put.body + put.stderr);
    const get = await etcdctl(plain, undefined, ["get", "plain", "--print-value-only"]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "text\n");
    // The TLS URL of the same member still requires its certificate.
    const tlsGet = await curl(url("raftkv-3"), "/v3/kv/range", JSON.stringify({ key: b64("plain") }), admin);
    assert.equal(tlsGet.status, 200);
  });

  it("takes a rotated server certificate and CA bundle without a restart, on both protocols", async () => {
    const m = c!.member("raftkv-1");
    const paths = c!.pki.members["raftkv-1"]!;
    const ca2 = await createCa("raftkv CA 2", 30);
    const server2 = await issueCert(ca2, memberCertProfiles(m)[0]!, 30);
    const admin2 = await issueCert(ca2, clientCertProfile("admin2"), 30);
    const dir = path.join(c!.dir, "rotation");
    mkdirSync(dir, { recursive: true });
    const ca2File = path.join(dir, "ca2.crt");
    const files2: ClientFiles = { ca: ca2File, cert: path.join(dir, "admin2.crt"), key: path.join(dir, "admin2.key") };
    writeFileSync(ca2File, ca2.certPem);
    writeFileSync(files2.cert!, admin2.certPem);
    writeFileSync(files2.key!, admin2.keyPem);

    // Trust both CAs first, then switch the member's own certificate to the new CA.
    writeAtomically(paths.ca, c!.pki.ca.certPem + ca2.certPem);
    writeAtomically(paths.serverKey, server2.keyPem);
    writeAtomically(paths.serverCert, server2.certPem);
    c!.procs.get("raftkv-1")!.kill("SIGHUP");

    const body = JSON.stringify({ key: b64("shared") });
    let r = await curl(url("raftkv-1"), "/v3/kv/range", body, files2);
    for (let i = 0; i < 50 && r.status !== 200; i++) {
      await sleep(100);
      r = await curl(url("raftkv-1"), "/v3/kv/range", body, files2);
    }
    assert.equal(r.status, 200, `new certificate not in use: ${r.stderr}`);
    const ctl = await etcdctl(url("raftkv-1"), files2, ["get", "shared", "--print-value-only"]);
    assert.equal(ctl.code, 0, ctl.stderr);
    assert.equal(ctl.stdout, "from-etcdctl\n");
    // Clients of the old CA still get in (it stays in the bundle) once they trust the new server certificate.
    const old = await curl(url("raftkv-1"), "/v3/kv/range", body, { ca: ca2File, cert: admin.cert!, key: admin.key! });
    assert.equal(old.status, 200, old.stderr);
    // A client that trusts only the old CA no longer accepts the member's certificate.
    const stale = await curl(url("raftkv-1"), "/v3/kv/range", body, admin);
    assert.notEqual(stale.exit, 0);
  });

  it("ends open gateway streams when the member stops on SIGTERM, and exits 0", async () => {
    const w = new LineStream(`${url("raftkv-2")}/v3/watch`, JSON.stringify({ create_request: { key: b64("bye") } }), admin);
    try {
      assert.equal(((await w.next()) as { result: { created?: boolean } }).result.created, true);
      await c!.kill("raftkv-2", "SIGTERM");
      assert.equal(c!.procs.get("raftkv-2")!.exitCode, 0);
      await assert.rejects(w.next(), /stream ended|socket hang up|ECONNRESET|aborted/);
    } finally {
      w.close();
    }
  });
});
