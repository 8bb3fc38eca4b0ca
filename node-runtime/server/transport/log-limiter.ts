// A misconfigured peer retries every second; its rejection is worth one log line, then a summary
// now and then, not a line per attempt.
import type { Logger } from "../obs/logger";

export class LogLimiter {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 30_000,
  ) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const entry = this.seen.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.seen.set(key, { at: now, suppressed: 0 });
    if (this.seen.size > 1000) this.seen.clear();
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}
