/**
 * Go's formatting as etcdctl's output uses it: %x and %016x of 64-bit IDs, time.Duration's
 * String(), go-humanize's Bytes(), %q quoting, strconv parse errors, and the
 * olekukonko/tablewriter layout of `-w table`.
 */

/** %x of an unsigned 64-bit ID given as a decimal string. */
export function hexId(id: string): string {
  return BigInt(id).toString(16);
}

/** %016x, as etcdctl prints lease IDs. */
export function hexId16(id: string): string {
  return hexId(id).padStart(16, "0");
}

/** %16x (space padded), as etcdctl prints member and cluster IDs after `member add/remove`. */
export function hexIdSpace16(id: string): string {
  return hexId(id).padStart(16, " ");
}

/** etcdctl's --hex form of bytes: `\x` before every byte's two hex digits. */
export function hexBytes(b: Buffer): string {
  let out = "";
  for (const byte of b) out += "\\x" + byte.toString(16).padStart(2, "0");
  return out;
}

/** Go's strconv.Quote / %q for a string. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

/** Go's %v of a []string: `[a b c]`. */
export function goStringSlice(xs: readonly string[]): string {
  return `[${xs.join(" ")}]`;
}

function trimFraction(s: string): string {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/** time.Duration.String() for a duration in nanoseconds (as a bigint). */
export function goDuration(ns: bigint): string {
  if (ns === 0n) return "0s";
  const neg = ns < 0n;
  const u = neg ? -ns : ns;
  let out: string;
  if (u < 1000n) out = `${u}ns`;
  else if (u < 1000000n) out = `${trimFraction((Number(u) / 1e3).toFixed(3))}µs`;
  else if (u < 1000000000n) out = `${trimFraction((Number(u) / 1e6).toFixed(6))}ms`;
  else {
    const totalSec = u / 1000000000n;
    const fracNs = u % 1000000000n;
    const h = totalSec / 3600n;
    const m = (totalSec % 3600n) / 60n;
    const s = totalSec % 60n;
    const frac = fracNs === 0n ? "" : trimFraction(`.${fracNs.toString().padStart(9, "0")}`);
    out = `${h > 0n ? `${h}h` : ""}${h > 0n || m > 0n ? `${m}m` : ""}${s}${frac}s`;
  }
  return neg ? `-${out}` : out;
}

/** Parses a Go duration flag value such as "2s", "500ms", "1m30s". */
export function parseGoDuration(s: string): number {
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  if (s === "0") return 0;
  let total = 0;
  let pos = 0;
  re.lastIndex = 0;
  while (pos < s.length) {
    const m = re.exec(s);
    if (!m || m.index !== pos) throw new Error(`time: invalid duration ${goQuote(s)}`);
    total += Number(m[1]) * unitMs[m[2]!]!;
    pos = re.lastIndex;
  }
  if (s.length === 0) throw new Error(`time: invalid duration ${goQuote(s)}`);
  return total;
}

/** go-humanize Bytes(): SI units, one decimal below 10. */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / Math.pow(1000, e)) * 10 + 0.5) / 10;
  return val < 10 ? `${val.toFixed(1)} ${sizes[e]}` : `${roundHalfEven(val)} ${sizes[e]}`;
}

/** Go's %.0f rounds exact halves to even (20.5 -> 20), unlike toFixed. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const diff = v - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** strconv.ParseInt(s, base, 64) with Go's error text. */
export function parseGoInt(s: string, base: 10 | 16): bigint {
  const re = base === 16 ? /^[+-]?[0-9a-fA-F]+$/ : /^[+-]?[0-9]+$/;
  const fn = "strconv.ParseInt";
  if (!re.test(s)) throw new Error(`${fn}: parsing ${goQuote(s)}: invalid syntax`);
  const neg = s.startsWith("-");
  const digits = s.replace(/^[+-]/, "");
  const v = BigInt(base === 16 ? `0x${digits}` : digits) * (neg ? -1n : 1n);
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) throw new Error(`${fn}: parsing ${goQuote(s)}: value out of range`);
  return v;
}

/** strconv.ParseUint(s, 16, 64) with Go's error text. */
export function parseGoHexUint(s: string): bigint {
  const fn = "strconv.ParseUint";
  if (!/^[0-9a-fA-F]+$/.test(s)) throw new Error(`${fn}: parsing ${goQuote(s)}: invalid syntax`);
  const v = BigInt(`0x${s}`);
  if (v > 0xffffffffffffffffn) throw new Error(`${fn}: parsing ${goQuote(s)}: value out of range`);
  return v;
}

/**
 * tablewriter as etcdctl configures it: upper-case headers centered, cells right-aligned,
 * one space of padding, `+---+` borders and a line under the header and at the end.
 */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = header.map((h) => h.replace(/_/g, " ").toUpperCase());
  const widths = head.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ""))));
  const line = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+\n";
  const center = (s: string, w: number): string => {
    const gap = w - displayWidth(s);
    const left = Math.floor(gap / 2);
    return " ".repeat(left) + s + " ".repeat(gap - left);
  };
  let out = line;
  out += "|" + head.map((h, i) => ` ${center(h, widths[i]!)} `).join("|") + "|\n";
  out += line;
  for (const r of rows) {
    out += "|" + widths.map((w, i) => ` ${" ".repeat(w - displayWidth(r[i] ?? ""))}${r[i] ?? ""} `).join("|") + "|\n";
  }
  out += line;
  return out;
}

function displayWidth(s: string): number {
  return [...s].length;
}
