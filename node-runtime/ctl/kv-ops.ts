/**
 * put/get/del as requests, built from arguments and flags exactly as etcdctl's getPutOp,
 * getGetOp and getDelOp build them (shared by the commands and by txn's request lines).
 */
import type { DeleteRangeRequest, PutRequest, RangeRequest, SortOrder, SortTarget } from "../server/etcd-types";
import { CtlError, ExitCode } from "./errors";
import { parseGoInt } from "./go-format";

export interface PutFlags {
  lease?: string;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface GetFlags {
  consistency?: string;
  prefix?: boolean;
  fromKey?: boolean;
  rev?: string;
  limit?: string;
  order?: string;
  sortBy?: string;
  keysOnly?: boolean;
  countOnly?: boolean;
  printValueOnly?: boolean;
}

export interface DelFlags {
  prefix?: boolean;
  prevKv?: boolean;
  fromKey?: boolean;
}

const NUL: Buffer = Buffer.from([0]);

/** The smallest key greater than every key with this prefix (clientv3.GetPrefixRangeEnd). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return NUL;
}

function intFlag(name: string, v: string | undefined): string {
  if (v === undefined) return "0";
  try {
    return parseGoInt(v, 10).toString();
  } catch (err) {
    throw new CtlError(ExitCode.BadArgs, `invalid argument ${JSON.stringify(v)} for "--${name}" flag: ${(err as Error).message}`);
  }
}

/** Value from the second argument or, when absent, all of stdin (etcdctl's argOrStdin). */
export function buildPut(args: readonly string[], f: PutFlags, readStdin: () => string): PutRequest {
  const usage = "put command needs 1 argument and input from stdin or 2 arguments";
  if (args.length === 0) throw new CtlError(ExitCode.BadArgs, usage);
  if (f.ignoreValue && args.length > 1) {
    throw new CtlError(ExitCode.BadArgs, "put command needs only 1 argument when 'ignore-value' is set");
  }
  let value = "";
  if (!f.ignoreValue) {
    if (args.length > 1) value = args[1]!;
    else {
      value = readStdin();
      if (value === "") throw new CtlError(ExitCode.BadArgs, usage);
    }
  }
  let lease: bigint;
  try {
    lease = parseGoInt(f.lease ?? "0", 16);
  } catch (err) {
    throw new CtlError(ExitCode.BadArgs, `bad lease ID (${(err as Error).message}), expecting ID in Hex`);
  }
  return {
    key: Buffer.from(args[0]!),
    value: Buffer.from(value),
    lease: lease.toString(),
    prev_kv: f.prevKv ?? false,
    ignore_value: f.ignoreValue ?? false,
    ignore_lease: f.ignoreLease ?? false,
  };
}

/**
 * The key and range_end of get/del as etcdctl computes them: an explicit range_end argument,
 * --prefix (the prefix's end; "" means every key) or --from-key ("\0").
 */
function keyRange(args: readonly string[], f: { prefix?: boolean; fromKey?: boolean }): { key: Buffer; rangeEnd: Buffer } {
  let key: Buffer = Buffer.from(args[0]!);
  let rangeEnd: Buffer = Buffer.alloc(0);
  if (args.length > 1) {
    if (f.prefix || f.fromKey) {
      throw new CtlError(ExitCode.BadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
    }
    rangeEnd = Buffer.from(args[1]!);
  }
  if (f.prefix) {
    if (key.length === 0) {
      key = NUL;
      rangeEnd = NUL;
    } else rangeEnd = prefixEnd(key);
  }
  if (f.fromKey) {
    if (key.length === 0) key = NUL;
    rangeEnd = NUL;
  }
  return { key, rangeEnd };
}

export function buildGet(args: readonly string[], f: GetFlags): RangeRequest {
  if (args.length === 0) {
    throw new CtlError(ExitCode.BadArgs, "get command needs one argument as key and an optional argument as range_end");
  }
  if (f.prefix && f.fromKey) {
    throw new CtlError(ExitCode.BadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
  }
  const consistency = f.consistency ?? "l";
  if (consistency !== "l" && consistency !== "s") {
    throw new CtlError(ExitCode.BadFeature, `unknown consistency flag ${JSON.stringify(consistency)}`);
  }
  const { key, rangeEnd } = keyRange(args, f);
  const rev = intFlag("rev", f.rev);
  const order = (f.order ?? "").toUpperCase();
  let sortOrder: SortOrder = "NONE";
  if (order === "ASCEND") sortOrder = "ASCEND";
  else if (order === "DESCEND") sortOrder = "DESCEND";
  else if (order !== "") throw new CtlError(ExitCode.BadFeature, `bad sort order ${f.order ?? ""}`);
  const targets: Record<string, SortTarget> = { "": "KEY", KEY: "KEY", CREATE: "CREATE", MODIFY: "MOD", VALUE: "VALUE", VERSION: "VERSION" };
  const sortTarget = targets[(f.sortBy ?? "").toUpperCase()];
  if (sortTarget === undefined) throw new CtlError(ExitCode.BadFeature, `bad sort target ${f.sortBy ?? ""}`);
  // The server returns keys in ascending order anyway, so clientv3 drops that redundant sort.
  if (sortTarget === "KEY" && sortOrder === "ASCEND") sortOrder = "NONE";
  return {
    key,
    range_end: rangeEnd,
    limit: intFlag("limit", f.limit),
    revision: BigInt(rev) > 0n ? rev : "0",
    sort_order: sortOrder,
    sort_target: sortTarget,
    serializable: consistency === "s",
    keys_only: f.keysOnly ?? false,
    count_only: f.countOnly ?? false,
    min_mod_revision: "0",
    max_mod_revision: "0",
    min_create_revision: "0",
    max_create_revision: "0",
  };
}

export function buildDel(args: readonly string[], f: DelFlags): DeleteRangeRequest {
  if (args.length === 0 || args.length > 2) {
    throw new CtlError(ExitCode.BadArgs, "del command needs one argument as key and an optional argument as range_end");
  }
  if (f.prefix && f.fromKey) {
    throw new CtlError(ExitCode.BadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
  }
  const { key, rangeEnd } = keyRange(args, f);
  return { key, range_end: rangeEnd, prev_kv: f.prevKv ?? false };
}
