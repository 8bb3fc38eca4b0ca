import { spawn } from "node:child_process";

/**
 * Starts a long-running command (watch, keep-alive), waits until its stdout satisfies
 * `done` or the timeout passes, then kills it by PID and returns what it printed. With
 * settleMs, output arriving shortly after `done` first holds is collected too (a client may
 * write one event in several writes).
 */
export function runUntil(
  cmd: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
  done: (stdout: string) => boolean,
  timeoutMs: number,
  settleMs = 0,
): Promise<{ stdout: string; stderr: string; timedOut: boolean }> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) childEnv[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let settling = false;
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      if (!settling && done(stdout)) {
        settling = true;
        setTimeout(kill, settleMs);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", () => {
      clearTimeout(timer);
      resolve({ stdout, stderr, timedOut });
    });
  });
}
