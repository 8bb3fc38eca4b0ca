/** member list | add | remove | update | promote */
import type { Command } from "commander";
import type { MemberAddResponse, MembersResponse, RangeResponse } from "../server/etcd-types";
import type { Run } from "./cmd-kv";
import type { CommandContext } from "./context";
import { CtlError, ExitCode } from "./errors";
import { goJson } from "./go-json";
import { goQuote, hexId, hexIdSpace16, parseGoHexUint, renderTable } from "./go-format";
import { unsupportedFormat } from "./print-kv";

const MEMBER_HEADER = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"];

function memberRows(r: MembersResponse): string[][] {
  return r.members.map((m) => [
    hexId(m.ID),
    m.name === "" ? "unstarted" : "started",
    m.name,
    m.peerURLs.join(","),
    m.clientURLs.join(","),
    String(m.isLearner),
  ]);
}

function memberId(arg: string | undefined, usage: string): string {
  if (arg === undefined) throw new CtlError(ExitCode.BadArgs, usage);
  try {
    return parseGoHexUint(arg).toString();
  } catch (err) {
    throw new CtlError(ExitCode.BadArgs, `bad member ID arg (${(err as Error).message}), expecting ID in Hex`);
  }
}

function jsonOrSimple(ctx: CommandContext): "simple" | "json" {
  const f = ctx.globals.writeOut;
  if (f !== "simple" && f !== "json") throw unsupportedFormat(f);
  return f;
}

function peerUrls(v: unknown): string[] {
  const urls = (typeof v === "string" ? v : "").split(",").filter((u) => u !== "");
  for (const u of urls) {
    if (!/^(https?|unixs?):\/\/[^/]+\/?$/.test(u)) throw new CtlError(ExitCode.BadArgs, `URL scheme must be http, https, unix, or unixs: ${u}`);
  }
  return urls;
}

export function registerMember(program: Command, run: Run): void {
  const member = program.command("member").description("Membership related commands");

  member
    .command("list")
    .description("Lists all members in the cluster")
    .action(
      run(async (ctx) => {
        const r = await ctx.conn().unary<object, MembersResponse>("Cluster", "MemberList", {});
        switch (ctx.globals.writeOut) {
          case "simple":
            ctx.io.out(memberRows(r).map((row) => row.join(", ") + "\n").join(""));
            break;
          case "table":
            ctx.io.out(renderTable(MEMBER_HEADER, memberRows(r)));
            break;
          case "json":
            ctx.io.out(goJson("etcdserverpb.MemberListResponse", r) + "\n");
            break;
          default:
            throw unsupportedFormat(ctx.globals.writeOut);
        }
      }),
    );

  member
    .command("add")
    .argument("[memberName]")
    .option("--peer-urls <urls>", "comma separated peer URLs for the new member.")
    .option("--learner", "indicates if the new member is raft learner")
    .description("Adds a member into the cluster")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "member name not provided");
        const name = args[0]!;
        const urls = peerUrls(o["peerUrls"]);
        if (urls.length === 0) throw new CtlError(ExitCode.BadArgs, "member peer urls not provided");
        const fmt = jsonOrSimple(ctx);
        const r = await ctx.conn().unary<object, MemberAddResponse>("Cluster", "MemberAdd", { peerURLs: urls, isLearner: o["learner"] === true });
        const newId = r.member?.ID ?? "0";
        if (fmt === "json") {
          ctx.io.out(goJson("etcdserverpb.MemberAddResponse", r) + "\n");
          return;
        }
        ctx.io.out(`Member ${hexIdSpace16(newId)} added to cluster ${hexIdSpace16(r.header.cluster_id)}\n`);
        // The answering member's list may lag after a failover; a quorum read syncs it first.
        let list = await ctx.conn().unary<object, MembersResponse>("Cluster", "MemberList", {});
        for (let i = 0; i < 10 && list.header.member_id !== r.header.member_id; i++) {
          await ctx.conn().unary<object, RangeResponse>("KV", "Range", { key: Buffer.from("_") });
          list = await ctx.conn().unary<object, MembersResponse>("Cluster", "MemberList", {});
        }
        const conf: string[] = [];
        for (const m of list.members) {
          for (const u of m.peerURLs) conf.push(`${m.ID === newId ? name : m.name}=${u}`);
        }
        ctx.io.out(
          `\nETCD_NAME=${goQuote(name)}\n` +
            `ETCD_INITIAL_CLUSTER=${goQuote(conf.join(","))}\n` +
            `ETCD_INITIAL_ADVERTISE_PEER_URLS=${goQuote(urls.join(","))}\n` +
            `ETCD_INITIAL_CLUSTER_STATE="existing"\n`,
        );
      }),
    );

  const simpleChange = (verb: string, method: string, past: string, preposition: string, withUrls: boolean): void => {
    const cmd = member.command(verb).argument("[memberID]");
    if (withUrls) cmd.option("--peer-urls <urls>", "comma separated peer URLs for the updated member.");
    cmd.description(`${verb[0]!.toUpperCase()}${verb.slice(1)}s a member ${preposition} the cluster`).action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "member ID is not provided");
        const id = memberId(args[0], "member ID is not provided");
        const req: Record<string, unknown> = { ID: id };
        if (withUrls) {
          const urls = peerUrls(o["peerUrls"]);
          if (urls.length === 0) throw new CtlError(ExitCode.BadArgs, "member peer urls not provided");
          req["peerURLs"] = urls;
        }
        const fmt = jsonOrSimple(ctx);
        const r = await ctx.conn().unary<object, MembersResponse>("Cluster", method, req);
        if (fmt === "json") ctx.io.out(goJson(`etcdserverpb.${method}Response`, r) + "\n");
        else ctx.io.out(`Member ${hexIdSpace16(id)} ${past} ${preposition} cluster ${hexIdSpace16(r.header.cluster_id)}\n`);
      }),
    );
  };
  simpleChange("remove", "MemberRemove", "removed", "from", false);
  simpleChange("update", "MemberUpdate", "updated", "in", true);
  simpleChange("promote", "MemberPromote", "promoted", "in", false);
}
