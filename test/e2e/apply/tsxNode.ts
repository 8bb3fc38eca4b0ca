import { pathToFileURL } from "node:url";

/** argv that runs a TypeScript file with this Node and tsx, wherever the process's cwd is. */
export function tsxNodeArgv(script: string, ...args: string[]): string[] {
  return [process.execPath, "--import", pathToFileURL(require.resolve("tsx")).href, script, ...args];
}
