/** What every command gets: resolved global options, a lazily opened connection, output, stdin. */
import { readFileSync, readSync } from "node:fs";
import { isatty } from "node:tty";
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
    conn: () => {
      if (conn === undefined && globals.auth !== undefined && globals.auth.password === undefined) {
        globals.auth.password = askLoginPassword(io, lines);
      }
      return (conn ??= new Connection(globals));
    },
    stdin: () => (input ??= readStdin()),
    stdinLine: () => lines.next(),
    close: () => conn?.close(),
  };
}

/**
 * `--user name` without a password, as etcdctl 3.4 asks for it (speakeasy.Ask("Password: ")) when
 * a command first needs the server: the prompt on stdout, one line from stdin, then a newline on
 * stdout. At a terminal the typed password is not echoed; from a pipe the first line is taken
 * (a trailing CR dropped). End of input gives an empty password, which logs nobody in.
 */
function askLoginPassword(io: Output, lines: StdinLines): string {
  io.out("Password: ");
  const password = isatty(0) ? readTerminalLine() : (lines.next() ?? "");
  io.out("\n");
  return password.replace(/\r$/, "");
}

/**
 * One line typed at the terminal on fd 0, not echoed: raw mode, so the keys come one by one and
 * Ctrl-C (which raw mode does not turn into SIGINT) restores the terminal before exiting 130.
 */
function readTerminalLine(): string {
  const stdin = process.stdin as NodeJS.ReadStream & { setRawMode?: (raw: boolean) => void };
  stdin.setRawMode?.(true);
  const byte = Buffer.alloc(1);
  const bytes: number[] = [];
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(0, byte, 0, 1, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        continue;
      }
      const b = byte[0]!;
      if (n === 0 || b === 0x0d || b === 0x0a || b === 0x04) break; // end of input, Enter, Ctrl-D
      if (b === 0x03) {
        stdin.setRawMode?.(false);
        process.stdout.write("\n");
        process.exit(130);
      }
      if (b === 0x7f || b === 0x08) bytes.pop(); // backspace
      else bytes.push(b);
    }
  } finally {
    stdin.setRawMode?.(false);
  }
  return Buffer.from(bytes).toString("utf8");
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
