/** lease grant | revoke | timetolive | list | keep-alive */
import type { Command } from "commander";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  ResponseHeader,
} from "../server/etcd-types";
import type { Run } from "./cmd-kv";
import type { CommandContext } from "./context";
import { CtlError, ExitCode, rpcFailure } from "./errors";
import { goJson, goJsonMembers, goStruct } from "./go-json";
import { goStringSlice, hexId16, parseGoInt } from "./go-format";
import { unsupportedFormat } from "./print-kv";

function headerMembers(h: ResponseHeader): string[] {
  return goJsonMembers("etcdserverpb.ResponseHeader", { ...h });
}

/** clientv3 embeds *pb.ResponseHeader in its lease responses, so Go inlines the header's fields. */
function inlineHeader(h: ResponseHeader, rest: ReadonlyArray<readonly [string, string]>): string {
  const own = goStruct(rest).slice(1, -1);
  return `{${[...headerMembers(h), ...(own === "" ? [] : [own])].join(",")}}`;
}

function leaseId(arg: string | undefined, what: string): string {
  if (arg === undefined) throw new CtlError(ExitCode.BadArgs, what);
  try {
    return parseGoInt(arg, 16).toString();
  } catch (err) {
    throw new CtlError(ExitCode.BadArgs, `bad lease ID arg (${(err as Error).message}), expecting ID in Hex`);
  }
}

function jsonOrSimple(ctx: CommandContext): "simple" | "json" {
  const f = ctx.globals.writeOut;
  if (f !== "simple" && f !== "json") throw unsupportedFormat(f);
  return f;
}

export function registerLease(program: Command, run: Run): void {
  const lease = program.command("lease").description("Lease related commands");

  lease
    .command("grant")
    .argument("[ttl]")
    .description("Creates leases")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "lease grant command needs TTL argument");
        let ttl: bigint;
        try {
          ttl = parseGoInt(args[0]!, 10);
        } catch (err) {
          throw new CtlError(ExitCode.BadArgs, `bad TTL (${(err as Error).message})`);
        }
        const fmt = jsonOrSimple(ctx);
        const r = await ctx
          .conn()
          .unary<object, LeaseGrantResponse>("Lease", "LeaseGrant", { TTL: ttl.toString(), ID: "0" })
          .catch((e: unknown) => Promise.reject(rpcFailure(e, ExitCode.Error, (m) => `failed to grant lease (${m})`)));
        if (fmt === "simple") ctx.io.out(`lease ${hexId16(r.ID)} granted with TTL(${r.TTL}s)\n`);
        else ctx.io.out(inlineHeader(r.header, [["ID", r.ID], ["TTL", r.TTL], ["Error", JSON.stringify(r.error)]]) + "\n");
      }),
    );

  lease
    .command("revoke")
    .argument("[leaseID]")
    .description("Revokes leases")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "lease revoke command needs 1 argument");
        const id = leaseId(args[0], "lease revoke command needs 1 argument");
        const fmt = jsonOrSimple(ctx);
        const r = await ctx
          .conn()
          .unary<object, LeaseRevokeResponse>("Lease", "LeaseRevoke", { ID: id })
          .catch((e: unknown) => Promise.reject(rpcFailure(e, ExitCode.Error, (m) => `failed to revoke lease (${m})`)));
        if (fmt === "simple") ctx.io.out(`lease ${hexId16(id)} revoked\n`);
        else ctx.io.out(goJson("etcdserverpb.LeaseRevokeResponse", r) + "\n");
      }),
    );

  lease
    .command("timetolive")
    .argument("[leaseID]")
    .option("--keys", "Get keys attached to this lease")
    .description("Get lease information")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "lease timetolive command needs lease ID as argument");
        const id = leaseId(args[0], "lease timetolive command needs lease ID as argument");
        const fmt = jsonOrSimple(ctx);
        const keys = o["keys"] === true;
        const r = await ctx.conn().unary<object, LeaseTimeToLiveResponse>("Lease", "LeaseTimeToLive", { ID: id, keys });
        if (fmt === "simple") {
          if (r.grantedTTL === "0" && r.TTL === "-1") {
            ctx.io.out(`lease ${hexId16(r.ID)} already expired\n`);
            return;
          }
          let txt = `lease ${hexId16(r.ID)} granted with TTL(${r.grantedTTL}s), remaining(${r.TTL}s)`;
          if (keys) txt += `, attached keys(${goStringSlice(r.keys.map((k) => k.toString("utf8")))})`;
          ctx.io.out(txt + "\n");
        } else {
          const ks = r.keys.length === 0 ? "null" : `[${r.keys.map((k) => JSON.stringify(k.toString("base64"))).join(",")}]`;
          ctx.io.out(inlineHeader(r.header, [["id", r.ID], ["ttl", r.TTL], ["granted-ttl", r.grantedTTL], ["keys", ks]]) + "\n");
        }
      }),
    );

  lease
    .command("list")
    .description("List all active leases")
    .action(
      run(async (ctx) => {
        const fmt = jsonOrSimple(ctx);
        const r = await ctx
          .conn()
          .unary<object, LeaseLeasesResponse>("Lease", "LeaseLeases", {})
          .catch((e: unknown) => Promise.reject(rpcFailure(e, ExitCode.Error, (m) => `failed to list leases (${m})`)));
        if (fmt === "simple") {
          ctx.io.out(`found ${r.leases.length} leases\n` + r.leases.map((l) => `${hexId16(l.ID)}\n`).join(""));
        } else {
          const leases = r.leases.length === 0 ? "null" : `[${r.leases.map((l) => `{"id":${l.ID}}`).join(",")}]`;
          ctx.io.out(inlineHeader(r.header, [["leases", leases]]) + "\n");
        }
      }),
    );

  lease
    .command("keep-alive")
    .argument("[leaseID]")
    .option("--once", "Resets the keep-alive time to its original value and exits immediately")
    .description("Keeps leases alive (renew)")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "lease keep-alive command needs lease ID as argument");
        const id = leaseId(args[0], "lease keep-alive command needs lease ID as argument");
        const fmt = jsonOrSimple(ctx);
        await keepAlive(ctx, id, fmt, o["once"] === true);
      }),
    );
}

