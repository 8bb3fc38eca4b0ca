/**
 * runProgram: the Pulumi program (index.ts) run once in a child process under
 * pulumi.runtime.setMocks, like `pulumi up` runs it, returning every resource it declared.
 * A child process because the Pulumi SDK keeps its state in module globals: each run needs a
 * fresh one, as each real `pulumi up` gets.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { StackState } from "./types";

export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
export const DEFAULT_AMI = "ami-0e2e0debian13a1";

export interface RunOptions {
  /** Stack name (default "e2e"); the project is read from Pulumi.yaml's name ("raftkv"). */
  stack?: string;
  /** Config keys whose values are secret (default: raftkv:sshPrivateKey). */
  secretKeys?: string[];
  /** What aws.ec2.getAmi returns (default DEFAULT_AMI). */
  amiId?: string;
  /** LocallySignedCert names the mock TLS provider forges in this run (mockProvider.ts forgedCerts). */
  forgedCerts?: string[];
  /** Program directory (default the repository root). */
  projectDir?: string;
  timeoutMs?: number;
}

export async function runProgram(config: Record<string, string>, prior: StackState | undefined, opts: RunOptions = {}): Promise<StackState> {
  const projectDir = opts.projectDir ?? REPO_ROOT;
  const region = config["aws:region"];
  if (region === undefined) throw new Error("runProgram: config needs aws:region");
  const dir = mkdtempSync(path.join(tmpdir(), "raftkv-engine-"));
  try {
    const inputFile = path.join(dir, "input.json");
    const outputFile = path.join(dir, "output.json");
    writeFileSync(
      inputFile,
      JSON.stringify({
        config,
        secretKeys: opts.secretKeys ?? ["raftkv:sshPrivateKey"],
        prior,
        project: "raftkv",
        stack: opts.stack ?? "e2e",
        program: path.join(projectDir, "index.ts"),
        providers: { region, amiId: opts.amiId ?? DEFAULT_AMI, ...(opts.forgedCerts ? { forgedCerts: opts.forgedCerts } : {}) },
      }),
      { mode: 0o600 },
    );
    const child = spawn(process.execPath, ["--import", "tsx", path.join(__dirname, "child.ts"), inputFile, outputFile], {
      cwd: projectDir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PULUMI_CONFIG: undefined, NODE_OPTIONS: undefined },
    });
    let log = "";
    child.stdout.on("data", (d: Buffer) => (log += d.toString()));
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    // Generous: a 7-master program took over 180 s at a load average of 40 on 2 cores.
    const timeoutMs = opts.timeoutMs ?? 420_000;
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`runProgram: the program did not finish within ${timeoutMs} ms\n${log}`));
      }, timeoutMs);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    if (code !== 0) throw new Error(`runProgram: the program failed (exit ${String(code)}):\n${log.trim()}`);
    return JSON.parse(readFileSync(outputFile, "utf8")) as StackState;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
