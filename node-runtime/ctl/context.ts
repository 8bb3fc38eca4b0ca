/** What every command gets: resolved global options, a lazily opened connection, output, stdin. */
import { readFileSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { Connection, resolveGlobals, type GlobalOptions, type RawGlobalFlags } from "./connection";
import type { Output } from "./output";

export interface CommandContext {
  globals: GlobalOptions;
  conn(): Connection;
  io: Output;
  /** All of stdin, read once on first use. */
  stdin(): string;
  /** The next line of stdin (read as it is typed at a terminal); undefined at end of input. */
  stdinLine(): string | undefined;
}

export function makeContext(flags: RawGlobalFlags, io: Output, env: NodeJS.ProcessEnv = process.env): CommandContext & { close(): void } {
  const globals = resolveGlobals(flags, env);
  let conn: Connection | undefined;
  let input: string | undefined;
  const lines = new StdinLines();
  return {
    globals,
    io,
    conn: () => (conn ??= new Connection(globals)),
    stdin: () => (input ??= readStdin()),
    stdinLine: () => lines.next(),
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

/**
 * Reads stdin incrementally and hands out whole lines, so a prompt can be answered at a
 * terminal before the rest of the input exists (etcdctl's `txn -i`).
 */
class StdinLines {
  private buf = "";
  private eof = false;
  private readonly chunk = Buffer.alloc(64 * 1024);
  private readonly decoder = new StringDecoder("utf8");

  next(): string | undefined {
    for (;;) {
      const nl = this.buf.indexOf("\n");
      if (nl !== -1) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return line;
      }
      if (this.eof) return undefined;
      let n: number;
      try {
        n = readSync(0, this.chunk, 0, this.chunk.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") {
          // Non-blocking stdin with nothing yet: wait briefly without spinning.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        if (code === "EOF") n = 0;
        else throw err;
      }
      if (n === 0) this.eof = true;
      else this.buf += this.decoder.write(this.chunk.subarray(0, n));
    }
  }
}
