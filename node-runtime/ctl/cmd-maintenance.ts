/** endpoint health | status, alarm list | disarm, defrag, snapshot save | status | restore, version */
import * as grpc from "@grpc/grpc-js";
import type { Command } from "commander";
import { version } from "../../package.json";
import { closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { BoltReader } from "../kv/etcd-backend/bbolt-reader";
import { snapshotStatus, type SnapshotStatus } from "../kv/etcd-backend/status";
import { restoreSnapshot, RestoreError } from "../server/snapshot-restore";
import type { AlarmMember, AlarmResponse, DefragmentResponse, MembersResponse, RangeResponse, SnapshotResponse, StatusResponse } from "../server/etcd-types";
import type { Run } from "./cmd-kv";
import type { Connection } from "./connection";
import type { CommandContext } from "./context";
import { CtlError, ExitCode, rpcErrorMessage } from "./errors";
import { goJson } from "./go-json";
import { goDuration, hexId, humanizeBytes, renderTable } from "./go-format";
import { unsupportedFormat } from "./print-kv";

export const API_VERSION = "3.4";

async function clusterEndpoints(ctx: CommandContext, cluster: boolean): Promise<string[]> {
  if (!cluster) return ctx.globals.endpoints;
  const r = await ctx.conn().unary<object, MembersResponse>("Cluster", "MemberList", {});
  return r.members.flatMap((m) => m.clientURLs);
}

interface EpHealth {
  ep: string;
  health: boolean;
  took: string;
  error: string;
}

async function checkHealth(conn: Connection, ep: string): Promise<EpHealth> {
  const start = process.hrtime.bigint();
  const target = conn.targetFor(ep);
  let error = "";
  try {
    await conn.unary<object, RangeResponse>("KV", "Range", { key: Buffer.from("health") }, target);
  } catch (err) {
    const msg = rpcErrorMessage(err);
    // A permission error still proves the cluster commits proposals.
    if (msg !== "etcdserver: permission denied") error = msg;
  }
  const took = goDuration(process.hrtime.bigint() - start);
  return { ep, health: error === "", took, error };
}

async function status(conn: Connection, ep: string): Promise<{ ep: string; resp?: StatusResponse; error?: string }> {
  try {
    return { ep, resp: await conn.unary<object, StatusResponse>("Maintenance", "Status", {}, conn.targetFor(ep)) };
  } catch (err) {
    return { ep, error: rpcErrorMessage(err) };
  }
}

function alarmText(a: AlarmMember): string {
  // gogoproto's compact text form: zero-valued fields are left out, a space after each field.
  return (a.memberID !== "0" ? `memberID:${a.memberID} ` : "") + (a.alarm !== "NONE" ? `alarm:${a.alarm} ` : "");
}

function printAlarms(ctx: CommandContext, r: AlarmResponse): void {
  if (ctx.globals.writeOut === "simple") ctx.io.out(r.alarms.map((a) => alarmText(a) + "\n").join(""));
  else if (ctx.globals.writeOut === "json") ctx.io.out(goJson("etcdserverpb.AlarmResponse", r) + "\n");
  else throw unsupportedFormat(ctx.globals.writeOut);
}

export function registerMaintenance(program: Command, run: Run): void {
  const endpoint = program.command("endpoint").description("Endpoint related commands");
  endpoint
    .command("health")
    .option("--cluster", "use all endpoints from the cluster member list")
    .description("Checks the healthiness of endpoints specified in `--endpoints` flag")
    .action(
      run(async (ctx, _args, o) => {
        const eps = await clusterEndpoints(ctx, o["cluster"] === true);
        const results = await Promise.all(eps.map((ep) => checkHealth(ctx.conn(), ep)));
        switch (ctx.globals.writeOut) {
          case "simple":
            for (const h of results) {
              ctx.io.err(
                h.error === ""
                  ? `${h.ep} is healthy: successfully committed proposal: took = ${h.took}\n`
                  : `${h.ep} is unhealthy: failed to commit proposal: ${h.error}\n`,
              );
            }
            break;
          case "json":
            ctx.io.out(
              "[" +
                results
                  .map((h) => `{"endpoint":${JSON.stringify(h.ep)},"health":${h.health},"took":${JSON.stringify(h.took)}${h.error ? `,"error":${JSON.stringify(h.error)}` : ""}}`)
                  .join(",") +
                "]\n",
            );
            break;
          case "table":
            ctx.io.out(renderTable(["endpoint", "health", "took", "error"], results.map((h) => [h.ep, String(h.health), h.took, h.error])));
            break;
          default:
            throw unsupportedFormat(ctx.globals.writeOut);
        }
        if (results.some((h) => !h.health)) throw new CtlError(ExitCode.Error, "unhealthy cluster");
      }),
    );

  endpoint
    .command("status")
    .option("--cluster", "use all endpoints from the cluster member list")
    .description("Prints out the status of endpoints specified in `--endpoints` flag")
    .action(
      run(async (ctx, _args, o) => {
        const eps = await clusterEndpoints(ctx, o["cluster"] === true);
        const results = await Promise.all(eps.map((ep) => status(ctx.conn(), ep)));
        const ok = results.filter((r): r is { ep: string; resp: StatusResponse } => r.resp !== undefined);
        for (const r of results) if (r.error !== undefined) ctx.io.err(`Failed to get the status of endpoint ${r.ep} (${r.error})\n`);
        const rows = ok.map(({ ep, resp: s }) => [
          ep,
          hexId(s.header.member_id),
          s.version,
          humanizeBytes(Number(s.dbSize)),
          String(s.leader === s.header.member_id),
          String(s.isLearner),
          s.raftTerm,
          s.raftIndex,
          s.raftAppliedIndex,
          s.errors.join(", "),
        ]);
        switch (ctx.globals.writeOut) {
          case "simple":
            ctx.io.out(rows.map((r) => r.join(", ") + "\n").join(""));
            break;
          case "table":
            ctx.io.out(
              renderTable(["endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term", "raft index", "raft applied index", "errors"], rows),
            );
            break;
          case "json":
            ctx.io.out("[" + ok.map(({ ep, resp }) => `{"Endpoint":${JSON.stringify(ep)},"Status":${goJson("etcdserverpb.StatusResponse", resp)}}`).join(",") + "]\n");
            break;
          default:
            throw unsupportedFormat(ctx.globals.writeOut);
        }
        if (ok.length !== results.length) throw new CtlError(ExitCode.Error, "one or more endpoints are unavailable");
      }),
    );

  const alarm = program.command("alarm").description("Alarm related commands");
  alarm
    .command("list")
    .description("Lists all alarms")
    .action(
      run(async (ctx) => {
        const r = await ctx.conn().unary<object, AlarmResponse>("Maintenance", "Alarm", { action: "GET", memberID: "0", alarm: "NONE" });
        printAlarms(ctx, r);
      }),
    );
  alarm
    .command("disarm")
    .description("Disarms all alarms")
    .action(
      run(async (ctx) => {
        const list = await ctx.conn().unary<object, AlarmResponse>("Maintenance", "Alarm", { action: "GET", memberID: "0", alarm: "NONE" });
        const disarmed: AlarmMember[] = [];
        let last = list;
        for (const a of list.alarms) {
          last = await ctx.conn().unary<object, AlarmResponse>("Maintenance", "Alarm", { action: "DEACTIVATE", memberID: a.memberID, alarm: a.alarm });
          disarmed.push(...last.alarms);
        }
        printAlarms(ctx, { header: last.header, alarms: disarmed });
      }),
    );

  program
    .command("defrag")
    .option("--cluster", "use all endpoints from the cluster member list")
    .description("Defragments the storage of the etcd members with given endpoints")
    .action(
      run(async (ctx, _args, o) => {
        const eps = await clusterEndpoints(ctx, o["cluster"] === true);
        let failed = false;
        for (const ep of eps) {
          try {
            await ctx.conn().unary<object, DefragmentResponse>("Maintenance", "Defragment", {}, ctx.conn().targetFor(ep));
            ctx.io.out(`Finished defragmenting etcd member[${ep}]\n`);
          } catch (err) {
            ctx.io.err(`Failed to defragment etcd member[${ep}] (${rpcErrorMessage(err)})\n`);
            failed = true;
          }
        }
        if (failed) throw new CtlError(ExitCode.Error, "failed to defragment one or more members");
      }),
    );

  const snapshot = program.command("snapshot").description("Manages etcd node snapshots");
  snapshot
    .command("save")
    .argument("[filename]")
    .description("Stores an etcd node backend snapshot to a given file")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "snapshot save expects one argument");
        if (ctx.globals.endpoints.length !== 1) {
          throw new CtlError(ExitCode.BadArgs, `snapshot must be requested to one selected node, not multiple [${ctx.globals.endpoints.join(" ")}]`);
        }
        await saveSnapshot(ctx, args[0]!);
        ctx.io.out(`Snapshot saved at ${args[0]!}\n`);
      }),
    );

  snapshot
    .command("status")
    .argument("[filename]")
    .description("Gets backend snapshot status of a given file")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "snapshot status requires exactly one argument");
        printSnapshotStatus(ctx, fileStatus(args[0]!));
      }),
    );

  snapshot
    .command("restore")
    .argument("[filename]")
    .description("Restores an etcd member snapshot to an etcd directory")
    .option("--data-dir <dir>", "Path to the data directory (default <name>.etcd)")
    .option("--name <name>", "Human-readable name for this member", "default")
    .option("--initial-cluster <list>", "Initial cluster configuration for restore bootstrap", "default=https://localhost:2380")
    .option("--initial-cluster-token <token>", "Initial cluster token for the etcd cluster during restore bootstrap", "etcd-cluster")
    .option("--initial-advertise-peer-urls <urls>", "List of this member's peer URLs to advertise to the rest of the cluster", "https://localhost:2380")
    .option("--skip-hash-check [bool]", "Ignore snapshot integrity hash value (required if copied from data directory)")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "snapshot restore requires exactly one argument");
        const skip = o["skipHashCheck"];
        try {
          const r = await restoreSnapshot({
            file: args[0]!,
            name: String(o["name"]),
            initialCluster: String(o["initialCluster"]),
            initialClusterToken: String(o["initialClusterToken"]),
            initialAdvertisePeerUrls: String(o["initialAdvertisePeerUrls"]),
            ...(typeof o["dataDir"] === "string" ? { dataDir: o["dataDir"] } : {}),
            skipHashCheck: skip === true || (typeof skip === "string" && /^(1|t|true)$/i.test(skip)),
          });
          ctx.io.err(
            `restored snapshot ${args[0]!} into ${r.dataDir}: member ${r.memberId} of cluster ${r.clusterId}, ` +
              `revision ${r.revision}, compacted at ${r.compactRevision}, ${r.keys} keys, ${r.leases} leases\n`,
          );
        } catch (e) {
          if (e instanceof RestoreError) throw new CtlError(ExitCode.Error, e.message);
          throw e;
        }
      }),
    );

  program
    .command("version")
    .description("Prints the version of raftkvctl")
    .action(
      run(async (ctx) => {
        ctx.io.out(`raftkvctl version: ${version}\nAPI version: ${API_VERSION}\n`);
      }),
    );
}


