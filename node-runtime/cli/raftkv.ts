// Entry point of the member process. The server wiring lands with the server issue; until then
// the executable only reports what it is.
import { version } from "../../package.json";

const args = process.argv.slice(2);
if (args.includes("--version")) {
  console.log(`raftkv ${version}`);
} else {
  console.error("raftkv: the member process is not assembled yet (see README: status)");
  process.exitCode = 2;
}
