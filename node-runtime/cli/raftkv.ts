// The `raftkv` member process (bundled into dist/raftkv.cjs by `npm run build`).
import { main } from "../server/main";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`raftkv: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(70);
  },
);
