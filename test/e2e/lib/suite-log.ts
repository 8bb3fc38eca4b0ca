/** What the deployment scenarios print between mocha's lines. */

/** A file's log: `[tag <seconds since the file loaded> s HH:MM:SS] line`, indented under mocha's test titles. */
export function suiteLog(tag: string): (line: string) => void {
  const t0 = Date.now();
  return (line) => console.log(`      [${tag} ${((Date.now() - t0) / 1000).toFixed(0)} s ${new Date().toISOString().slice(11, 19)}] ${line}`);
}

/** A resource's name, the last part of its URN (what the scenarios' step reports are matched by). */
export const urnName = (urn: string): string => urn.split("::").pop()!;
