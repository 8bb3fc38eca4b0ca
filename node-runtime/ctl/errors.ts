/**
 * etcdctl's exit codes and error line. Every failure of raftkvctl ends as one CtlError:
 * main() prints `Error: <message>` on stderr and exits with its code, never a stack trace.
 */
import * as grpc from "@grpc/grpc-js";

export const ExitCode = {
  Success: 0,
  Error: 1,
  BadConnection: 2,
  InvalidInput: 3,
  BadFeature: 4,
  Interrupted: 5,
  IO: 6,
  BadArgs: 128,
} as const;

export class CtlError extends Error {
  override readonly name = "CtlError";
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === "object" && err !== null && "code" in err && "details" in err && "metadata" in err;
}

/**
 * The message etcdctl shows for an RPC failure: the server's own text (etcd's clients match
 * errors by these strings), or Go's wording for a missed deadline.
 */
export function rpcErrorMessage(err: unknown): string {
  if (isServiceError(err)) {
    if (err.code === grpc.status.DEADLINE_EXCEEDED) return "context deadline exceeded";
    if (err.code === grpc.status.CANCELLED && err.details === "Cancelled on client") return "context canceled";
    if (err.code === grpc.status.UNAVAILABLE) return `${err.details || "unavailable"}`;
    return err.details || grpc.status[err.code] || "unknown error";
  }
  return err instanceof Error ? err.message : String(err);
}

/** Wraps any error from an RPC into a CtlError with the given exit code (and an optional prefix). */
export function rpcFailure(err: unknown, exitCode: number = ExitCode.Error, wrap?: (msg: string) => string): CtlError {
  if (err instanceof CtlError && !wrap) return err;
  const msg = err instanceof CtlError ? err.message : rpcErrorMessage(err);
  return new CtlError(exitCode, wrap ? wrap(msg) : msg);
}
