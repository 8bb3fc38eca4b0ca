/** A non-negative integer flag of a script's command line (`--name N`), or undefined when absent. */
export function intFlag(name: string, argv: readonly string[] = process.argv): number | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} needs a non-negative integer`);
  return v;
}

/** A flag's value on a script's command line (`--name value`), or undefined when absent. */
export function stringFlag(name: string, argv: readonly string[] = process.argv): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
