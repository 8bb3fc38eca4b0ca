/** put, get, del, txn, compaction and watch. */
import type { Command } from "commander";
import type {
  CompactionResponse,
  DeleteRangeResponse,
  PutResponse,
  RangeResponse,
  TxnResponse,
  WatchResponse,
} from "../server/etcd-types";
import type { CommandContext } from "./context";
import { CtlError, ExitCode, rpcErrorMessage } from "./errors";
import { parseGoInt } from "./go-format";
import { buildDel, buildGet, buildPut, prefixEnd } from "./kv-ops";
import { printDel, printGet, printPut, printTxn, printWatch, unsupportedFormat } from "./print-kv";
import { parseTxn } from "./txn-parse";
import { omitEmptyBytes } from "./connection";

export type Run = (action: (ctx: CommandContext, args: string[], opts: Record<string, unknown>) => Promise<void>) => (...a: unknown[]) => Promise<void>;

const s = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const b = (v: unknown): boolean => v === true;

export function registerKv(program: Command, run: Run): void {
  program
    .command("put")
    .description("Puts the given key into the store")
    .argument("[key]")
    .argument("[value]")
    .option("--lease <id>", "lease ID (in hexadecimal) to attach to the key", "0")
    .option("--prev-kv", "return the previous key-value pair before modification")
    .option("--ignore-value", "updates the key using its current value")
    .option("--ignore-lease", "updates the key using its current lease")
    .action(
      run(async (ctx, args, o) => {
        const req = buildPut(args, { lease: s(o["lease"]) ?? "0", prevKv: b(o["prevKv"]), ignoreValue: b(o["ignoreValue"]), ignoreLease: b(o["ignoreLease"]) }, ctx.stdin);
        checkFormat(ctx, ["simple", "json", "fields"]);
        const res = await ctx.conn().unary<typeof req, PutResponse>("KV", "Put", req);
        ctx.io.out(printPut(res, { format: ctx.globals.writeOut, hex: ctx.globals.hex }));
      }),
    );

  program
    .command("get")
    .description("Gets the key or a range of keys")
    .argument("[key]")
    .argument("[range_end]")
    .option("--consistency <l|s>", "Linearizable(l) or Serializable(s)", "l")
    .option("--order <order>", "Order of results; ASCEND or DESCEND (ASCEND by default)", "")
    .option("--sort-by <target>", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION", "")
    .option("--limit <n>", "Maximum number of results", "0")
    .option("--prefix", "Get keys with matching prefix")
    .option("--from-key", "Get keys that are greater than or equal to the given key using byte compare")
    .option("--rev <n>", "Specify the kv revision", "0")
    .option("--keys-only", "Get only the keys")
    .option("--count-only", "Get only the count (json or fields output)")
    .option("--print-value-only", 'Only write values when using the "simple" output format')
    .action(
      run(async (ctx, args, o) => {
        const f = {
          consistency: s(o["consistency"]) ?? "l",
          order: s(o["order"]) ?? "",
          sortBy: s(o["sortBy"]) ?? "",
          limit: s(o["limit"]) ?? "0",
          rev: s(o["rev"]) ?? "0",
          prefix: b(o["prefix"]),
          fromKey: b(o["fromKey"]),
          keysOnly: b(o["keysOnly"]),
          countOnly: b(o["countOnly"]),
        };
        const req = buildGet(args, f);
        const valueOnly = b(o["printValueOnly"]);
        if (valueOnly && ctx.globals.writeOut !== "simple") {
          throw new CtlError(ExitCode.BadArgs, "print-value-only is only for `--write-out=simple`");
        }
        if (f.countOnly && ctx.globals.writeOut === "simple") {
          throw new CtlError(ExitCode.BadArgs, "--count-only is only for `--write-out=json` or `--write-out=fields`");
        }
        checkFormat(ctx, ["simple", "json", "fields"]);
        const res = await ctx.conn().unary<typeof req, RangeResponse>("KV", "Range", req);
        ctx.io.out(printGet(res, { format: ctx.globals.writeOut, hex: ctx.globals.hex, valueOnly }));
      }),
    );

  program
    .command("del")
    .description("Removes the specified key or range of keys [key, range_end)")
    .argument("[key]")
    .argument("[range_end]")
    .option("--prefix", "delete keys with matching prefix")
    .option("--prev-kv", "return deleted key-value pairs")
    .option("--from-key", "delete keys that are greater than or equal to the given key using byte compare")
    .action(
      run(async (ctx, args, o) => {
        const req = buildDel(args, { prefix: b(o["prefix"]), prevKv: b(o["prevKv"]), fromKey: b(o["fromKey"]) });
        checkFormat(ctx, ["simple", "json", "fields"]);
        const res = await ctx.conn().unary<typeof req, DeleteRangeResponse>("KV", "DeleteRange", req);
        ctx.io.out(printDel(res, { format: ctx.globals.writeOut, hex: ctx.globals.hex }));
      }),
    );

  program
    .command("txn")
    .description("Txn processes all the requests in one transaction")
    .option("-i, --interactive", "Input transaction in interactive mode")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 0) throw new CtlError(ExitCode.BadArgs, "txn command does not accept argument");
        const interactive = b(o["interactive"]);
        const txn = parseTxn(ctx.stdinLine, (p) => {
          if (interactive) ctx.io.out(p);
        });
        checkFormat(ctx, ["simple", "json"]);
        const res = await ctx.conn().unary<typeof txn, TxnResponse>("KV", "Txn", txn);
        ctx.io.out(printTxn(res, { format: ctx.globals.writeOut, hex: ctx.globals.hex }));
      }),
    );

  program
    .command("compaction")
    .description("Compacts the event history in etcd")
    .argument("[revision]")
    .option("--physical", "'true' to wait for compaction to physically remove all old revisions")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "compaction command needs 1 argument");
        let rev: bigint;
        try {
          rev = parseGoInt(args[0]!, 10);
        } catch (err) {
          throw new CtlError(ExitCode.Error, (err as Error).message);
        }
        await ctx.conn().unary<object, CompactionResponse>("KV", "Compact", { revision: rev.toString(), physical: b(o["physical"]) });
        ctx.io.out(`compacted revision ${rev}\n`);
      }),
    );

  program
    .command("watch")
    .description("Watches events stream on keys or prefixes")
    .argument("[key]")
    .argument("[range_end]")
    .option("--prefix", "Watch on a prefix if prefix is set")
    .option("--rev <n>", "Revision to start watching", "0")
    .option("--prev-kv", "get the previous key-value pair before the event happens")
    .action(
      run(async (ctx, args, o) => {
        await watch(ctx, args, { prefix: b(o["prefix"]), rev: s(o["rev"]) ?? "0", prevKv: b(o["prevKv"]) });
      }),
    );
}

