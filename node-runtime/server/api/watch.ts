/**
 * One Watch stream: many watchers multiplexed by watch_id, as etcd serves them.
 *
 * Order on the wire matters to clients: the "created" response must precede any event of that
 * watcher (etcdctl drops events of a watch it has not seen created).
 *
 * Flow control, as etcd's watchableStore: the stream's outgoing buffer is bounded. While it is
 * full, live events for this stream's watchers are refused, which moves those watchers aside
 * (unsynced; they keep only a cursor into the store's history), and the stream stops reading
 * requests. When the buffer drains, a pump catches the unsynced watchers up from history in
 * bounded batches, one batch per event-loop turn, so neither memory nor the event loop is held
 * by a slow client or a watch from an old revision. A watcher whose history is compacted while
 * it is behind is cancelled with compact_revision, as etcd cancels it.
 */
import { WatchCompactedError } from "../../kv/errors";
import type { Event } from "../../kv/types";
import type { WatchHandle } from "../../kv/watch";
import type * as wire from "../etcd-types";
import { Errors } from "../errors";
import type { Member } from "../member";
import { toBuffer, toNumber } from "./convert";
import { FRAGMENT_OVERHEAD_BYTES, fragmentEvents } from "./watch-fragment";
import type { MessageStream } from "./stream";

type Stream = MessageStream<wire.WatchRequest, wire.WatchResponse>;

/** How often watchers created with progress_notify hear the current revision when idle. */
const PROGRESS_INTERVAL_MS = 10 * 60 * 1000;
/** One catch-up batch: at most this many events / bytes (a revision is never split). */
export const CATCHUP_EVENTS = 1000;
export const CATCHUP_BYTES = 256 * 1024;
/** Time one pump turn may spend before yielding the event loop. */
const PUMP_SLICE_MS = 5;
/** etcd's error for a create request reusing a live watch_id (mvcc.ErrWatcherDuplicateID). */
const ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream";
/** etcd's error for a range whose end is not after its key (mvcc.ErrEmptyWatcherRange). */
const ERR_EMPTY_RANGE = "mvcc: watcher range is empty";

/** A watch_id as canonical decimal text (int64 needs more than a JS number). */
function watchIdOf(v: unknown): string {
  if (v === undefined || v === null || v === "") return "0";
  try {
    return BigInt(v as string | number).toString();
  } catch {
    return "0";
  }
}

/**
 * `authorize` is asked at each watch creation whether the caller may read the range (etcd's
 * isWatchPermitted); a refusal cancels that watch with the reason, as etcd does.
 */
