/**
 * Bundles raftkvctl once per test run into a temp dir (as scripts/build.mjs would), so tests
 * run the shipped form and each invocation starts in ~0.1 s instead of compiling via tsx.
 */
import { build } from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface CtlBundle {
  file: string;
  /** Environment the bundle needs outside the repository's dist/ (where its protos are). */
  env: Record<string, string>;
  dispose(): void;
}

export async function bundleRaftkvctl(): Promise<CtlBundle> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkvctl-bundle-"));
  const file = path.join(dir, "raftkvctl.cjs");
  const root = path.resolve(__dirname, "..", "..");
  await build({
    entryPoints: [path.join(root, "node-runtime", "cli", "raftkvctl.ts")],
    outfile: file,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    logLevel: "error",
  });
  return {
    file,
    env: { RAFTKV_PROTO_DIR: path.join(root, "node-runtime", "server", "proto") },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
