import { spawn } from "node:child_process";

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Written to the child's stdin, which is then closed. Without it stdin is closed at once. */
  stdin?: string;
  /** Kill the child (by its PID) after this long; the result then has signal SIGKILL. */
  timeoutMs?: number;
  cwd?: string;
}

/**
 * Runs a command to completion and captures its output. `env` is added to this process's
 * environment, except that variables set to undefined are removed, so a test can be sure no
 * ETCDCTL_* from the developer's shell leaks in.
 */
export function runCli(
  cmd: string,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  opts: RunCliOptions = {},
): Promise<CliResult> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) childEnv[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: childEnv, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
          }, opts.timeoutMs);
    child.once("error", (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.stdin ?? "");
  });
}

/** Strips every ETCDCTL_* and RAFTKVCTL_* variable, so only what a test sets applies. */
export function cleanCtlEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) {
    if (k.startsWith("ETCDCTL_") || k.startsWith("RAFTKVCTL_")) env[k] = undefined;
  }
  env["ETCDCTL_API"] = "3";
  return { ...env, ...extra };
}
