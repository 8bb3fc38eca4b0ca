// Structured JSON logs, one line per event, shaped like etcd's zap output ("level", "ts", "msg")
// so the same log tooling reads both.
import pino from "pino";

export type Logger = pino.Logger;

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

const LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** A minimal writable target so tests can capture log lines without a file. */
export interface LogSink {
  write(line: string): unknown;
}

export interface LoggerOptions {
  /** Explicit level (from a flag); falls back to RAFTKV_LOG_LEVEL, then "info". */
  level?: string;
  destination?: "stderr" | "stdout" | LogSink;
  /** Fields on every line, e.g. the member name. */
  base?: Record<string, string | number>;
}

export function parseLogLevel(value: string): LogLevel {
  const v = value.trim().toLowerCase();
  if ((LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new Error(`invalid log level ${JSON.stringify(value)}: expected one of ${LEVELS.join(", ")}`);
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = parseLogLevel(opts.level ?? process.env.RAFTKV_LOG_LEVEL ?? "info");
  const dest = opts.destination ?? "stderr";
  // Synchronous writes to the terminal streams: a member that exits on a fatal error must not
  // lose the line that explains why.
  const stream =
    dest === "stderr"
      ? pino.destination({ fd: 2, sync: true })
      : dest === "stdout"
        ? pino.destination({ fd: 1, sync: true })
        : dest;
  return pino(
    {
      level,
      base: opts.base ?? {},
      messageKey: "msg",
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}
