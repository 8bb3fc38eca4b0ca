/**
 * etcdctl's txn input: compare lines, an empty line, success request lines, an empty line,
 * failure request lines, an empty line. Each section must end with an empty line; running
 * out of input anywhere is an error ("EOF"), as in etcdctl 3.4.
 */
import type { Compare, CompareResult, RequestOp } from "../server/etcd-types";
import { CtlError, ExitCode } from "./errors";
import { parseGoInt } from "./go-format";
import { buildDel, buildGet, buildPut, type DelFlags, type GetFlags, type PutFlags } from "./kv-ops";

/** Reads lines the way bufio.Reader.ReadString('\n') does: a last line without '\n' is EOF. */
/** A source of newline-terminated lines; undefined at end of input (an unterminated last line included). */
export type ReadLine = () => string | undefined;

/** Lines of a complete text, as etcdctl's bufio reader would hand them out. */
export function linesOf(text: string): ReadLine {
  let pos = 0;
  return () => {
    const nl = text.indexOf("\n", pos);
    if (nl === -1) return undefined;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    return line;
  };
}

/** Reads a Go %q-quoted string at the start of s; returns it and the rest. */
function scanQuoted(s: string): [string, string] | undefined {
  const t = s.replace(/^\s+/, "");
  if (t.startsWith("`")) {
    const end = t.indexOf("`", 1);
    return end === -1 ? undefined : [t.slice(1, end), t.slice(end + 1)];
  }
  if (!t.startsWith('"')) return undefined;
  let out = "";
  for (let i = 1; i < t.length; i++) {
    const c = t[i]!;
    if (c === '"') return [out, t.slice(i + 1)];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const n = t[++i];
    const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", '"': '"', "\\": "\\", "'": "'", a: "\x07", b: "\b", f: "\f", v: "\v" };
    if (n !== undefined && simple[n] !== undefined) out += simple[n];
    else if (n === "x" && /^[0-9a-fA-F]{2}$/.test(t.slice(i + 1, i + 3))) {
      out += String.fromCharCode(parseInt(t.slice(i + 1, i + 3), 16));
      i += 2;
    } else if ((n === "u" || n === "U") && /^[0-9a-fA-F]+$/.test(t.slice(i + 1, i + (n === "u" ? 5 : 9)))) {
      const len = n === "u" ? 4 : 8;
      out += String.fromCodePoint(parseInt(t.slice(i + 1, i + 1 + len), 16));
      i += len;
    } else return undefined;
  }
  return undefined;
}

const RESULTS: Record<string, CompareResult> = { "=": "EQUAL", "!=": "NOT_EQUAL", ">": "GREATER", "<": "LESS" };

export function parseCompare(line: string): Partial<Compare> {
  const malformed = (extra = ""): CtlError => new CtlError(ExitCode.InvalidInput, `malformed comparison: ${line}${extra}`);
  const lp = line.indexOf("(");
  if (lp === -1) throw malformed();
  const target = line.slice(0, lp);
  const k = scanQuoted(line.slice(lp + 1));
  if (!k || !k[1].startsWith(")")) throw malformed();
  const rest = k[1].slice(1).replace(/^\s+/, "");
  const opMatch = /^(\S+)/.exec(rest);
  if (!opMatch) throw malformed();
  const v = scanQuoted(rest.slice(opMatch[1]!.length));
  if (!v) throw malformed();
  const [key, op, val] = [k[0], opMatch[1]!, v[0]];
  const result = RESULTS[op];
  if (result === undefined) throw new CtlError(ExitCode.InvalidInput, `Unknown result op, ${op}`);
  const base = { result, key: Buffer.from(key, "latin1"), range_end: Buffer.alloc(0) };
  const num = (): string => {
    try {
      return parseGoInt(val, 10).toString();
    } catch {
      throw new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
    }
  };
  switch (target) {
    case "ver":
    case "version":
      return { ...base, target: "VERSION", target_union: "version", version: num() };
    case "c":
    case "create":
      return { ...base, target: "CREATE", target_union: "create_revision", create_revision: num() };
    case "m":
    case "mod":
      return { ...base, target: "MOD", target_union: "mod_revision", mod_revision: num() };
    case "val":
    case "value":
      return { ...base, target: "VALUE", target_union: "value", value: Buffer.from(val, "latin1") };
    case "lease":
      return { ...base, target: "LEASE", target_union: "lease", lease: num() };
    default:
      throw malformed(` (unknown target ${target})`);
  }
}

