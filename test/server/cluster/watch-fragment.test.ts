/**
 * Watch `fragment` (issue 15) against a real 3-member cluster and etcd 3.4.23 side by side, with
 * a raw grpc-js client on our proto: one revision whose events far exceed --max-request-bytes
 * (a range delete of 48 keys of 100 KiB, watched with prev_kv: ~4.7 MiB of events).
 *
 * - with `fragment`: the revision arrives in pieces below the limit, `fragment: true` on all but
 *   the last, the same header revision on each, and joined they are the whole revision; the same
 *   split whether the watcher was live or catching up from history;
 * - without it: one response with every event (the server sends up to 2 GiB), which a client at
 *   grpc-js's default 4 MiB receive limit cannot take: its stream fails with RESOURCE_EXHAUSTED.
 *
 * Both servers must give the same piece counts, event counts and flags.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { loadEtcdGrpc } from "../../../node-runtime/server/proto";
import { startReferenceEtcd, type ReferenceEtcd } from "../../helpers/etcd-reference";
import { sleep, TestCluster } from "../harness/cluster";
import { adminCredentials, clientAddress, RawMember } from "./clients";

const KEYS = 48;
const VALUE = Buffer.alloc(100 * 1024, "f");

interface WireEvent {
  type: string;
  kv: { key: Buffer; mod_revision: string };
  prev_kv: { key: Buffer; value: Buffer } | null;
}
interface WatchResponse {
  watch_id: string;
  created: boolean;
  canceled: boolean;
  fragment: boolean;
  header: { revision: string };
  events: WireEvent[];
}

class Watch {
  readonly responses: WatchResponse[] = [];
  error: grpc.ServiceError | undefined;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, WatchResponse>;

  constructor(address: string, creds: grpc.ChannelCredentials, maxReceiveBytes: number) {
    const { clients } = loadEtcdGrpc();
    this.client = new clients.Watch(address, creds, { "grpc.max_receive_message_length": maxReceiveBytes });
    const md = new grpc.Metadata();
    md.set("hasleader", "true");
    const method = (this.client as unknown as { Watch: (md: grpc.Metadata) => grpc.ClientDuplexStream<object, WatchResponse> }).Watch;
    this.call = method.call(this.client, md);
    this.call.on("data", (r: WatchResponse) => this.responses.push(r));
    this.call.on("error", (e: grpc.ServiceError) => (this.error = e));
  }

  create(opts: { fragment: boolean; startRevision?: string }): void {
    this.call.write({
      create_request: { key: Buffer.from("frag/"), range_end: Buffer.from("frag0"), prev_kv: true, fragment: opts.fragment, start_revision: opts.startRevision ?? "0" },
    });
  }

  async until(what: string, pred: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${this.responses.length} responses, error ${this.error?.message ?? "none"}`);
      await sleep(50);
    }
  }

  /** The event responses (not the created one), as [events, fragment] pairs. */
  shape(): Array<[number, boolean]> {
    return this.responses.filter((r) => !r.created).map((r) => [r.events.length, r.fragment]);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

interface Outcome {
  live: Array<[number, boolean]>;
  history: Array<[number, boolean]>;
  whole: Array<[number, boolean]>;
  smallClient: { code: number | undefined; details: string };
}

/** Runs the scenario against one server, checks what must hold on any server, returns the shapes. */
async function scenario(address: string, creds: grpc.ChannelCredentials): Promise<Outcome> {
  const kv = new RawMember(address, creds);
  const watches: Watch[] = [];
  const open = (maxReceive: number) => {
    const w = new Watch(address, creds, maxReceive);
    watches.push(w);
    return w;
  };
  try {
    // Ten puts per txn (1 MiB, below --max-request-bytes).
    for (let i = 0; i < KEYS; i += 10) {
      const puts = Array.from({ length: Math.min(10, KEYS - i) }, (_, j) => ({ request_put: { key: Buffer.from(`frag/${String(i + j).padStart(2, "0")}`), value: VALUE } }));
      await kv.call("KV", "Txn", { compare: [], success: puts, failure: [] });
    }
    const live = open(64 << 20);
    live.create({ fragment: true });
    const whole = open(64 << 20);
    whole.create({ fragment: false });
    const small = open(4 << 20);
    small.create({ fragment: false });
    for (const w of [live, whole, small]) await w.until("created", () => w.responses.some((r) => r.created));

    const del = await kv.call<{ header: { revision: string }; deleted: string }>("KV", "DeleteRange", { key: Buffer.from("frag/"), range_end: Buffer.from("frag0") });
    assert.equal(Number(del.deleted), KEYS);
    const rev = del.header.revision;

    const complete = (w: Watch) => () => w.responses.some((r) => !r.created && !r.fragment);
    await live.until("the last piece", complete(live));
    await whole.until("the whole revision", complete(whole));
    await small.until("the small client's stream to fail", () => small.error !== undefined);

    // A watcher created after the fact replays the same revision from history.
    const history = open(64 << 20);
    history.create({ fragment: true, startRevision: rev });
    await history.until("the last piece", complete(history));

    for (const w of [live, history]) {
      const pieces = w.responses.filter((r) => !r.created);
      assert.ok(pieces.length > 1, "the revision came in several pieces");
      for (const p of pieces) assert.equal(p.header.revision, rev, "each piece carries the revision's header");
      const events = pieces.flatMap((p) => p.events);
      assert.deepEqual(
        events.map((e) => [e.type, e.kv.key.toString(), e.kv.mod_revision, e.prev_kv?.value.length]),
        Array.from({ length: KEYS }, (_, i) => ["DELETE", `frag/${String(i).padStart(2, "0")}`, rev, VALUE.length]),
        "joined, the pieces are the whole revision in order",
      );
    }
    return {
      live: live.shape(),
      history: history.shape(),
      whole: whole.shape(),
      smallClient: { code: small.error?.code, details: small.error?.details ?? "" },
    };
  } finally {
    for (const w of watches) w.close();
    kv.close();
  }
}

describe("watch fragment: large revisions split like etcd 3.4", function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let etcd: ReferenceEtcd | undefined;

  after(async () => {
    await c?.destroy();
    await etcd?.stop();
  });

  it("splits with fragment, sends whole without, and agrees with etcd 3.4.23", async () => {
    etcd = await startReferenceEtcd();
    const ref = etcd.client;
    const etcdCreds = grpc.credentials.createSsl(fs.readFileSync(ref.ca), fs.readFileSync(ref.key), fs.readFileSync(ref.cert));
    const expected = await scenario(`127.0.0.1:${etcd.member.clientPort}`, etcdCreds);
    await etcd.stop();
    etcd = undefined;

    c = await TestCluster.start({ size: 3 });
    const leader = await c.leader();
    // A follower serves the watch: events reach it through its own apply.
    const follower = c.members.map((m) => m.name).find((n) => n !== leader)!;
    const got = await scenario(clientAddress(c, follower), adminCredentials(c));

    // etcd splits at --max-request-bytes (1.5 MiB) + 512 KiB; ~100 KiB events: 20 per piece.
    assert.deepEqual(expected.live, [[20, true], [20, true], [8, false]], "etcd's own split");
    assert.deepEqual(got.live, expected.live);
    assert.deepEqual(got.history, expected.history);
    assert.deepEqual(expected.whole, [[KEYS, false]]);
    assert.deepEqual(got.whole, expected.whole);
    assert.equal(expected.smallClient.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(got.smallClient.code, expected.smallClient.code);
    assert.match(got.smallClient.details, /Received message larger than max/);
  });
});
