/**
 * `raftkvctl backup run | fetch | list`: the backup agent the deployment's timer runs on every
 * master, and the tools an operator uses to find and fetch a backup for a restore. Settings come
 * from flags or the RAFTKV_BACKUP_* variables of /etc/raftkv/backup.env on a deployed host.
 */
import * as os from "node:os";
import type { Command } from "commander";
import { fetchSnapshot, runBackup, type MemberView } from "../backup/agent";
import { BACKUP_REASONS, backupsNewestFirst, BackupError, normalizePrefix, type BackupReason } from "../backup/naming";
import { S3BackupStore, type S3Settings } from "../backup/s3-store";
import type { MembersResponse, StatusResponse } from "../server/etcd-types";
import type { Run } from "./cmd-kv";
import { saveSnapshot } from "./cmd-maintenance";
import type { CommandContext } from "./context";
import { CtlError, ExitCode } from "./errors";
import { renderTable } from "./go-format";

function setting(o: Record<string, unknown>, flag: string, env: string): string | undefined {
  const v = o[flag];
  if (typeof v === "string" && v !== "") return v;
  const e = process.env[env];
  return e === undefined || e === "" ? undefined : e;
}

function required(o: Record<string, unknown>, flag: string, env: string, what: string): string {
  const v = setting(o, flag, env);
  if (v === undefined) throw new CtlError(ExitCode.BadArgs, `${what}: set --${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} or ${env}`);
  return v;
}

function nonNegative(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new CtlError(ExitCode.BadArgs, `${what} must be a number >= 0, got ${JSON.stringify(text)}`);
  return n;
}

function s3Settings(o: Record<string, unknown>): S3Settings {
  const region = setting(o, "region", "AWS_REGION");
  const endpoint = setting(o, "s3Endpoint", "RAFTKV_BACKUP_S3_ENDPOINT");
  return { ...(region !== undefined ? { region } : {}), ...(endpoint !== undefined ? { endpoint } : {}) };
}

function store(o: Record<string, unknown>): S3BackupStore {
  try {
    return new S3BackupStore(s3Settings(o));
  } catch (e) {
    throw asCtl(e);
  }
}

function asCtl(e: unknown): unknown {
  return e instanceof BackupError ? new CtlError(ExitCode.Error, e.message) : e;
}

/** The member behind --endpoints (the first that answers), as the agent sees it. */
function memberView(ctx: CommandContext): MemberView {
  return {
    identify: async () => {
      const status = await ctx.conn().unary<object, StatusResponse>("Maintenance", "Status", {});
      const members = await ctx.conn().unary<object, MembersResponse>("Cluster", "MemberList", {});
      const nameOf = (id: string) => members.members.find((m) => String(m.ID) === id)?.name;
      const self = String(status.header.member_id);
      const name = nameOf(self);
      if (name === undefined || name === "") throw new CtlError(ExitCode.Error, `member ${self} is not in the member list`);
      const leader = String(status.leader) === "0" ? undefined : (nameOf(String(status.leader)) ?? String(status.leader));
      return { name, leader };
    },
    snapshot: (file) => saveSnapshot(ctx, file),
  };
}

function prefixOf(o: Record<string, unknown>): string {
  try {
    return normalizePrefix(setting(o, "prefix", "RAFTKV_BACKUP_PREFIX") ?? "");
  } catch (e) {
    throw asCtl(e);
  }
}

