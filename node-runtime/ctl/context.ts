/** What every command gets: resolved global options, a lazily opened connection, output, stdin. */
import { readFileSync } from "node:fs";
import { Connection, resolveGlobals, type GlobalOptions, type RawGlobalFlags } from "./connection";
import type { Output } from "./output";

export interface CommandContext {
  globals: GlobalOptions;
  conn(): Connection;
  io: Output;
  /** All of stdin, read once on first use. */
  stdin(): string;
}

export function makeContext(flags: RawGlobalFlags, io: Output, env: NodeJS.ProcessEnv = process.env): CommandContext & { close(): void } {
  const globals = resolveGlobals(flags, env);
  let conn: Connection | undefined;
  let input: string | undefined;
  return {
    globals,
    io,
    conn: () => (conn ??= new Connection(globals)),
    stdin: () => (input ??= readStdin()),
    close: () => conn?.close(),
  };
}

function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch (err) {
    // A closed or absent stdin reads as empty, like io.ReadAll on a closed pipe.
    if ((err as NodeJS.ErrnoException).code === "EAGAIN" || (err as NodeJS.ErrnoException).code === "EOF") return "";
    throw err;
  }
}
