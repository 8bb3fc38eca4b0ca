/** How storage reports what it repaired or skipped (a torn tail, a damaged snapshot). */
export type StorageLogger = (msg: string, fields?: Record<string, unknown>) => void;

export const stderrLogger: StorageLogger = (msg, fields) => {
  process.stderr.write(`raftkv storage: ${msg}${fields ? " " + JSON.stringify(fields) : ""}\n`);
};
