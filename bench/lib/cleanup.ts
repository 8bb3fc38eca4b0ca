/**
 * Everything the benchmark starts (servers, workers) and every temp dir it creates is
 * registered here and removed on normal exit, on failure and on Ctrl-C / SIGTERM — by PID,
 * never by name.
 */
import { readFileSync, rmSync } from "node:fs";

const pids = new Set<number>();
const dirs = new Set<string>();
let installed = false;

export function trackPid(pid: number): void {
  pids.add(pid);
  install();
}
export function untrackPid(pid: number): void {
  pids.delete(pid);
}
export function trackDir(dir: string): void {
  dirs.add(dir);
  install();
}
export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

/** Kills every tracked process (SIGKILL) and removes every tracked directory, synchronously. */
export function cleanupNow(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  pids.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", cleanupNow);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping everything it started\n`);
      cleanupNow();
      process.exit(130);
    });
  }
}

/** True once the process is gone or a zombie (PID 1 here reaps late). */
export function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}
