/**
 * `npm run abuse`: replays the attacks of issue 15 against a running 3-member cluster of the
 * real bundle, at the sizes the issue reported, and checks after each one that the cluster
 * still serves, that member memory stayed bounded and that the bad request got a clear error.
 * Figures (RSS before / peak / after per member, longest stall of a put loop) go to
 * bench/results/abuse.md and abuse.json. `--quick` runs small sizes (what npm test's
 * test/abuse/*.test.ts check as regression tests). Exit status 1 if any check failed.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { ETCDCTL_BIN } from "../helpers/etcd-reference";
import { adminCredentials, clientAddress, RawPool } from "../server/cluster/clients";
import { REPO, sleep, TestCluster } from "../server/harness/cluster";
import { RawWatch, rssMiB, RssSampler, StallProbe } from "./support";
import { loadEtcdGrpc } from "../../node-runtime/server/proto";
import type * as grpc from "@grpc/grpc-js";

const quick = process.argv.includes("--quick");
const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

interface Row {
  attack: string;
  answer: string;
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  stallMs: number;
  ok: boolean;
  problems: string[];
}

/** The cluster, for the failure path: its member processes must not outlive the runner. */
let started: TestCluster | undefined;

async function main(): Promise<number> {
  process.env["NODE_NO_WARNINGS"] = "1";
  const c = await TestCluster.start({ size: 3, snapshotCount: 1000 });
  started = c;
  const pool = new RawPool(c);
  const rows: Row[] = [];
  const admin = c.pki.clients["admin"]!;
  const pids = () => c.members.map((m) => c.procs.get(m.name)!.pid!);
  const rss = () => pids().map((p) => rssMiB(p));

  const attack = async (name: string, run: (leader: string) => Promise<{ answer: string; problems?: string[] }>) => {
    const leader = await c.leader(30_000);
    const before = rss();
    const sampler = new RssSampler(pids());
    const probe = new StallProbe(() => pool.of(leader).put("abuse/probe", "x", 30_000));
    const problems: string[] = [];
    let answer = "";
    try {
      const r = await run(leader);
      answer = r.answer;
      problems.push(...(r.problems ?? []));
    } catch (e) {
      problems.push(`attack failed: ${(e as Error).message}`);
    }
    await probe.stop();
    const peak = sampler.stop();
    await sleep(1000);
    for (const m of c.members) if (!c.running(m.name)) problems.push(`${m.name} died`);
    try {
      await c.waitHealthy(undefined, 30_000);
      const l = await c.leader(30_000);
      await pool.of(l).put("abuse/after", name);
      if ((await pool.of(l).value("abuse/after")) !== name) problems.push("write after the attack not readable");
    } catch (e) {
      problems.push(`cluster not serving afterwards: ${(e as Error).message.slice(0, 200)}`);
    }
    if (probe.errors.length > 0) problems.push(`${probe.errors.length} probe writes failed: ${probe.errors[0]!}`);
    const after = c.members.map((m) => (c.running(m.name) ? rssMiB(c.procs.get(m.name)!.pid!) : 0));
    const peaks = pids().map((p) => peak.get(p) ?? 0);
    const growth = Math.max(...peaks.map((p, i) => p - before[i]!));
    if (growth > 300) problems.push(`member RSS grew by ${growth.toFixed(0)} MiB`);
    const row: Row = {
      attack: name,
      answer,
      rssBefore: Math.max(...before),
      rssPeak: Math.max(...peaks),
      rssAfter: Math.max(...after),
      stallMs: Math.round(probe.longestMs),
      ok: problems.length === 0,
      problems,
    };
    rows.push(row);
    process.stdout.write(`${row.ok ? "ok  " : "FAIL"} ${name}: ${answer}; RSS ${row.rssBefore.toFixed(0)} -> peak ${row.rssPeak.toFixed(0)} -> ${row.rssAfter.toFixed(0)} MiB, stall ${row.stallMs} ms${problems.length ? `\n     ${problems.join("\n     ")}` : ""}\n`);
  };

  const etcdctl = (args: string[]) =>
    spawnSync(ETCDCTL_BIN, [`--endpoints=${c.members.map((m) => `127.0.0.1:${m.clientPort}`).join(",")}`, `--cacert=${admin.ca}`, `--cert=${admin.cert}`, `--key=${admin.key}`, "--command-timeout=10s", ...args], {
      encoding: "utf8",
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ETCDCTL_API: "3" },
    });
  const postBody = (leader: string, route: string, parts: () => Generator<string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { method: "POST", host: "127.0.0.1", port: c.member(leader).clientPort, path: route, ca: fs.readFileSync(admin.ca), cert: fs.readFileSync(admin.cert), key: fs.readFileSync(admin.key), agent: false },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      // The member may answer early (429) and stop reading: a write error then races the
      // answer, so give the answer a moment before calling the request failed.
      req.on("error", (e) => setTimeout(() => reject(e), 3000));
      const it = parts();
      const pump = () => {
        for (;;) {
          const n = it.next();
          if (n.done || req.destroyed) return void req.end();
          if (!req.write(n.value)) return void req.once("drain", pump);
        }
      };
      pump();
    });

  // History for the watch and snapshot attacks (the issue used 100 MB).
  const historyMiB = quick ? 10 : 100;
  {
    const m = pool.of(await c.leader());
    const v = Buffer.alloc(100 * 1024, "h");
    for (let i = 0; i < (historyMiB * 1024) / 100; i++) await m.put(`hist/${String(i).padStart(6, "0")}`, v);
  }

  await attack(`30 watches from revision 1 on an unread stream (${historyMiB} MiB history)`, async (leader) => {
    const w = new RawWatch(clientAddress(c, leader), adminCredentials(c), { paused: true });
    for (let i = 0; i < 30; i++) w.create({ key: "hist/", range_end: "hist0", start_revision: 1 });
    await sleep(5000);
    w.close();
    return { answer: "watches created; history paced by the stream's flow control" };
  });

  await attack("2 paused watchers while 20 MiB is written", async (leader) => {
    const ws = [0, 1].map(() => new RawWatch(clientAddress(c, leader), adminCredentials(c), { paused: true }));
    for (const w of ws) w.create({ key: "live/", range_end: "live0" });
    const m = pool.of(leader);
    const v = Buffer.alloc(100 * 1024, "l");
    for (let i = 0; i < 200; i++) await m.put(`live/${i}`, v);
    for (const w of ws) w.close();
    return { answer: "watchers moved aside (unsynced), nothing queued" };
  });

  await attack("10 Snapshot streams never read", async () => {
    const { clients } = loadEtcdGrpc();
    const calls = Array.from({ length: 10 }, () => {
      const client = new clients.Maintenance(clientAddress(c, "raftkv-2"), adminCredentials(c));
      const call = (client as unknown as { Snapshot: (r: object) => grpc.ClientReadableStream<unknown> }).Snapshot({});
      call.on("error", () => undefined);
      call.pause();
      return { client, call };
    });
    await sleep(5000);
    for (const x of calls) {
      x.call.cancel();
      x.client.close();
    }
    return { answer: "streams paced by flow control" };
  });

  const bigMiB = quick ? 60 : 1024;
  await attack(`gateway body: ${bigMiB} MiB of whitespace, then a range`, async (leader) => {
    const chunk = " ".repeat(MiB);
    const r = await postBody(leader, "/v3/kv/range", function* () {
      for (let i = 0; i < bigMiB; i++) yield chunk;
      yield `{"key":"${Buffer.from("x").toString("base64")}"}`;
    });
    return { answer: `${r.status} ${r.body.slice(0, 60)}`, problems: r.status === 200 ? [] : ["expected 200"] };
  });

  await attack("gateway body: a 20 MiB value", async (leader) => {
    const r = await postBody(leader, "/v3/kv/put", function* () {
      yield '{"key":"';
      for (let i = 0; i < 20; i++) yield "A".repeat(MiB);
      yield '"}';
    });
    return { answer: `${r.status} ${r.body.slice(0, 80)}`, problems: r.status === 429 ? [] : ["expected 429"] };
  });

  await attack("gateway body: JSON nested 20,000 deep", async (leader) => {
    const r = await postBody(leader, "/v3/kv/range", function* () {
      yield "[".repeat(20_000) + "]".repeat(20_000);
    });
    return { answer: `${r.status} ${r.body.slice(0, 80)}`, problems: r.status === 400 ? [] : ["expected 400"] };
  });

  await attack("a Txn of 128 Range ops over the whole keyspace", async (leader) => {
    // Over 2 GiB of response: etcd 3.4.23 builds it (5.5 GiB peak with 20 MiB stored) and refuses
    // to send it; raftkv must refuse it with the same answer without building it.
    const { clients } = loadEtcdGrpc();
    const client = new clients.KV(clientAddress(c, leader), adminCredentials(c), { "grpc.max_receive_message_length": -1 });
    const all = { request_range: { key: Buffer.from([0]), range_end: Buffer.from([0]) } };
    const txn = (client as unknown as { Txn: (r: object, cb: (e: grpc.ServiceError | null, r?: { responses: unknown[] }) => void) => void }).Txn.bind(client);
    const answer = await new Promise<string>((resolve) =>
      txn({ compare: [], success: Array.from({ length: 128 }, () => all), failure: [] }, (e, r) => resolve(e ? `code ${e.code}: ${e.details}` : `OK, ${r?.responses.length ?? 0} responses`)),
    );
    client.close();
    return { answer, problems: /^code 8: grpc: trying to send message larger than max/.test(answer) ? [] : ["expected RESOURCE_EXHAUSTED, as etcd answers"] };
  });

  // Connections the member holds on a port, counted on the member's side (`ss`): a client whose
  // final ACK the kernel dropped (accept queue full) believes it is connected, but the member
  // never had it, as with any server.
  // (Asynchronously: a blocking call here would count as the cluster's stall.)
  const memberSockets = async (port: number) => {
    const { stdout } = await execFileAsync("ss", ["-tnH", "state", "established", `( sport = :${port} )`], { encoding: "utf8" });
    return stdout.split("\n").filter((l) => l.trim() !== "").length;
  };
  // The attacker is a process of its own: 2,000 sockets opened and closed in this one would
  // stall the put probe here and be counted as the cluster's stall.
  const handshakeFlood = (port: number, deadlineS: number) => async () => {
    const before = await memberSockets(port);
    // The kernel retries SYN-ACKs for about 31 s when the accept queue overflows, so the last
    // connections may reach the member that late; each then has its own deadline.
    const waitS = deadlineS + 40;
    const attacker = spawn(
      process.execPath,
      ["-e", `const net = require("net"); const a = []; for (let i = 0; i < 2000; i++) { const s = net.connect(${port}, "127.0.0.1"); s.on("error", () => {}); a.push(s); } console.log("ready"); setTimeout(() => process.exit(0), ${waitS * 1000});`],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    // Sampled from the moment the attacker has opened its sockets until the member holds none
    // of them or past the last possible deadline.
    await new Promise<void>((resolve) => {
      attacker.stdout!.once("data", () => resolve());
      attacker.once("exit", () => resolve());
    });
    const t0 = Date.now();
    let peak = 0;
    let held = 0;
    do {
      await sleep(250);
      held = Math.max(0, (await memberSockets(port)) - before);
      peak = Math.max(peak, held);
    } while ((held > 0 || Date.now() - t0 < 3000) && Date.now() - t0 < waitS * 1000);
    const tookS = ((Date.now() - t0) / 1000).toFixed(1);
    attacker.kill("SIGKILL");
    return {
      answer: `2000 opened; the member held at most ${peak} at once (accept queue included), ${held === 0 ? `none after ${tookS} s` : `${held} after ${tookS} s`}`,
      problems: held > 0 ? [`${held} handshake-less connections held ${waitS} s after the flood began`] : [],
    };
  };
  await attack("2,000 connections that never handshake (client port)", (leader) => handshakeFlood(c.member(leader).clientPort, 10)());
  await attack("2,000 connections that never handshake (peer port)", (leader) => handshakeFlood(c.member(leader).peerPort, 5)());

  await attack("etcdctl compaction 9223372036854775807", async () => {
    const r = etcdctl(["compaction", "9223372036854775807"]);
    const msg = r.stderr.trim().split("\n").pop() ?? "";
    return { answer: msg, problems: r.status !== 0 && /future revision/.test(msg) ? [] : [`unexpected: ${r.status} ${msg}`] };
  });

  await attack("etcdctl lease grant 9223372036854775807", async () => {
    const r = etcdctl(["lease", "grant", "9223372036854775807"]);
    const msg = r.stderr.trim().split("\n").pop() ?? "";
    return { answer: msg, problems: r.status !== 0 && /too large lease TTL/.test(msg) ? [] : [`unexpected: ${r.status} ${msg}`] };
  });

  await attack("member add with an unusable peer URL (http://[::1]:70000)", async () => {
    const r = etcdctl(["member", "add", "bad", "--peer-urls=http://[::1]:70000"]);
    const msg = (r.status === 0 ? r.stdout.split("\n")[0] : r.stderr.trim().split("\n").pop()) ?? "";
    const list = etcdctl(["member", "list"]);
    const id = /Member ([0-9a-f]+) added/.exec(r.stdout)?.[1];
    if (id) etcdctl(["member", "remove", id]);
    return { answer: msg.slice(0, 100), problems: list.status === 0 ? [] : ["member list failed afterwards"] };
  });

  await attack("peer port with a client certificate", async () => {
    const m = c.member("raftkv-1");
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: m.peerPort, ca: fs.readFileSync(admin.ca), cert: fs.readFileSync(admin.cert), key: fs.readFileSync(admin.key), rejectUnauthorized: false });
      s.on("error", (e) => resolve(`refused: ${e.message}`));
      s.once("secureConnect", () => {
        s.write(Buffer.alloc(64, 1));
        s.once("close", () => resolve("handshake completed, then closed"));
        setTimeout(() => resolve("handshake completed and held open"), 5000);
      });
    });
    return { answer: outcome, problems: /held open/.test(outcome) ? ["peer port accepted a client certificate"] : [] };
  });

  pool.closeAll();
  await c.destroy();

  const dir = path.join(REPO, "bench", "results");
  fs.mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString();
  const table = [
    `# Abuse suite (${quick ? "quick" : "full"}), ${when}`,
    "",
    "3-member raftkv cluster (dist bundle) on loopback; RSS is the largest member's, in MiB; stall is the",
    "longest put of a serial put loop against the leader during the attack.",
    "",
    "| attack | answer | RSS before | RSS peak | RSS after | stall ms | ok |",
    "|---|---|---:|---:|---:|---:|---|",
    ...rows.map((r) => `| ${r.attack} | ${r.answer.replace(/\|/g, "\\|").slice(0, 90)} | ${r.rssBefore.toFixed(0)} | ${r.rssPeak.toFixed(0)} | ${r.rssAfter.toFixed(0)} | ${r.stallMs} | ${r.ok ? "yes" : "NO: " + r.problems.join("; ")} |`),
    "",
  ].join("\n");
  fs.writeFileSync(path.join(dir, quick ? "abuse-quick.md" : "abuse.md"), table);
  fs.writeFileSync(path.join(dir, quick ? "abuse-quick.json" : "abuse.json"), JSON.stringify({ when, quick, rows }, null, 2) + "\n");
  process.stdout.write(`\n${table}`);
  return rows.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`abuse suite failed: ${(e as Error).stack ?? String(e)}\n`);
    await started?.destroy().catch(() => undefined);
    process.exit(1);
  },
);
