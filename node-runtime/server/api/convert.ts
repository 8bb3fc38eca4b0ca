/**
 * Wire → state machine: etcd requests as proto-loader decodes them (int64 as decimal strings,
 * every field present, empty bytes for "unset") into the state machine's request shapes
 * (numbers, optional fields). Responses need no conversion: protobufjs encodes numbers into
 * int64 fields as they are.
 */
import { wireInt64 } from "../../kv/int64";
import type * as kv from "../../kv/types";
import type * as wire from "../etcd-types";

type P<T> = Partial<T> | null | undefined;

/** An int64 field: a number the command codec can carry, or NaN (refused by validation). */
function num(v: string | number | undefined | null): number {
  return wireInt64(v) ?? Number.NaN;
}

function buf(v: Buffer | Uint8Array | undefined | null): Buffer {
  if (v === undefined || v === null) return Buffer.alloc(0);
  return Buffer.isBuffer(v) ? v : Buffer.from(v);
}

function optBuf(v: Buffer | Uint8Array | undefined | null): Buffer | undefined {
  return v === undefined || v === null || v.length === 0 ? undefined : buf(v);
}

function id(v: string | number | undefined | null): string {
  if (v === undefined || v === null || v === "") return "0";
  return String(v);
}

export function rangeReq(r: P<wire.RangeRequest>): kv.RangeRequest {
  const q = r ?? {};
  const end = optBuf(q.range_end);
  return {
    key: buf(q.key),
    ...(end !== undefined ? { range_end: end } : {}),
    limit: num(q.limit),
    revision: num(q.revision),
    sort_order: q.sort_order ?? "NONE",
    sort_target: q.sort_target ?? "KEY",
    serializable: q.serializable ?? false,
    keys_only: q.keys_only ?? false,
    count_only: q.count_only ?? false,
    min_mod_revision: num(q.min_mod_revision),
    max_mod_revision: num(q.max_mod_revision),
    min_create_revision: num(q.min_create_revision),
    max_create_revision: num(q.max_create_revision),
  };
}

export function putReq(r: P<wire.PutRequest>): kv.PutRequest {
  const q = r ?? {};
  return {
    key: buf(q.key),
    value: buf(q.value),
    lease: id(q.lease),
    prev_kv: q.prev_kv ?? false,
    ignore_value: q.ignore_value ?? false,
    ignore_lease: q.ignore_lease ?? false,
  };
}

export function deleteReq(r: P<wire.DeleteRangeRequest>): kv.DeleteRangeRequest {
  const q = r ?? {};
  const end = optBuf(q.range_end);
  return { key: buf(q.key), ...(end !== undefined ? { range_end: end } : {}), prev_kv: q.prev_kv ?? false };
}

function compare(c: P<wire.Compare>): kv.Compare {
  const q = c ?? {};
  const end = optBuf(q.range_end);
  const out: kv.Compare = {
    result: q.result ?? "EQUAL",
    target: q.target ?? "VERSION",
    key: buf(q.key),
    ...(end !== undefined ? { range_end: end } : {}),
  };
  // Only the member of target_union that was sent is meaningful; etcd compares the others as zero.
  switch (q.target ?? "VERSION") {
    case "VERSION":
      out.version = num(q.version);
      break;
    case "CREATE":
      out.create_revision = num(q.create_revision);
      break;
    case "MOD":
      out.mod_revision = num(q.mod_revision);
      break;
    case "VALUE":
      out.value = buf(q.value);
      break;
    case "LEASE":
      out.lease = id(q.lease);
      break;
  }
  return out;
}

function op(o: wire.RequestOp): kv.RequestOp {
  if (o.request_range) return { request_range: rangeReq(o.request_range) };
  if (o.request_put) return { request_put: putReq(o.request_put) };
  if (o.request_delete_range) return { request_delete_range: deleteReq(o.request_delete_range) };
  if (o.request_txn) return { request_txn: txnReq(o.request_txn) };
  return {};
}

export function txnReq(r: P<wire.TxnRequest>): kv.TxnRequest {
  const q = r ?? {};
  return {
    compare: (q.compare ?? []).map(compare),
    success: (q.success ?? []).map(op),
    failure: (q.failure ?? []).map(op),
  };
}

export function compactReq(r: P<wire.CompactionRequest>): kv.CompactionRequest {
  return { revision: num(r?.revision), physical: r?.physical ?? false };
}

export { num as toNumber, id as toId, buf as toBuffer };
