/**
 * Auth on a real three-member cluster: a tenant identified by its client certificate (CN =
 * tenant-a, a user whose role covers /tenant-a/) reads and writes its prefix only and may not
 * raise or clear alarms, change membership, take snapshots or compact (one test per rule);
 * and the auth store is replicated state: a member that was down catches up on it from a
 * snapshot the leader sends, and the whole cluster keeps it across restarts.
 */
import * as grpc from "@grpc/grpc-js";
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadEtcdGrpc } from "../../../node-runtime/server/proto";
import { TestCluster } from "../harness/cluster";
import { writeClientCert } from "../../helpers/client-cert";
import { ETCDCTL_BIN } from "../../helpers/etcd-reference";
import { cleanCtlEnv, runCli } from "../../helpers/run-cli";
import { eventually } from "./clients";

process.env["NODE_NO_WARNINGS"] = "1";

type Service = "KV" | "Auth" | "Maintenance" | "Cluster";
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** One member's API with one identity: a client certificate, plus a token once logged in. */
class Client {
  private readonly clients: Record<Service, grpc.Client>;
  token: string | undefined;

  constructor(address: string, cert: { ca: string; cert: string; key: string }) {
    const { clients } = loadEtcdGrpc();
    const creds = grpc.credentials.createSsl(fs.readFileSync(cert.ca), fs.readFileSync(cert.key), fs.readFileSync(cert.cert));
    this.clients = { KV: new clients.KV(address, creds), Auth: new clients.Auth(address, creds), Maintenance: new clients.Maintenance(address, creds), Cluster: new clients.Cluster(address, creds) };
  }

  call<R = Record<string, unknown>>(svc: Service, method: string, req: object): Promise<R> {
    const c = this.clients[svc] as unknown as Record<string, Unary>;
    const md = new grpc.Metadata();
    if (this.token !== undefined) md.set("token", this.token);
    return new Promise((resolve, reject) =>
      c[method]!.call(c, req, md, { deadline: Date.now() + 15_000 }, (err, res) => (err ? reject(err) : resolve(res as R))),
    );
  }

  async login(name: string, password: string): Promise<void> {
    this.token = (await this.call<{ token: string }>("Auth", "Authenticate", { name, password })).token;
  }

  put(key: string, value = "v"): Promise<unknown> {
    return this.call("KV", "Put", { key: Buffer.from(key), value: Buffer.from(value) });
  }

  async get(key: string, serializable = false): Promise<string | undefined> {
    const r = await this.call<{ kvs: Array<{ value: Buffer }> }>("KV", "Range", { key: Buffer.from(key), serializable });
    return r.kvs[0]?.value.toString();
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    return `${grpc.status[err.code]}: ${err.details}`;
  }
  return "no error";
}

