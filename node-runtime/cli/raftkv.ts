// The `raftkv` member process (bundled into dist/raftkv.cjs by `npm run build`).
// `raftkv snapshot restore|status …` are the offline snapshot tools, shared with raftkvctl.
import { main } from "../server/main";

const argv = process.argv.slice(2);
// The ctl program (and the S3 client the backup commands bring) is loaded only for the offline
// tools: a member never runs it, and loading it cost each member startup time and memory.
const snapshotTool = async (): Promise<number> => {
  const [{ runCtl }, { flushStdio }] = await Promise.all([import("../ctl/program.js"), import("../ctl/output.js")]);
  const code = await runCtl(argv);
  await flushStdio();
  return code;
};
const run = argv[0] === "snapshot" ? snapshotTool() : main(argv);

run.then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`raftkv: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(70);
  },
);
