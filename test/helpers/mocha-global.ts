/**
 * Mocha global fixture (.mocharc `require`): builds dist/ once in the main process, before any
 * test file runs, so parallel workers never rebuild the bundle other workers' members run from.
 */
import { ensureBuilt } from "../server/harness/cluster";

export function mochaGlobalSetup(): void {
  ensureBuilt();
  // Inherited by the workers, whose ensureBuilt() then has nothing to do.
  process.env["RAFTKV_TEST_DIST_BUILT"] = "1";
}
