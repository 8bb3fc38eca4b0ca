/**
 * `npm test` runs the e2e suite when this machine can host the lab (root, systemd-nspawn,
 * mmdebstrap, ...: hostToolsPresent), and otherwise says in one line that it did not and why.
 */
import { spawnSync } from "node:child_process";
import { hostToolsPresent } from "./lab";

const tools = hostToolsPresent();
if (!tools.ok) {
  console.log(`e2e deployment suite NOT run: ${tools.reason}`);
  process.exit(0);
}
const r = spawnSync("npm", ["run", "test:e2e"], { stdio: "inherit" });
process.exit(r.status ?? 1);