describe("auth on a three-member cluster", function () {
  this.timeout(60_000);
  let c: TestCluster;
  const opened: Client[] = [];
  let tenantCert: { ca: string; cert: string; key: string };
  const admin = () => c.pki.clients["admin"]!;
  const client = (member: string, cert = admin()): Client => {
    const x = new Client(`127.0.0.1:${c.member(member).clientPort}`, cert);
    opened.push(x);
    return x;
  };

  before(async function () {
    this.timeout(90_000);
    c = await TestCluster.start({ size: 3, snapshotCount: 100, extraFlags: ["--bcrypt-cost=4"] });
    tenantCert = await writeClientCert(path.join(c.dir, "tenant"), c.pki.ca, c.pki.caCertPath, "tenant-a");
    const a = client("raftkv-1");
    for (const [method, req] of [
      ["UserAdd", { name: "root", password: "rootpw" }],
      ["RoleAdd", { name: "root" }],
      ["UserGrantRole", { user: "root", role: "root" }],
      ["UserAdd", { name: "tenant-a", password: "tpw" }],
      ["RoleAdd", { name: "tenant-a" }],
      ["RoleGrantPermission", { name: "tenant-a", perm: { permType: "READWRITE", key: Buffer.from("/tenant-a/"), range_end: Buffer.from("/tenant-a0") } }],
      ["UserGrantRole", { user: "tenant-a", role: "tenant-a" }],
      ["AuthEnable", {}],
    ] as const) {
      await a.call("Auth", method, req);
    }
  });
  after(async () => {
    for (const x of opened) x.close();
    await c?.destroy();
  });

  describe("a tenant certificate limited to its prefix", () => {
    it("reads and writes its prefix, and nothing else", async () => {
      const t = client("raftkv-2", tenantCert);
      await t.put("/tenant-a/k", "mine");
      assert.equal(await t.get("/tenant-a/k"), "mine");
      assert.equal(await refusal(t.put("/tenant-b/k")), "PERMISSION_DENIED: etcdserver: permission denied");
      assert.equal(await refusal(t.get("/tenant-b/k")), "PERMISSION_DENIED: etcdserver: permission denied");
      assert.equal(await refusal(t.call("KV", "Range", { key: Buffer.from("/"), range_end: Buffer.from([0]) })), "PERMISSION_DENIED: etcdserver: permission denied");
    });

    it("cannot raise a NOSPACE alarm (which would stop every tenant's writes)", async () => {
      const t = client("raftkv-1", tenantCert);
      assert.equal(await refusal(t.call("Maintenance", "Alarm", { action: "ACTIVATE", memberID: "0", alarm: "NOSPACE" })), "PERMISSION_DENIED: etcdserver: permission denied");
      const root = client("raftkv-1");
      await root.login("root", "rootpw");
      assert.deepEqual((await root.call<{ alarms: unknown[] }>("Maintenance", "Alarm", { action: "GET", memberID: "0", alarm: "NONE" })).alarms, []);
    });

    it("cannot clear alarms", async () => {
      const root = client("raftkv-1");
      await root.login("root", "rootpw");
      await root.call("Maintenance", "Alarm", { action: "ACTIVATE", memberID: "1", alarm: "NOSPACE" });
      const env = cleanCtlEnv({ ...c.ctlEnv(["raftkv-1"]), ETCDCTL_CERT: tenantCert.cert, ETCDCTL_KEY: tenantCert.key });
      const r = await runCli(ETCDCTL_BIN, ["alarm", "disarm"], env, { timeoutMs: 20_000 });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Error: etcdserver: permission denied/);
      const alarms = await root.call<{ alarms: unknown[] }>("Maintenance", "Alarm", { action: "GET", memberID: "0", alarm: "NONE" });
      assert.equal(alarms.alarms.length, 1);
      await root.call("Maintenance", "Alarm", { action: "DEACTIVATE", memberID: "1", alarm: "NOSPACE" });
    });

    it("cannot change membership", async () => {
      const t = client("raftkv-1", tenantCert);
      assert.equal(await refusal(t.call("Cluster", "MemberAdd", { peerURLs: ["https://127.0.0.1:1"] })), "PERMISSION_DENIED: etcdserver: permission denied");
      const members = await t.call<{ members: Array<{ ID: string }> }>("Cluster", "MemberList", {});
      assert.equal(await refusal(t.call("Cluster", "MemberRemove", { ID: members.members[0]!.ID })), "PERMISSION_DENIED: etcdserver: permission denied");
      assert.equal(members.members.length, 3);
    });

    it("cannot take a snapshot (the whole key space)", async () => {
      const env = cleanCtlEnv({ ...c.ctlEnv(["raftkv-1"]), ETCDCTL_CERT: tenantCert.cert, ETCDCTL_KEY: tenantCert.key });
      const file = path.join(c.dir, "tenant.db");
      const r = await runCli(ETCDCTL_BIN, ["snapshot", "save", file], env, { timeoutMs: 20_000 });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Error: rpc error: code = Unknown desc = auth: permission denied/);
      assert.equal(fs.existsSync(file), false);
    });

    it("cannot compact (it discards every tenant's history)", async () => {
      const t = client("raftkv-1", tenantCert);
      assert.equal(await refusal(t.call("KV", "Compact", { revision: "2" })), "PERMISSION_DENIED: etcdserver: permission denied");
    });
  });

  describe("replicated state", () => {
    it("a member that was down catches up on users and permissions from a leader's snapshot", async () => {
      const leader = await c.leader();
      const down = ["raftkv-1", "raftkv-2", "raftkv-3"].find((n) => n !== leader)!;
      const via = ["raftkv-1", "raftkv-2", "raftkv-3"].filter((n) => n !== down);
      await c.kill(down);
      const root = client(via[0]!);
      await root.login("root", "rootpw");
      for (let i = 0; i < 240; i += 40) await Promise.all(Array.from({ length: 40 }, (_, j) => root.put(`/fill/${i + j}`)));
      await root.call("Auth", "UserAdd", { name: "late", password: "latepw" });
      await root.call("Auth", "RoleGrantPermission", { name: "tenant-a", perm: { permType: "READ", key: Buffer.from("/shared") } });
      // The survivors keep a tail of entries in memory after a snapshot; a restart drops it, so
      // their logs begin at their last snapshot and only a snapshot can bring `down` up to date.
      for (const n of via) {
        await c.kill(n, "SIGTERM");
        c.startMember(n);
      }
      await c.waitHealthy(via, 30_000);
      c.startMember(down);
      await c.waitHealthy(undefined, 30_000);
      await eventually(`${down} installed the leader's snapshot`, async () => (/installed snapshot from leader/.test(c.log(down)) ? true : undefined), 30_000, 200);
      const t = client(down, tenantCert);
      await eventually(`${down} applied the grant`, async () => ((await t.get("/shared", true).then(() => true, () => false)) ? true : undefined), 15_000, 200);
      assert.equal(await refusal(t.get("/tenant-b/x", true)), "PERMISSION_DENIED: etcdserver: permission denied");
      const late = client(down);
      await late.login("late", "latepw");
      assert.equal(await refusal(late.get("/tenant-a/k")), "PERMISSION_DENIED: etcdserver: permission denied");
      assert.equal(await refusal(client(down).get("/tenant-a/k")), "PERMISSION_DENIED: etcdserver: permission denied");
    });

    it("the whole cluster keeps auth across a restart (tokens do not survive it, as in etcd)", async () => {
      const before = client("raftkv-2");
      await before.login("root", "rootpw");
      for (const m of ["raftkv-1", "raftkv-2", "raftkv-3"]) await c.kill(m);
      for (const m of ["raftkv-1", "raftkv-2", "raftkv-3"]) c.startMember(m);
      await c.waitHealthy(undefined, 30_000);
      const stale = client("raftkv-2");
      stale.token = before.token;
      await eventually("raftkv-2 serves again", async () => ((await refusal(stale.get("/tenant-a/k"))) !== "UNAVAILABLE: etcdserver: no leader" ? true : undefined), 15_000, 200);
      assert.equal(await refusal(stale.get("/tenant-a/k")), "UNAUTHENTICATED: etcdserver: invalid auth token");
      assert.equal(await refusal(client("raftkv-2").get("/tenant-a/k")), "PERMISSION_DENIED: etcdserver: permission denied");
      const root = client("raftkv-2");
      await root.login("root", "rootpw");
      assert.equal(await root.get("/tenant-a/k"), "mine");
      assert.equal(await client("raftkv-1", tenantCert).get("/tenant-a/k"), "mine");
      const users = await root.call<{ users: string[] }>("Auth", "UserList", {});
      assert.deepEqual(users.users, ["late", "root", "tenant-a"]);
    });
  });
});
