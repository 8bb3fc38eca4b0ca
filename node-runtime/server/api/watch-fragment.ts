/**
 * Watch response fragments (WatchCreateRequest.fragment), as etcd 3.4's server splits them.
 *
 * A watch response carries every event of one revision (or one catch-up batch) for a watcher; a
 * txn or a range delete can make that far larger than --max-request-bytes. A client that asked
 * for `fragment` gets such a response in pieces: each piece holds events while its encoded size
 * stays below the limit (etcd's: --max-request-bytes plus its 512 KiB gRPC overhead allowance),
 * and at least one event, so a single large event still goes out whole; every piece but the last has `fragment: true`, and all share the header and watch_id. Clients join the
 * pieces until one arrives without the flag. A response that is already below the limit, or has
 * fewer than two events, is sent as it is. Without `fragment` the response goes out whole, as etcd
 * sends it (the gRPC send limit is 2 GiB; a client with a smaller receive limit fails the stream).
 *
 * Sizes are exact byte counts of the encoding we send (kv/wire-size.ts): a few bytes more per event
 * than etcd's, so our pieces hold at most as many events as etcd's (the same for events of any
 * real size) and each stays below the limit on the wire.
 */
import type { Event, KeyValue } from "../../kv/types";
import type * as wire from "../etcd-types";
import { intField, keyValueSize as kvSize, lenField } from "../../kv/wire-size";

export { varintSize } from "../../kv/wire-size";

/** etcd's grpcOverheadBytes: its watch server fragments at --max-request-bytes plus this. */
export const FRAGMENT_OVERHEAD_BYTES = 512 * 1024;

export function keyValueSize(kv: KeyValue): number {
  return kvSize(kv.key.length, kv.create_revision, kv.mod_revision, kv.version, kv.value.length, kv.lease);
}

/** An Event message's own size (without its tag and length inside a WatchResponse). */
export function eventSize(e: Event): number {
  return intField(e.type === "DELETE" ? 1 : 0) + lenField(keyValueSize(e.kv)) + (e.prev_kv ? lenField(keyValueSize(e.prev_kv)) : 0);
}

function headerSize(h: wire.ResponseHeader): number {
  return intField(h.cluster_id) + intField(h.member_id) + intField(h.revision) + intField(h.raft_term);
}

/**
 * The events of one response regrouped into the responses etcd would send with `fragment` set:
 * one group when no split is needed. `header` and `watchId` are what every piece carries.
 */
export function fragmentEvents(events: readonly Event[], maxBytes: number, header: wire.ResponseHeader, watchId: string): Event[][] {
  // The fields of an event response besides its events: header, watch_id, created, canceled,
  // compact_revision ("0"), cancel_reason (""), fragment (booleans: two bytes each).
  const base = lenField(headerSize(header)) + intField(watchId) + 2 + 2 + 2 + 2 + 2;
  const sizes = events.map((e) => lenField(eventSize(e)));
  const whole = base + sizes.reduce((a, b) => a + b, 0);
  if (whole < maxBytes || events.length < 2) return [events.slice()];
  const pieces: Event[][] = [];
  let cur: Event[] = [];
  let bytes = base;
  for (let i = 0; i < events.length; i++) {
    // A piece takes events while it stays below the limit, and always at least one.
    if (cur.length > 0 && bytes + sizes[i]! >= maxBytes) {
      pieces.push(cur);
      cur = [];
      bytes = base;
    }
    cur.push(events[i]!);
    bytes += sizes[i]!;
  }
  pieces.push(cur);
  return pieces;
}
