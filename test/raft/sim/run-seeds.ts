/**
 * The raft-core simulator over many seeds: npm run sim:core -- --seeds 10000 [--from N]
 * (`npm run sim` runs these and then the whole-member simulator's). Replay one: --seed N
 * (prints the tail of the event log on failure).
 */
import { intFlag } from "../../helpers/int-flag";
import { runSeed } from "./scenario";

const single = intFlag("seed");
const from = single ?? intFlag("from") ?? 1;
const count = single !== undefined ? 1 : (intFlag("seeds") ?? 1000);
// Many seeds: errors without stack traces (the raft core throws one per refused proposal and
// capturing stacks was a tenth of the run). A failing seed's replay (--seed N) keeps them.
if (single === undefined) Error.stackTraceLimit = 0;
const started = Date.now();
let failures = 0;
let applied = 0;
for (let seed = from; seed < from + count; seed++) {
  try {
    applied += runSeed(seed).applied;
  } catch (e) {
    failures++;
    const err = e as Error & { simLog?: string[] };
    console.error(`FAIL seed ${seed}: ${err.message}`);
    if (single !== undefined) {
      for (const line of err.simLog ?? []) console.error(line);
      console.error(err.stack);
    }
    console.error(`  replay: npm run sim:core -- --seed ${seed}`);
  }
  if ((seed - from + 1) % 1000 === 0) console.log(`${seed - from + 1} seeds, ${failures} failures, ${((Date.now() - started) / 1000).toFixed(1)}s`);
}
console.log(`done: ${count} seeds from ${from}, ${failures} failures, ${applied} entries applied, ${((Date.now() - started) / 1000).toFixed(1)}s`);
process.exitCode = failures > 0 ? 1 : 0;