/** etcdctl's argify: whitespace-separated words, "double-quoted" (Go escapes) or 'single-quoted'. */
export function argify(s: string): string[] {
  const re = /"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?/g;
  return (s.match(re) ?? []).map((a) => {
    if (a.startsWith("'")) return a.slice(1, -1);
    if (a.startsWith('"')) {
      const q = scanQuoted(a);
      if (!q) throw new CtlError(ExitCode.InvalidInput, `invalid syntax`);
      return q[0];
    }
    return a;
  });
}

type FlagSpec = Record<string, "bool" | "value">;

function parseFlags(words: string[], spec: FlagSpec): { args: string[]; flags: Record<string, string | boolean> } | undefined {
  const args: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith("--") || w === "--") {
      args.push(w);
      continue;
    }
    const eq = w.indexOf("=");
    const name = eq === -1 ? w.slice(2) : w.slice(2, eq);
    const kind = spec[name];
    if (kind === undefined) return undefined;
    if (kind === "bool") {
      if (eq === -1) flags[name] = true;
      else if (/^(true|false|1|0|t|f)$/i.test(w.slice(eq + 1))) flags[name] = /^(true|1|t)$/i.test(w.slice(eq + 1));
      else return undefined;
    } else if (eq !== -1) flags[name] = w.slice(eq + 1);
    else if (i + 1 < words.length) flags[name] = words[++i]!;
    else return undefined;
  }
  return { args, flags };
}

const str = (v: string | boolean | undefined): string | undefined => (typeof v === "string" ? v : undefined);
const bool = (v: string | boolean | undefined): boolean => v === true;

export function parseRequestOp(line: string): RequestOp {
  const invalid = (): CtlError => new CtlError(ExitCode.InvalidInput, `invalid txn request: ${line}`);
  const words = argify(line);
  if (words.length < 2) throw new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
  const [cmd, ...rest] = words;
  switch (cmd) {
    case "put": {
      const p = parseFlags(rest, { lease: "value", "prev-kv": "bool", "ignore-value": "bool", "ignore-lease": "bool" });
      if (!p) throw invalid();
      const f: PutFlags = { prevKv: bool(p.flags["prev-kv"]), ignoreValue: bool(p.flags["ignore-value"]), ignoreLease: bool(p.flags["ignore-lease"]) };
      const lease = str(p.flags["lease"]);
      if (lease !== undefined) f.lease = lease;
      return { request_put: buildPut(p.args, f, () => "") };
    }
    case "get": {
      const p = parseFlags(rest, {
        consistency: "value",
        "from-key": "bool",
        "keys-only": "bool",
        "count-only": "bool",
        limit: "value",
        order: "value",
        prefix: "bool",
        "print-value-only": "bool",
        rev: "value",
        "sort-by": "value",
      });
      if (!p) throw invalid();
      const f: GetFlags = {
        prefix: bool(p.flags["prefix"]),
        fromKey: bool(p.flags["from-key"]),
        keysOnly: bool(p.flags["keys-only"]),
        countOnly: bool(p.flags["count-only"]),
      };
      for (const [flag, prop] of [["consistency", "consistency"], ["limit", "limit"], ["order", "order"], ["rev", "rev"], ["sort-by", "sortBy"]] as const) {
        const v = str(p.flags[flag]);
        if (v !== undefined) f[prop] = v;
      }
      return { request_range: buildGet(p.args, f) };
    }
    case "del": {
      const p = parseFlags(rest, { prefix: "bool", "prev-kv": "bool", "from-key": "bool" });
      if (!p) throw invalid();
      const f: DelFlags = { prefix: bool(p.flags["prefix"]), prevKv: bool(p.flags["prev-kv"]), fromKey: bool(p.flags["from-key"]) };
      return { request_delete_range: buildDel(p.args, f) };
    }
    default:
      throw invalid();
  }
}

export interface TxnInput {
  compare: Partial<Compare>[];
  success: RequestOp[];
  failure: RequestOp[];
}

/**
 * Parses a txn script line by line. `prompt` is called before each section (interactive mode
 * prints etcdctl's prompts through it, before the lines of that section are read).
 */
export function parseTxn(readLine: ReadLine, prompt: (s: string) => void): TxnInput {
  const section = <T>(parse: (line: string) => T): T[] => {
    const items: T[] = [];
    for (;;) {
      const line = readLine();
      if (line === undefined) throw new CtlError(ExitCode.InvalidInput, "EOF");
      const t = line.trim();
      if (t === "") return items;
      items.push(parse(t));
    }
  };
  prompt("compares:\n");
  const compare = section(parseCompare);
  prompt("success requests (get, put, del):\n");
  const success = section(parseRequestOp);
  prompt("failure requests (get, put, del):\n");
  const failure = section(parseRequestOp);
  return { compare, success, failure };
}
