/**
 * Input diffs the way the engine and the providers judge them: which top-level inputs changed
 * (after `ignoreChanges`), and whether any change forces a replacement (the provider's
 * force-new fields, `replaceOnChanges`). Pure.
 */
import { isDeepStrictEqual } from "node:util";
import { forceNewPaths } from "./forceNew";
import type { ResourceOptions } from "./types";

export type DiffKind = "same" | "update" | "replace";

export interface InputDiff {
  kind: DiffKind;
  /** Changed top-level input names, sorted. */
  diffKeys: string[];
  /** The paths whose change forces the replacement (empty unless kind is "replace"). */
  replaceBecause: string[];
}

/**
 * "a.b[0].c" -> ["a", "b", 0, "c"]. A wildcard ("triggers[*]", "tags.*", as the generated SDKs
 * put in replaceOnChanges) ends the path: any change below the prefix counts.
 */
export function parsePath(p: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const part of p.split(".")) {
    if (part === "*") return out;
    const m = /^([^[\]]*)((?:\[(?:\d+|\*|"[^"]*")\])*)$/.exec(part);
    if (!m) throw new Error(`engine: bad property path ${JSON.stringify(p)}`);
    if (m[1] !== "") out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+|\*|"[^"]*")\]/g)) {
      const k = idx[1]!;
      if (k === "*") return out;
      out.push(k.startsWith('"') ? k.slice(1, -1) : Number(k));
    }
  }
  return out;
}

function getPath(v: unknown, path: Array<string | number>): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

function setPath(v: Record<string, unknown>, path: Array<string | number>, value: unknown): void {
  let cur: Record<string | number, unknown> = v;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    if (next === null || typeof next !== "object") return; // nothing at that path in the new inputs
    cur = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
}

/** undefined and absent are the same input; null is kept. */
export function sameValue(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(normalize(a), normalize(b));
}

function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = normalize(x);
    }
    return out;
  }
  return v;
}

/** Pulumi's ignoreChanges: the listed paths keep their old values before the diff. */
export function applyIgnoreChanges(oldInputs: Record<string, unknown>, newInputs: Record<string, unknown>, ignore: readonly string[] | undefined): Record<string, unknown> {
  if (!ignore || ignore.length === 0) return newInputs;
  const out = structuredClone(newInputs);
  for (const p of ignore) {
    if (p === "*") return structuredClone(oldInputs);
    const path = parsePath(p);
    setPath(out, path, structuredClone(getPath(oldInputs, path)));
  }
  return out;
}

export function diffInputs(
  type: string,
  oldInputs: Record<string, unknown>,
  newInputsRaw: Record<string, unknown>,
  options: ResourceOptions,
): InputDiff {
  const newInputs = applyIgnoreChanges(oldInputs, newInputsRaw, options.ignoreChanges);
  const keys = new Set([...Object.keys(oldInputs), ...Object.keys(newInputs)]);
  const diffKeys = [...keys].filter((k) => !sameValue(oldInputs[k], newInputs[k])).sort();
  if (diffKeys.length === 0) return { kind: "same", diffKeys, replaceBecause: [] };
  const replaceBecause: string[] = [];
  for (const p of forceNewPaths(type, newInputs)) {
    const path = parsePath(p);
    if (!sameValue(getPath(oldInputs, path), getPath(newInputs, path))) replaceBecause.push(p);
  }
  for (const p of options.replaceOnChanges ?? []) {
    if (p === "*") replaceBecause.push(...diffKeys);
    else {
      const path = parsePath(p);
      if (!sameValue(getPath(oldInputs, path), getPath(newInputs, path))) replaceBecause.push(p);
    }
  }
  return { kind: replaceBecause.length > 0 ? "replace" : "update", diffKeys, replaceBecause: [...new Set(replaceBecause)] };
}