export function registerBackup(program: Command, run: Run): void {
  const backup = program.command("backup").description("Backs the cluster up to S3 and fetches backups (raftkv)");
  const s3Options = (c: Command) =>
    c
      .option("--region <region>", "AWS region of the bucket (env AWS_REGION)")
      .option("--s3-endpoint <url>", "an S3-compatible endpoint instead of AWS (env RAFTKV_BACKUP_S3_ENDPOINT)");

  s3Options(
    backup
      .command("run")
      .description("Takes a snapshot from the endpoint's member and uploads it")
      .option("--bucket <name>", "bucket (env RAFTKV_BACKUP_BUCKET)")
      .option("--prefix <prefix>", "key prefix this cluster writes under (env RAFTKV_BACKUP_PREFIX)")
      .option("--reason <reason>", `why: ${BACKUP_REASONS.join(", ")}`, "manual")
      .option("--if-leader", "upload only if the member is the cluster's leader (the scheduled run on every master)")
      .option("--skip-if-newer <seconds>", "skip if a backup for the same reason is younger than this")
      .option("--retention-days <days>", "remove backups older than this, never the newest (env RAFTKV_BACKUP_RETENTION_DAYS, default 7)")
      .option("--work-dir <dir>", "where the snapshot is staged (env RAFTKV_BACKUP_WORK_DIR, default the temp dir)")
      .option("--state-dir <dir>", "where metrics (raftkv_backup.prom) are written (env RAFTKV_BACKUP_STATE_DIR)"),
  ).action(
    run(async (ctx, args, o) => {
      if (args.length !== 0) throw new CtlError(ExitCode.BadArgs, "backup run takes no arguments");
      const reason = String(o["reason"]);
      if (!(BACKUP_REASONS as readonly string[]).includes(reason)) throw new CtlError(ExitCode.BadArgs, `--reason must be one of ${BACKUP_REASONS.join(", ")}`);
      const bucket = required(o, "bucket", "RAFTKV_BACKUP_BUCKET", "no bucket");
      const skip = typeof o["skipIfNewer"] === "string" ? nonNegative(o["skipIfNewer"], "--skip-if-newer") : undefined;
      const retentionDays = nonNegative(setting(o, "retentionDays", "RAFTKV_BACKUP_RETENTION_DAYS") ?? "7", "--retention-days");
      const stateDir = setting(o, "stateDir", "RAFTKV_BACKUP_STATE_DIR");
      const s = store(o);
      try {
        const outcome = await runBackup(memberView(ctx), s, {
          bucket,
          prefix: prefixOf(o),
          reason: reason as BackupReason,
          ifLeader: o["ifLeader"] === true,
          ...(skip !== undefined ? { skipIfNewerSec: skip } : {}),
          retentionDays,
          workDir: setting(o, "workDir", "RAFTKV_BACKUP_WORK_DIR") ?? os.tmpdir(),
          ...(stateDir !== undefined ? { stateDir } : {}),
        });
        ctx.io.out(`${outcome.line}\n`);
      } catch (e) {
        throw asCtl(e);
      } finally {
        s.close();
      }
    }),
  );

  s3Options(
    backup
      .command("fetch")
      .argument("[source]")
      .argument("[file]")
      .description("Fetches a snapshot: s3://bucket/key, the newest backup under s3://bucket/prefix/, or a local file"),
  ).action(
    run(async (ctx, args, o) => {
      if (args.length !== 2) throw new CtlError(ExitCode.BadArgs, "backup fetch expects a source and a file");
      let opened: S3BackupStore | undefined;
      try {
        const r = await fetchSnapshot(args[0]!, () => (opened = store(o)), args[1]!);
        ctx.io.out(`fetched ${r.from} into ${args[1]!}\n`);
      } catch (e) {
        throw asCtl(e);
      } finally {
        opened?.close();
      }
    }),
  );

  s3Options(
    backup
      .command("list")
      .description("Lists the backups under the prefix, newest first")
      .option("--bucket <name>", "bucket (env RAFTKV_BACKUP_BUCKET)")
      .option("--prefix <prefix>", "key prefix (env RAFTKV_BACKUP_PREFIX)"),
  ).action(
    run(async (ctx, _args, o) => {
      const bucket = required(o, "bucket", "RAFTKV_BACKUP_BUCKET", "no bucket");
      const s = store(o);
      try {
        const now = Date.now();
        const rows = backupsNewestFirst(await s.list(bucket, prefixOf(o))).map((b) => [
          `s3://${bucket}/${b.key}`,
          b.reason,
          b.member,
          String(b.revision),
          String(b.size),
          `${Math.round((now - b.taken.getTime()) / 1000)}s`,
        ]);
        if (ctx.globals.writeOut === "table") ctx.io.out(renderTable(["backup", "reason", "member", "revision", "size", "age"], rows));
        else ctx.io.out(rows.map((r) => r.join(", ") + "\n").join(""));
      } catch (e) {
        throw asCtl(e);
      } finally {
        s.close();
      }
    }),
  );
}
