// A logger whose JSON lines land in memory, so tests can assert on what an operator would see.
import { createLogger, type Logger } from "../../../node-runtime/server/obs/logger";

export interface CapturedLog {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** Lines whose msg contains `text`. */
  find(text: string): Array<Record<string, unknown>>;
}

export function captureLog(level = "debug"): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level,
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines, find: (text) => lines.filter((l) => String(l.msg).includes(text)) };
}
