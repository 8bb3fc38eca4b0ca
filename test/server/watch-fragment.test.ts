/**
 * Watch response fragments: the sizes we compute without encoding are the exact sizes of what our
 * server encodes (the objects serveWatch writes, through the same protobufjs types), and the split
 * follows etcd 3.4's sendFragments.
 */
import { strict as assert } from "node:assert";
import type { Event, KeyValue } from "../../node-runtime/kv/types";
import type * as wire from "../../node-runtime/server/etcd-types";
import { eventSize, fragmentEvents, keyValueSize, varintSize } from "../../node-runtime/server/api/watch-fragment";
import { etcdProtoRoot } from "../../node-runtime/server/proto";
import { seededRandom } from "../helpers/prng";

const root = etcdProtoRoot();
const EventT = root.lookupType("mvccpb.Event");
const KeyValueT = root.lookupType("mvccpb.KeyValue");
const WatchResponseT = root.lookupType("etcdserverpb.WatchResponse");

function encodedResponse(header: wire.ResponseHeader, watchId: string, events: readonly Event[], fragment: boolean): number {
  // The shape serveWatch writes for events.
  const msg = WatchResponseT.fromObject({
    header,
    watch_id: watchId,
    created: false,
    canceled: false,
    compact_revision: "0",
    cancel_reason: "",
    fragment,
    events: events.map(wireEvent),
  });
  return WatchResponseT.encode(msg).finish().length;
}

function wireEvent(e: Event): object {
  return { type: e.type, kv: e.kv, prev_kv: e.prev_kv ?? null };
}

const HEADER: wire.ResponseHeader = { cluster_id: "17237436991929493444", member_id: "9372538179322589801", revision: "123456", raft_term: "7" };

describe("watch fragments", () => {
  it("computes varint sizes across the int64 range", () => {
    for (const [v, n] of [
      [0, 1],
      [127, 1],
      [128, 2],
      [16383, 2],
      [16384, 3],
      [2 ** 53, 8],
      ["9223372036854775807", 9],
      ["18446744073709551615", 10],
      [-1, 10],
    ] as const) {
      assert.equal(varintSize(v), n, `varint of ${v}`);
    }
  });

  it("event and key-value sizes equal our encoder's", () => {
    const rnd = seededRandom(7);
    const int = (max: number) => Math.floor(rnd() * max);
    for (let i = 0; i < 500; i++) {
      const kv = (): KeyValue => ({
        key: Buffer.alloc(int(300), "k"),
        create_revision: [0, 1, 200, 2 ** 40, 2 ** 53 - 1][int(5)]!,
        mod_revision: int(2 ** 31),
        version: int(3),
        value: Buffer.alloc([0, 1, 127, 128, 20000, 300000][int(6)]!, "v"),
        lease: ["0", "1", "7587883364566151000", "9223372036854775807"][int(4)]!,
      });
      const e: Event = { type: rnd() < 0.5 ? "PUT" : "DELETE", kv: kv(), ...(rnd() < 0.5 ? { prev_kv: kv() } : {}) };
      assert.equal(keyValueSize(e.kv), KeyValueT.encode(KeyValueT.fromObject(e.kv)).finish().length);
      assert.equal(eventSize(e), EventT.encode(EventT.fromObject(wireEvent(e))).finish().length);
    }
  });

  it("splits as etcd's sendFragments: pieces below the limit, at least one event each, whole when small", () => {
    const ev = (n: number, bytes: number): Event => ({
      type: "PUT",
      kv: { key: Buffer.from(`k${n}`), create_revision: 5, mod_revision: 9, version: 1, value: Buffer.alloc(bytes), lease: "0" },
    });
    const events = [ev(0, 100), ev(1, 3000), ev(2, 500), ev(3, 500), ev(4, 5000), ev(5, 10), ev(6, 10)];
    const limit = 2000;
    const pieces = fragmentEvents(events, limit, HEADER, "3");
    assert.deepEqual(pieces.flat(), events, "nothing lost or reordered");
    assert.deepEqual(
      pieces.map((p) => p.map((e) => e.kv.key.toString())),
      [["k0"], ["k1"], ["k2", "k3"], ["k4"], ["k5", "k6"]],
    );
    pieces.forEach((p, i) => {
      const size = encodedResponse(HEADER, "3", p, true);
      if (p.length > 1) assert.ok(size < limit, `piece ${i} (${size} bytes) is below the limit`);
      // etcd closes a piece when the next event would bring it to the limit.
      const next = pieces[i + 1]?.[0];
      if (next) assert.ok(encodedResponse(HEADER, "3", [...p, next], true) >= limit, `piece ${i} could not take one more`);
    });
    // Exactly at the limit, a response is split; one byte below, it goes whole.
    const whole = encodedResponse(HEADER, "3", events.slice(5), false);
    assert.equal(fragmentEvents(events.slice(5), whole + 1, HEADER, "3").length, 1);
    assert.equal(fragmentEvents(events.slice(5), whole, HEADER, "3").length, 2);
    // A single event is never split, however large.
    assert.equal(fragmentEvents([ev(9, 100_000)], 1000, HEADER, "3").length, 1);
  });
});