async function keepAlive(ctx: CommandContext, id: string, fmt: "simple" | "json", once: boolean): Promise<void> {
  const stream = await ctx.conn().bidiStream("Lease", "LeaseKeepAlive");
  const print = (r: LeaseKeepAliveResponse): void => {
    if (fmt === "simple") ctx.io.out(`lease ${hexId16(r.ID)} keepalived with TTL(${r.TTL})\n`);
    else ctx.io.out(inlineHeader(r.header, [["ID", r.ID], ["TTL", r.TTL]]) + "\n");
  };
  await new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: CtlError): void => {
      if (timer) clearTimeout(timer);
      stream.cancel();
      if (err) reject(err);
      else resolve();
    };
    stream.on("data", (raw: unknown) => {
      const r = raw as LeaseKeepAliveResponse;
      if (BigInt(r.TTL) <= 0n) {
        // The lease is gone: --once reports it as an error, the loop ends with etcdctl's notice.
        if (once) finish(new CtlError(ExitCode.BadConnection, "etcdserver: requested lease not found"));
        else {
          if (fmt === "simple") ctx.io.out(`lease ${hexId16(id)} expired or revoked.\n`);
          finish();
        }
        return;
      }
      print(r);
      if (once) return finish();
      // Renew at a third of the TTL, as clientv3 does.
      timer = setTimeout(() => stream.write({ ID: id }), Math.max(500, (Number(r.TTL) * 1000) / 3));
    });
    stream.on("error", (err: Error) => {
      if (timer) clearTimeout(timer);
      reject(rpcFailure(err, ExitCode.BadConnection));
    });
    stream.on("end", () => finish());
    stream.write({ ID: id });
  });
}