/** Go's `rpc error: code = PermissionDenied desc = ...` for a gRPC status error. */
function goStatusText(err: Error): string {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code !== "number") return rpcErrorMessage(err);
  const name = grpc.status[e.code] ?? "Unknown";
  const goName = name === "CANCELLED" ? "Canceled" : name.toLowerCase().replace(/(^|_)([a-z])/g, (_, _u: string, c: string) => c.toUpperCase());
  return `rpc error: code = ${goName} desc = ${e.details ?? ""}`;
}

/** Streams the snapshot into `<path>.part`, fsyncs it, then renames it into place. */
export async function saveSnapshot(ctx: CommandContext, path: string): Promise<void> {
  const part = `${path}.part`;
  let fd: number;
  try {
    fd = openSync(part, "w", 0o600);
  } catch (err) {
    throw new CtlError(ExitCode.Interrupted, `could not open ${part} (${(err as Error).message})`);
  }
  try {
    const stream = await ctx.conn().serverStream("Maintenance", "Snapshot", {});
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (raw: unknown) => {
        const r = raw as SnapshotResponse;
        if (r.blob.length > 0) writeSync(fd, r.blob);
      });
      // etcdctl 3.4 exits 5 and shows the stream's error as Go's status text, not etcd's message alone.
      stream.on("error", (err: Error) => reject(new CtlError(ExitCode.Interrupted, goStatusText(err))));
      stream.on("end", () => resolve());
    });
    fsyncSync(fd);
    closeSync(fd);
    renameSync(part, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    unlinkSync(part);
    throw err;
  }
}

