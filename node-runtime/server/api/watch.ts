/**
 * One Watch stream: many watchers multiplexed by watch_id, as etcd serves them.
 *
 * Order on the wire matters to clients: the "created" response must precede any event of that
 * watcher (etcdctl drops events of a watch it has not seen created), so history replayed during
 * creation is held back until "created" is written.
 */
import { WatchCompactedError } from "../../kv/errors";
import type { Event } from "../../kv/types";
import type { WatchHandle } from "../../kv/watch";
import type * as wire from "../etcd-types";
import { Errors } from "../errors";
import type { Member } from "../member";
import { toBuffer, toNumber } from "./convert";
import type { MessageStream } from "./stream";

type Stream = MessageStream<wire.WatchRequest, wire.WatchResponse>;

/** How often watchers created with progress_notify hear the current revision when idle. */
const PROGRESS_INTERVAL_MS = 10 * 60 * 1000;

export function serveWatch(member: Member, call: Stream): void {
  const watchers = new Map<number, WatchHandle>();
  const progressIds = new Set<number>();
  let nextId = 0;
  let closed = false;

  const hdr = (revision: number): wire.ResponseHeader => ({
    cluster_id: String(member.clusterId),
    member_id: String(member.id),
    revision: String(revision),
    raft_term: String(member.currentTerm()),
  });
  const send = (r: Omit<Partial<wire.WatchResponse>, "watch_id"> & { watch_id: number }) => {
    if (closed) return;
    call.write({
      header: hdr(member.kv.revision),
      created: false,
      canceled: false,
      compact_revision: "0",
      cancel_reason: "",
      fragment: false,
      events: [],
      ...r,
      watch_id: String(r.watch_id),
    });
  };
  const toWireEvents = (events: readonly Event[]) =>
    events.map((e) => ({ type: e.type, kv: e.kv, prev_kv: e.prev_kv ?? null })) as unknown as wire.Event[];

  const progressTimer = setInterval(() => {
    for (const id of progressIds) send({ watch_id: id });
  }, PROGRESS_INTERVAL_MS);

  const create = (req: Partial<wire.WatchCreateRequest>) => {
    let id = toNumber(req.watch_id);
    if (id === 0 || watchers.has(id)) {
      while (watchers.has(nextId)) nextId++;
      id = nextId++;
    }
    const held: Array<{ events: Event[]; revision: number }> = [];
    let live = false;
    const deliver = (events: Event[], revision: number) => {
      if (!live) held.push({ events, revision });
      else send({ watch_id: id, events: toWireEvents(events), header: hdr(revision) });
    };
    let handle: WatchHandle;
    try {
      const end = req.range_end && req.range_end.length > 0 ? toBuffer(req.range_end) : undefined;
      handle = member.kv.watch(
        {
          key: toBuffer(req.key),
          ...(end !== undefined ? { range_end: end } : {}),
          start_revision: toNumber(req.start_revision),
          prev_kv: req.prev_kv ?? false,
          filters: (req.filters ?? []).filter((f): f is "NOPUT" | "NODELETE" => f === "NOPUT" || f === "NODELETE"),
        },
        deliver,
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
    live = true;
    for (const h of held) send({ watch_id: id, events: toWireEvents(h.events), header: hdr(h.revision) });
  };

  const cancel = (id: number) => {
    const h = watchers.get(id);
    if (h) {
      h.cancel();
      watchers.delete(id);
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
  };

  call.on("data", (req: wire.WatchRequest) => {
    if (req.create_request) create(req.create_request);
    else if (req.cancel_request) cancel(toNumber(req.cancel_request.watch_id));
    else if (req.progress_request) send({ watch_id: -1 });
  });
  call.on("end", () => {
    close();
    call.end();
  });
  call.on("cancelled", close);
  call.on("error", close);
  call.on("close", close);
}
