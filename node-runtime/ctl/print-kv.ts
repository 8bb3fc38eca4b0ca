/**
 * etcdctl's printers for key-value responses (put, get, del, txn, watch) in the simple,
 * json and fields formats. `-w table` is not supported for these by etcdctl either.
 */
import type { DeleteRangeResponse, KeyValue, PutResponse, RangeResponse, ResponseHeader, TxnResponse, WatchResponse } from "../server/etcd-types";
import type { OutputFormat } from "./connection";
import { CtlError, ExitCode } from "./errors";
import { goJson, goJsonMembers } from "./go-json";
import { goQuote, hexBytes } from "./go-format";

export interface KvPrintOptions {
  format: OutputFormat;
  hex: boolean;
  valueOnly?: boolean;
}

export function unsupportedFormat(format: string): CtlError {
  return new CtlError(ExitCode.BadFeature, `${format} not supported as output format`);
}

function kvText(kv: KeyValue, o: KvPrintOptions, valueOnly: boolean): string {
  const show = (b: Buffer): string => (o.hex ? hexBytes(b) : b.toString("utf8"));
  return (valueOnly ? "" : `${show(kv.key)}\n`) + `${show(kv.value)}\n`;
}

export function fieldsHeader(h: ResponseHeader): string {
  return `"ClusterID" : ${h.cluster_id}\n"MemberID" : ${h.member_id}\n"Revision" : ${h.revision}\n"RaftTerm" : ${h.raft_term}\n`;
}

function fieldsKv(kv: KeyValue, prefix = ""): string {
  return (
    `"${prefix}Key" : ${goQuote(kv.key.toString("utf8"))}\n` +
    `"${prefix}CreateRevision" : ${kv.create_revision}\n` +
    `"${prefix}ModRevision" : ${kv.mod_revision}\n` +
    `"${prefix}Version" : ${kv.version}\n` +
    `"${prefix}Value" : ${goQuote(kv.value.toString("utf8"))}\n` +
    `"${prefix}Lease" : ${kv.lease}\n`
  );
}

export function printPut(r: PutResponse, o: KvPrintOptions): string {
  switch (o.format) {
    case "simple":
      return "OK\n" + (r.prev_kv ? kvText(r.prev_kv, o, false) : "");
    case "json":
      return goJson("etcdserverpb.PutResponse", r) + "\n";
    case "fields":
      return fieldsHeader(r.header) + (r.prev_kv ? fieldsKv(r.prev_kv, "PrevKey") : "");
    default:
      throw unsupportedFormat(o.format);
  }
}

export function printGet(r: RangeResponse, o: KvPrintOptions): string {
  switch (o.format) {
    case "simple":
      return r.kvs.map((kv) => kvText(kv, o, o.valueOnly ?? false)).join("");
    case "json":
      return goJson("etcdserverpb.RangeResponse", r) + "\n";
    case "fields":
      return fieldsHeader(r.header) + r.kvs.map((kv) => fieldsKv(kv)).join("") + `"More" : ${r.more}\n"Count" : ${r.count}\n`;
    default:
      throw unsupportedFormat(o.format);
  }
}

export function printDel(r: DeleteRangeResponse, o: KvPrintOptions): string {
  switch (o.format) {
    case "simple":
      return `${r.deleted}\n` + r.prev_kvs.map((kv) => kvText(kv, o, false)).join("");
    case "json":
      return goJson("etcdserverpb.DeleteRangeResponse", r) + "\n";
    case "fields":
      return fieldsHeader(r.header) + `"Deleted" : ${r.deleted}\n` + r.prev_kvs.map((kv) => fieldsKv(kv, "PrevKey")).join("");
    default:
      throw unsupportedFormat(o.format);
  }
}

export function printTxn(r: TxnResponse, o: KvPrintOptions): string {
  switch (o.format) {
    case "simple": {
      let s = r.succeeded ? "SUCCESS\n" : "FAILURE\n";
      for (const op of r.responses) {
        s += "\n";
        if (op.response_delete_range) s += printDel(op.response_delete_range, o);
        else if (op.response_put) s += printPut(op.response_put, o);
        else if (op.response_range) s += printGet(op.response_range, o);
        else s += "unexpected response\n";
      }
      return s;
    }
    case "json":
      return goJson("etcdserverpb.TxnResponse", r) + "\n";
    default:
      throw unsupportedFormat(o.format);
  }
}

/** One watch response; json mirrors clientv3.WatchResponse, whose fields carry no json tags. */
export function printWatch(r: WatchResponse, o: KvPrintOptions): string {
  switch (o.format) {
    case "simple": {
      let s = "";
      for (const e of r.events) {
        s += `${e.type}\n`;
        if (e.prev_kv) s += kvText(e.prev_kv, o, o.valueOnly ?? false);
        if (e.kv) s += kvText(e.kv, o, o.valueOnly ?? false);
      }
      return s;
    }
    case "json": {
      const header = `{${goJsonMembers("etcdserverpb.ResponseHeader", { ...r.header }).join(",")}}`;
      const events = r.events.length === 0 ? "null" : `[${r.events.map((e) => goJson("mvccpb.Event", e)).join(",")}]`;
      return (
        `{"Header":${header},"Events":${events},"CompactRevision":${r.compact_revision},` +
        `"Canceled":${r.canceled},"Created":${r.created}}\n`
      );
    }
    default:
      throw unsupportedFormat(o.format);
  }
}
