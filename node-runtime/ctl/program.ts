/**
 * raftkvctl's command line: etcdctl's global flags and commands on commander. Every failure
 * ends in one `Error: ...` line on stderr and etcdctl's exit code.
 */
import { Command, CommanderError, Option } from "commander";
import { registerKv, type Run } from "./cmd-kv";
import { registerLease } from "./cmd-lease";
import { registerMember } from "./cmd-cluster";
import { registerMaintenance } from "./cmd-maintenance";
import { registerBackup } from "./cmd-backup";
import { registerAuth } from "./cmd-auth";
import type { RawGlobalFlags } from "./connection";
import { makeContext } from "./context";
import { CtlError, ExitCode } from "./errors";
import { processOutput, type Output } from "./output";

function buildProgram(io: Output, env: NodeJS.ProcessEnv, onClose: (close: () => void) => void): Command {
  const program = new Command("raftkvctl");
  program
    .description("A command line client for raftkv and etcd (etcdctl v3 compatible)")
    .option("--endpoints <list>", "gRPC endpoints (default 127.0.0.1:2379)")
    .option("--cacert <file>", "verify certificates of TLS-enabled secure servers using this CA bundle")
    .option("--cert <file>", "identify secure client using this TLS certificate file")
    .option("--key <file>", "identify secure client using this TLS key file")
    .option("--insecure-skip-tls-verify", "skip server certificate verification (testing only)")
    .option("--insecure-transport <bool>", "disable transport security for client connections (default true)")
    .option("--dial-timeout <duration>", "dial timeout for client connections (default 2s)")
    .option("--command-timeout <duration>", "timeout for short running command (default 5s)")
    .addOption(new Option("-w, --write-out <format>", "set the output format (json, simple, table, fields)"))
    .option("--hex", "print byte strings as hex encoded strings")
    .option("--user <name[:password]>", "username[:password] for authentication")
    .option("--password <password>", "password for authentication (if this option is used, --user option shouldn't include password)")
    .showHelpAfterError(false)
    .enablePositionalOptions(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: () => undefined,
      outputError: () => undefined,
    });

  const run: Run = (action) => async (...a: unknown[]) => {
    // commander passes (...arguments, options, command)
    const cmd = a[a.length - 1] as Command;
    const opts = a[a.length - 2] as Record<string, unknown>;
    // A variadic argument ([args...]) arrives as one array: flatten it.
    const args = (a.slice(0, -2) as Array<string | string[] | undefined>).flat().filter((x): x is string => x !== undefined);
    const g = cmd.optsWithGlobals() as Record<string, unknown>;
    const flags: RawGlobalFlags = {};
    for (const k of ["endpoints", "cacert", "cert", "key", "dialTimeout", "commandTimeout", "writeOut", "user", "password"] as const) {
      if (typeof g[k] === "string") flags[k] = g[k] as string;
    }
    if (g["insecureSkipTlsVerify"] === true) flags.insecureSkipTlsVerify = true;
    if (g["hex"] === true) flags.hex = true;
    if (typeof g["insecureTransport"] === "string") flags.insecureTransport = /^(1|t|true)$/i.test(g["insecureTransport"] as string);
    const ctx = makeContext(flags, io, env);
    onClose(ctx.close);
    await action(ctx, args, opts);
  };

  registerKv(program, run);
  registerLease(program, run);
  registerMember(program, run);
  registerMaintenance(program, run);
  registerBackup(program, run);
  registerAuth(program, run);
  for (const c of program.commands) {
    c.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: () => undefined, outputError: () => undefined });
    for (const sub of c.commands) sub.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: () => undefined, outputError: () => undefined });
  }
  return program;
}

/** Commander's wording turned into etcdctl's (cobra's) where one exists. */
function commanderMessage(msg: string): string {
  const m = msg.replace(/^error: /, "");
  const unknown = /^unknown option '([^']+)'/.exec(m);
  if (unknown) return `unknown flag: ${unknown[1]!}`;
  const cmd = /^unknown command '([^']+)'/.exec(m);
  if (cmd) return `unknown command "${cmd[1]!}" for "raftkvctl"`;
  return m;
}

/**
 * Go's pflag accepts `--flag=true|false` for boolean flags; commander does not. The boolean
 * flags written that way in etcdctl usage are rewritten: true to the bare flag, false to its
 * `--no-` form where the default is true, or dropped where the default is false.
 */
const GO_BOOL_DEFAULTS: Readonly<Record<string, boolean>> = { interactive: true, detail: false, prefix: false, "from-key": false };

export function goBoolFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of argv) {
    const m = /^--([a-z-]+)=(.*)$/.exec(a);
    const def = m ? GO_BOOL_DEFAULTS[m[1]!] : undefined;
    if (!m || def === undefined) {
      out.push(a);
      continue;
    }
    if (/^(1|t|true)$/i.test(m[2]!)) out.push(`--${m[1]!}`);
    else if (/^(0|f|false)$/i.test(m[2]!)) {
      if (def) out.push(`--no-${m[1]!}`);
    } else out.push(a);
  }
  return out;
}

/** Runs raftkvctl with argv (without node and script) and returns the exit code. */
export async function runCtl(argv: readonly string[], io: Output = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const closers: Array<() => void> = [];
  const program = buildProgram(io, env, (c) => closers.push(c));
  try {
    await program.parseAsync(goBoolFlags(argv), { from: "user" });
    return ExitCode.Success;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.code === "commander.version") return ExitCode.Success;
      io.err(`Error: ${commanderMessage(err.message)}\n`);
      return ExitCode.Error;
    }
    if (err instanceof CtlError) {
      io.err(`Error: ${err.message}\n`);
      return err.exitCode;
    }
    io.err(`Error: ${err instanceof Error ? err.message : String(err)}\n`);
    return ExitCode.Error;
  } finally {
    for (const c of closers) c();
  }
}