function fileStatus(path: string): SnapshotStatus {
  try {
    statSync(path);
  } catch (e) {
    throw new CtlError(ExitCode.Error, `stat ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`);
  }
  let reader: BoltReader;
  try {
    reader = BoltReader.openFile(path);
  } catch (e) {
    throw new CtlError(ExitCode.Error, (e as Error).message);
  }
  try {
    return snapshotStatus(reader);
  } catch (e) {
    throw new CtlError(ExitCode.Error, (e as Error).message);
  } finally {
    reader.close();
  }
}

/** etcdctl's printers for snapshot status (hash in hex without padding, size humanized). */
function printSnapshotStatus(ctx: CommandContext, s: SnapshotStatus): void {
  const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize)];
  switch (ctx.globals.writeOut) {
    case "simple":
      ctx.io.out(row.join(", ") + "\n");
      break;
    case "table":
      ctx.io.out(renderTable(["hash", "revision", "total keys", "total size"], [row]));
      break;
    case "json":
      ctx.io.out(`{"hash":${s.hash},"revision":${s.revision},"totalKey":${s.totalKey},"totalSize":${s.totalSize}}\n`);
      break;
    case "fields":
      ctx.io.out(`"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n`);
      break;
    default:
      throw unsupportedFormat(ctx.globals.writeOut);
  }
}
