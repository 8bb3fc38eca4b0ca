/**
 * The data and the `get` cases the three etcdctl/raftkvctl comparison suites share, so that they
 * compare the same states with the same commands.
 */

/** Keys written in this order before the comparisons (foo2 twice, so it has history). */
export const SEED_KEYS: ReadonlyArray<readonly [string, string]> = [
  ["foo", "bar"],
  ["foo2", "bar2"],
  ["foo3", "three"],
  ["zeta", "last"],
  ["/app/a", "1"],
  ["/app/b", "2"],
  ["foo2", "bar2-v2"],
];

/** `get` invocations every suite compares; each adds its own after these. */
export const COMMON_GET_CASES: ReadonlyArray<string[]> = [
  ["get", "foo"],
  ["get", "foo", "--prefix"],
  ["get", "foo", "foo3"],
  ["get", "", "--prefix", "--keys-only"],
  ["get", "/", "--prefix", "--keys-only"],
  ["get", "foo", "--from-key"],
  ["get", "", "--from-key", "--limit", "2"],
  ["get", "foo", "--prefix", "--print-value-only"],
  ["get", "foo", "--prefix", "--order", "DESCEND"],
  ["get", "foo", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND"],
  ["get", "foo", "--prefix", "--sort-by", "VALUE"],
];

/** txn scripts (stdin as etcdctl reads it) over the seed data: both branches, errors, short input. */
export const TXN_SCRIPTS: readonly string[] = [
  'mod("foo2") > "0"\n\nget foo2\n\nget foo\n\n',
  'value("foo") = "bar"\nversion("foo2") = "2"\n\nget foo --prefix --keys-only\nget zeta\n\nget foo\n\n',
  'create("foo") < "1"\n\nget foo\n\nget foo3\n\n',
  'val("foo") != "bar"\n\n\nget zeta\n\n',
  "\n\n\n",
  "bogus line\n\n",
  'mod("foo") > "0"\n\nput\n\n',
  'mod("foo") > "0"\n\nfrob x y\n\n',
  'mod("foo") > "0"\n\nget foo\n',
  'mod("foo") > "0"',
];
