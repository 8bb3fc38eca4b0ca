/**
 * `npm run sim -- --seeds N [--from S]` (or `--seed S`): the raft-core simulator's seeds, then the
 * whole-member simulator's, with the same flags (`--chaos-ms` goes to the member simulator only).
 * One at a time: `npm run sim:core`, `npm run sim:member`. Exits non-zero if either had a failure.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const args = process.argv.slice(2);
const coreArgs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--chaos-ms") i++;
  else coreArgs.push(args[i]!);
}
let failed = false;
for (const [what, script, argv] of [
  ["raft core", "run-seeds.ts", coreArgs],
  ["whole member", "member/run-seeds.ts", args],
] as const) {
  console.log(`== ${what} simulator (${script})`);
  const r = spawnSync(process.execPath, ["--import", "tsx", join(__dirname, script), ...argv], { stdio: "inherit" });
  if (r.status !== 0) failed = true;
}
process.exitCode = failed ? 1 : 0;
