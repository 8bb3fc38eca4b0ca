/**
 * Counts of one run of the `etcd3` package's suite, from mocha's JSON reporter, and the
 * markdown page (bench/results/etcd3-suite.md) that shows them per target. A test that never
 * ran (its `before`/`beforeEach` hook failed) is told apart from a test that failed: the list
 * of every test comes from a `--dry-run` of the same suite.
 */

/** The parts of mocha's JSON reporter output we read. */
export interface MochaJson {
  stats: { duration?: number };
  tests: MochaTest[];
  passes: MochaTest[];
  failures: MochaTest[];
  pending: MochaTest[];
}

export interface MochaTest {
  title: string;
  fullTitle: string;
  file?: string;
  err?: { message?: string };
}

export interface SuiteRun {
  total: number;
  passed: string[];
  /** Tests that ran and failed, with the first line of their error. */
  failed: Array<{ test: string; error: string }>;
  pending: string[];
  /** Tests that never ran because a hook failed. */
  notRun: string[];
  /** Failed hooks (they are what kept `notRun` from running), with their error. */
  hooks: Array<{ hook: string; error: string }>;
  durationMs: number;
}

function isHook(t: MochaTest): boolean {
  return /^"(before|after) (all|each)" hook/.test(t.title);
}

function firstLine(t: MochaTest): string {
  return (t.err?.message ?? "").split("\n")[0]!.trim();
}

/** Classifies one run against the dry run's list of every test (by full title). */
export function classify(all: readonly string[], run: MochaJson): SuiteRun {
  const passed = run.passes.map((t) => t.fullTitle);
  const pending = run.pending.map((t) => t.fullTitle);
  // A test can be reported failing twice (e.g. an error after it ended): once per test.
  const failed: SuiteRun["failed"] = [];
  for (const t of run.failures) {
    if (!isHook(t) && !failed.some((f) => f.test === t.fullTitle)) failed.push({ test: t.fullTitle, error: firstLine(t) });
  }
  const hooks = run.failures.filter(isHook).map((t) => ({ hook: t.fullTitle, error: firstLine(t) }));
  const seen = new Set([...passed, ...pending, ...failed.map((f) => f.test)]);
  return {
    total: all.length,
    passed,
    failed,
    pending,
    notRun: all.filter((t) => !seen.has(t)),
    hooks,
    durationMs: run.stats.duration ?? 0,
  };
}

export interface TargetRuns {
  target: string;
  /** What the suite was pointed at, e.g. "raftkv, 3 members (ETCD_ADDR = member 1)". */
  description: string;
  runs: SuiteRun[];
}

export interface ReportHeader {
  when: string;
  suite: string;
  command: string;
  node: string;
  load: string;
  grep?: string;
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** How often each test failed or did not run over several runs of one target. */
function tally(runs: readonly SuiteRun[]): Array<{ test: string; failed: number; notRun: number; error: string }> {
  const m = new Map<string, { failed: number; notRun: number; error: string }>();
  for (const r of runs) {
    for (const f of r.failed) {
      const e = m.get(f.test) ?? { failed: 0, notRun: 0, error: f.error };
      e.failed++;
      m.set(f.test, e);
    }
    for (const t of r.notRun) {
      const e = m.get(t) ?? { failed: 0, notRun: 0, error: "" };
      e.notRun++;
      m.set(t, e);
    }
  }
  return [...m.entries()].map(([test, v]) => ({ test, ...v })).sort((a, b) => a.test.localeCompare(b.test));
}

export function renderReport(h: ReportHeader, targets: readonly TargetRuns[]): string {
  const out: string[] = [];
  out.push("# The `etcd3` npm package's own test suite: raftkv and etcd 3.4.23", "");
  out.push(`Run ${h.when} with \`${h.command}\` (${h.node}, load average at start ${h.load}).`);
  out.push(`Suite: ${h.suite}${h.grep !== undefined ? `, only tests matching \`${h.grep}\`` : ""}.`, "");
  out.push("| target | run | passed | failed | pending | did not run | total | time |", "|---|---|---|---|---|---|---|---|");
  for (const t of targets) {
    t.runs.forEach((r, i) => {
      out.push(`| ${t.target} | ${i + 1} | ${r.passed.length} | ${r.failed.length} | ${r.pending.length} | ${r.notRun.length} | ${r.total} | ${(r.durationMs / 1000).toFixed(1)} s |`);
    });
  }
  out.push("");
  out.push("Pending tests are `it.skip` in the suite itself. A test that did not run was kept from running by a failed hook (listed below).", "");
  for (const t of targets) {
    out.push(`## ${t.target}`, "", t.description, "");
    const tl = tally(t.runs);
    if (tl.length === 0) {
      out.push(`Every test ran and passed in ${t.runs.length === 1 ? "the run" : `all ${t.runs.length} runs`} (pending ones aside).`, "");
    } else {
      out.push("| test | failed in runs | did not run in runs | first error |", "|---|---|---|---|");
      for (const x of tl) out.push(`| ${escapeCell(x.test)} | ${x.failed} of ${t.runs.length} | ${x.notRun} of ${t.runs.length} | ${escapeCell(x.error)} |`);
      out.push("");
    }
    const hooks = new Map<string, { n: number; error: string }>();
    for (const r of t.runs) for (const hk of r.hooks) hooks.set(hk.hook, { n: (hooks.get(hk.hook)?.n ?? 0) + 1, error: hk.error });
    if (hooks.size > 0) {
      out.push("Failed hooks:", "");
      for (const [hook, v] of hooks) out.push(`- ${escapeCell(hook)} (${v.n} of ${t.runs.length} runs): ${escapeCell(v.error)}`);
      out.push("");
    }
  }
  return out.join("\n");
}
