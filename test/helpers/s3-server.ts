/**
 * An S3-compatible server for tests: the `s3rver` npm package's CLI as a child process, its data
 * in a temp dir, one bucket configured at start. `spawner` lets a caller run it inside a
 * network namespace (the e2e lab) instead of on loopback. Credentials: s3rver's built-in
 * account, access key and secret both "S3RVER".
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
const BIN = path.join(__dirname, "..", "..", "node_modules", "s3rver", "bin", "s3rver.js");

export interface S3Server {
  endpoint: string;
  bucket: string;
  dir: string;
  stop(): Promise<void>;
}

export type Spawner = (argv: string[]) => ChildProcess;

export async function startS3Server(opts: { address: string; port: number; bucket: string; spawner?: Spawner }): Promise<S3Server> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-s3rver-"));
  const argv = [process.execPath, BIN, "-d", dir, "-a", opts.address, "-p", String(opts.port), "--silent", "--configure-bucket", opts.bucket];
  const child = opts.spawner ? opts.spawner(argv) : spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (output += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start in 60 s: ${output}`)), 60_000);
      const check = () => {
        if (/listening on/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on("data", check);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited (${String(code)}): ${output}`));
      });
    });
  } catch (e) {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    endpoint: `http://${opts.address}:${opts.port}`,
    bucket: opts.bucket,
    dir,
    stop: async () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, "SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