export function serveWatch(member: Member, call: Stream, authorize: (key: Buffer, end: Buffer | undefined) => Error | undefined = () => undefined): void {
  const watchers = new Map<string, WatchHandle>();
  /** Watchers that are behind and wait for the pump, in the order they fell behind. */
  const behind = new Set<string>();
  const progressIds = new Set<string>();
  let nextId = 0n;
  let closed = false;
  /** The outgoing buffer is full: refuse events until "drain". */
  let full = false;
  let pumpScheduled = false;

  const hdr = (revision: number): wire.ResponseHeader => ({
    cluster_id: String(member.clusterId),
    member_id: String(member.id),
    revision: String(revision),
    raft_term: String(member.currentTerm()),
  });
  const send = (r: Omit<Partial<wire.WatchResponse>, "watch_id"> & { watch_id: string }): void => {
    if (closed) return;
    const ok = call.write({
      header: hdr(member.kv.revision),
      created: false,
      canceled: false,
      compact_revision: "0",
      cancel_reason: "",
      fragment: false,
      events: [],
      ...r,
    });
    if (ok === false && !full) {
      full = true;
      // Stop reading requests too: a client that does not read cannot make us buffer more.
      call.pause();
    }
  };
  const toWireEvents = (events: readonly Event[]) =>
    events.map((e) => ({ type: e.type, kv: e.kv, prev_kv: e.prev_kv ?? null })) as unknown as wire.Event[];

  const progressTimer = setInterval(() => {
    for (const id of progressIds) send({ watch_id: id });
  }, PROGRESS_INTERVAL_MS);

  const schedulePump = () => {
    if (pumpScheduled || closed || full || behind.size === 0) return;
    pumpScheduled = true;
    setImmediate(pump);
  };

  const pump = () => {
    pumpScheduled = false;
    const until = performance.now() + PUMP_SLICE_MS;
    while (!closed && !full && behind.size > 0 && performance.now() < until) {
      for (const id of behind) {
        const h = watchers.get(id);
        if (!h) {
          behind.delete(id);
          continue;
        }
        const r = h.catchUp(CATCHUP_EVENTS, CATCHUP_BYTES);
        if (r.state === "synced") behind.delete(id);
        else if (r.state === "compacted") {
          behind.delete(id);
          watchers.delete(id);
          progressIds.delete(id);
          send({ watch_id: id, canceled: true, compact_revision: String(r.compactRevision), header: hdr(0) });
        } else {
          // Round robin: the next turn starts with the next watcher.
          behind.delete(id);
          behind.add(id);
        }
        if (closed || full || performance.now() >= until) break;
      }
    }
    schedulePump();
  };

  call.on("drain", () => {
    if (!full || closed) return;
    full = false;
    call.resume();
    schedulePump();
  });

  const create = (req: Partial<wire.WatchCreateRequest>) => {
    let id = watchIdOf(req.watch_id);
    if (id === "0") {
      // etcd's AutoWatchID: the lowest free ID counting up from the last one given out.
      while (watchers.has(nextId.toString())) nextId++;
      id = (nextId++).toString();
    } else if (watchers.has(id)) {
      // etcd 3.4 refuses the request: created and canceled at once, watch_id -1, with its reason.
      send({ watch_id: "-1", created: true, canceled: true, cancel_reason: ERR_DUPLICATE_ID });
      return;
    }
    const end = req.range_end && req.range_end.length > 0 ? toBuffer(req.range_end) : undefined;
    const key = toBuffer(req.key);
    if (end !== undefined && !(end.length === 1 && end[0] === 0) && Buffer.compare(key, end) >= 0) {
      send({ watch_id: "-1", created: true, canceled: true, cancel_reason: ERR_EMPTY_RANGE });
      return;
    }
    const denied = authorize(key.length === 0 ? Buffer.from([0]) : key, end);
    if (denied) {
      send({ watch_id: "-1", created: true, canceled: true, cancel_reason: denied.message });
      return;
    }
    // etcd splits this watcher's large responses near --max-request-bytes (see watch-fragment.ts).
    const fragment = req.fragment === true;
    const deliver = (events: Event[], revision: number): boolean => {
      if (closed) return true;
      if (full) {
        // Refused: the store keeps the events in its history until the pump asks for them.
        behind.add(id);
        return false;
      }
      const header = hdr(revision);
      if (!fragment) {
        send({ watch_id: id, events: toWireEvents(events), header });
        return true;
      }
      const pieces = fragmentEvents(events, member.cfg.maxRequestBytes + FRAGMENT_OVERHEAD_BYTES, header, id);
      pieces.forEach((piece, i) => send({ watch_id: id, events: toWireEvents(piece), header, fragment: i < pieces.length - 1 }));
      return true;
    };
    let handle: WatchHandle;
    try {
      handle = member.kv.watch(
        {
          key,
          ...(end !== undefined ? { range_end: end } : {}),
          start_revision: toNumber(req.start_revision),
          prev_kv: req.prev_kv ?? false,
          filters: (req.filters ?? []).filter((f): f is "NOPUT" | "NODELETE" => f === "NOPUT" || f === "NODELETE"),
        },
        deliver,
        // The member installed a snapshot: this watcher catches up from the new state's history.
        () => {
          behind.add(id);
          schedulePump();
        },
      );
    } catch (e) {
      if (e instanceof WatchCompactedError) {
        send({ watch_id: id, created: true });
        // As etcd 3.4: no reason text and a zero header revision; clients derive the message
        // ("required revision has been compacted") from compact_revision.
        send({ watch_id: id, canceled: true, compact_revision: String(e.compact_revision), header: hdr(0) });
        return;
      }
      const err = Errors.toEtcd(e);
      send({ watch_id: id, created: true });
      send({ watch_id: id, canceled: true, cancel_reason: err.message });
      return;
    }
    watchers.set(id, handle);
    if (req.progress_notify) progressIds.add(id);
    send({ watch_id: id, created: true });
    if (!handle.synced) {
      behind.add(id);
      schedulePump();
    }
  };

  const cancel = (id: string) => {
    const h = watchers.get(id);
    if (h) {
      h.cancel();
      watchers.delete(id);
      behind.delete(id);
      progressIds.delete(id);
    }
    send({ watch_id: id, canceled: true });
  };

  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(progressTimer);
    for (const h of watchers.values()) h.cancel();
    watchers.clear();
    behind.clear();
  };

  call.on("data", (req: wire.WatchRequest) => {
    if (req.create_request) create(req.create_request);
    else if (req.cancel_request) cancel(watchIdOf(req.cancel_request.watch_id));
    else if (req.progress_request) send({ watch_id: "-1" });
  });
  call.on("end", () => {
    close();
    call.end();
  });
  call.on("cancelled", close);
  call.on("error", close);
  call.on("close", close);
}