function checkFormat(ctx: CommandContext, supported: readonly string[]): void {
  if (!supported.includes(ctx.globals.writeOut)) throw unsupportedFormat(ctx.globals.writeOut);
}

interface WatchFlags {
  prefix: boolean;
  rev: string;
  prevKv: boolean;
}

/** Prints events until the server cancels the watch (etcdctl then exits 5) or the user stops it. */
async function watch(ctx: CommandContext, args: string[], f: WatchFlags): Promise<void> {
  const envKey = process.env["ETCDCTL_WATCH_KEY"] ?? "";
  const envRange = process.env["ETCDCTL_WATCH_RANGE_END"] ?? "";
  if (envKey === "" && envRange !== "") {
    throw new CtlError(ExitCode.BadArgs, `ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=${JSON.stringify(envRange)}`);
  }
  const all = envKey !== "" ? [envKey, ...(envRange !== "" ? [envRange] : []), ...args] : args;
  if (all.length < 1 || all.length > 2) throw new CtlError(ExitCode.BadArgs, "bad number of arguments");
  if (f.prefix && all.length === 2) throw new CtlError(ExitCode.BadArgs, "`range_end` and `--prefix` are mutually exclusive");
  checkFormat(ctx, ["simple", "json"]);
  let rev: bigint;
  try {
    rev = parseGoInt(f.rev, 10);
  } catch (err) {
    throw new CtlError(ExitCode.BadArgs, `invalid argument ${JSON.stringify(f.rev)} for "--rev" flag: ${(err as Error).message}`);
  }
  const key = Buffer.from(all[0]!);
  const rangeEnd = all.length === 2 ? Buffer.from(all[1]!) : f.prefix ? (key.length === 0 ? Buffer.from([0]) : prefixEnd(key)) : Buffer.alloc(0);
  const stream = await ctx.conn().bidiStream("Watch", "Watch");
  const print = { format: ctx.globals.writeOut, hex: ctx.globals.hex };
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (raw: unknown) => {
      const r = raw as WatchResponse;
      if (r.canceled) ctx.io.err(`watch was canceled (${r.cancel_reason || (r.compact_revision !== "0" ? "etcdserver: mvcc: required revision has been compacted" : "canceled")})\n`);
      if (r.created && r.events.length === 0 && !r.canceled) return;
      ctx.io.out(printWatch(r, print));
      if (r.canceled) {
        stream.cancel();
        reject(new CtlError(ExitCode.Interrupted, "watch is canceled by the server"));
      }
    });
    stream.on("error", (err: Error) => {
      reject(new CtlError(ExitCode.Interrupted, rpcErrorMessage(err)));
    });
    stream.on("end", () => resolve());
    stream.write(omitEmptyBytes({
      create_request: { key, range_end: rangeEnd, start_revision: rev.toString(), prev_kv: f.prevKv, progress_notify: false, filters: [] },
    }));
  });
  throw new CtlError(ExitCode.Interrupted, "watch is canceled by the server");
}
