export { createLogger, parseLogLevel } from "./logger";
export type { Logger, LogLevel, LoggerOptions, LogSink } from "./logger";
export { Metrics, memberLabel } from "./metrics";
export type { MetricsOptions } from "./metrics";
