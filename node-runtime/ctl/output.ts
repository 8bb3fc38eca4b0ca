/** Where command output goes; a seam so tests and the CLI share the same printers. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: Output = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/** Waits until everything written to stdout/stderr is flushed (before exiting). */
export function flushStdio(): Promise<void> {
  const drain = (s: NodeJS.WriteStream): Promise<void> =>
    new Promise((resolve) => (s.writableNeedDrain ? s.once("drain", () => resolve()) : resolve()));
  return Promise.all([drain(process.stdout), drain(process.stderr)]).then(() => undefined);
}
