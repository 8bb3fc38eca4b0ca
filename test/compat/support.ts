/**
 * Shared pieces of the compatibility suites: how etcdctl-shaped output is compared between two
 * servers (or two clients) once what legitimately differs — IDs, terms, versions, timings, sizes —
 * is replaced by placeholders. Nothing else is normalised: keys, values, revisions, counts,
 * versions of keys, error strings and exit codes must match byte for byte.
 */
import { strict as assert } from "node:assert";
import type { CliResult } from "../helpers/run-cli";

/** The `Error: ...` lines etcdctl prints (it also logs JSON warning lines nobody should match). */
export function errorLines(stderr: string): string {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("Error:"))
    .join("\n");
}

/** Placeholders for values that differ between any two clusters. Revisions are kept. */
export function normaliseIds(s: string): string {
  return (
    s
      // JSON headers and bodies: member, cluster and lease IDs are decimal uint64s.
      .replace(/"(cluster_id|member_id|leader|ID|id)":\d+/g, '"$1":ID')
      .replace(/"raft_term":\d+/g, '"raft_term":T')
      // -w fields
      .replace(/"(ClusterID|MemberID)" : \d+/g, '"$1" : ID')
      .replace(/"RaftTerm" : \d+/g, '"RaftTerm" : T')
      // `Member <%16x> added to cluster <%16x>` pads short IDs with spaces.
      .replace(/(Member|cluster) +[0-9a-f]+/g, "$1 ID")
      .replace(/\blease [0-9a-f]{16}\b/g, "lease LEASE")
  );
}

/** Lease time left is a clock reading: etcd truncates it, raftkv rounds it up. */
export function normaliseTtl(s: string): string {
  return s.replace(/remaining\(\d+s\)/g, "remaining(Ns)").replace(/"ttl":\d+/g, '"ttl":N');
}

/** A lease's attached keys: etcd lists them in Go map order, which is random. */
export function sortLeaseKeys(s: string): string {
  return s
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_, ks: string) => `attached keys([${ks.split(" ").sort().join(" ")}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_, ks: string) => `"keys":[${ks.split(",").sort().join(",")}]`);
}

/** Replaces each given literal (an ID printed in hex or decimal) by a placeholder. */
export function replaceAll(s: string, literals: Record<string, string>): string {
  let out = s;
  for (const [lit, ph] of Object.entries(literals)) if (lit !== "") out = out.split(lit).join(ph);
  return out;
}

export interface Compared {
  a: CliResult;
  b: CliResult;
}

/** Asserts two runs of the same command agree after `norm`: stdout, exit code, error lines. */
export function assertSameResult(what: string, a: CliResult, b: CliResult, norm: (s: string) => string = normaliseIds): void {
  assert.equal(norm(b.stdout), norm(a.stdout), `${what}: stdout`);
  assert.equal(b.code, a.code, `${what}: exit code (stderr: ${b.stderr.slice(-500)} / reference: ${a.stderr.slice(-500)})`);
  assert.equal(norm(errorLines(b.stderr)), norm(errorLines(a.stderr)), `${what}: error line`);
  assert.doesNotMatch(b.stderr, /^\s+at /m, `${what}: no stack trace`);
}

/** Hex form of a decimal uint64 string, as etcdctl prints IDs in simple and table output. */
export function hex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

/** A lease ID (decimal, as in JSON output) the way etcdctl's lease commands print it: %016x. */
export function leaseHex(decimal: string): string {
  return BigInt(decimal).toString(16).padStart(16, "0");
}

/** Rows of an etcdctl table, cells trimmed, border lines dropped. */
export function tableRows(table: string): string[][] {
  return table
    .split("\n")
    .filter((l) => l.startsWith("|"))
    .map((l) =>
      l
        .slice(1, -1)
        .split("|")
        .map((c) => c.trim()),
    );
}

/** The key paths of a parsed JSON value (array elements merged), to compare response shapes. */
export function jsonShape(v: unknown, prefix = ""): string[] {
  if (Array.isArray(v)) return [...new Set(v.flatMap((x) => jsonShape(x, `${prefix}[]`)))].sort();
  if (v !== null && typeof v === "object") {
    return Object.entries(v as Record<string, unknown>)
      .flatMap(([k, x]) => [`${prefix}.${k}`, ...jsonShape(x, `${prefix}.${k}`)])
      .sort();
  }
  return [];
}
