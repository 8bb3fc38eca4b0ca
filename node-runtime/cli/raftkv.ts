// The `raftkv` member process (bundled into dist/raftkv.cjs by `npm run build`).
// `raftkv snapshot restore|status …` are the offline snapshot tools, shared with raftkvctl.
import { flushStdio } from "../ctl/output";
import { runCtl } from "../ctl/program";
import { main } from "../server/main";

const argv = process.argv.slice(2);
const run = argv[0] === "snapshot" ? runCtl(argv).then(async (code) => (await flushStdio(), code)) : main(argv);

run.then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`raftkv: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(70);
  },
);
