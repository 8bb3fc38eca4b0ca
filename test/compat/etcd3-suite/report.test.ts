/**
 * How the compat:etcd3 harness counts a run of the etcd3 suite from mocha's JSON reporter: a test
 * kept from running by a failed hook is "did not run", not "failed"; a test reported failing twice
 * counts once; the page lists what failed or did not run per target and the hooks that failed.
 */
import { strict as assert } from "node:assert";
import { classify, renderReport, type MochaJson } from "./report";

const t = (fullTitle: string, message?: string) => ({ title: fullTitle.split(" ").pop()!, fullTitle, ...(message !== undefined ? { err: { message } } : {}) });

describe("compat:etcd3 report", () => {
  const all = ["a one", "a two", "b one", "b two", "c skipped"];
  const run: MochaJson = {
    stats: { duration: 1500 },
    tests: [],
    passes: [t("a one")],
    pending: [t("c skipped")],
    failures: [
      t("a two", "14 UNAVAILABLE: No connection established\n    at stack"),
      t("a two", "done() called multiple times"),
      { title: '"before each" hook for "one"', fullTitle: 'b "before each" hook for "one"', err: { message: "boom" } },
    ],
  };

  it("tells failed tests, tests kept from running by a hook, and pending ones apart", () => {
    const r = classify(all, run);
    assert.deepEqual(r.passed, ["a one"]);
    assert.deepEqual(r.failed, [{ test: "a two", error: "14 UNAVAILABLE: No connection established" }]);
    assert.deepEqual(r.pending, ["c skipped"]);
    assert.deepEqual(r.notRun, ["b one", "b two"]);
    assert.deepEqual(r.hooks, [{ hook: 'b "before each" hook for "one"', error: "boom" }]);
    assert.equal(r.total, 5);
  });

  it("renders counts per run and what failed or did not run, per target", () => {
    const bad = classify(all, run);
    const good = classify(all, { ...run, passes: ["a one", "a two", "b one", "b two"].map((x) => t(x)), failures: [] });
    const page = renderReport(
      { when: "2026-01-01T00:00:00Z", suite: "etcd3@1.1.2", command: "npm run compat:etcd3 -- --suite-dir DIR", node: "Node.js v20", load: "1.0" },
      [
        { target: "raftkv", description: "three members", runs: [bad, good] },
        { target: "etcd", description: "three members", runs: [good] },
      ],
    );
    assert.match(page, /^\| raftkv \| 1 \| 1 \| 1 \| 1 \| 2 \| 5 \| 1\.5 s \|$/m);
    assert.match(page, /^\| raftkv \| 2 \| 4 \| 0 \| 1 \| 0 \| 5 \| 1\.5 s \|$/m);
    assert.match(page, /^\| a two \| 1 of 2 \| 0 of 2 \| 14 UNAVAILABLE: No connection established \|$/m);
    assert.match(page, /^\| b one \| 0 of 2 \| 1 of 2 \|  \|$/m);
    assert.match(page, /^- b "before each" hook for "one" \(1 of 2 runs\): boom$/m);
    assert.match(page, /## etcd\n\nthree members\n\nEvery test ran and passed in the run \(pending ones aside\)\./);
  });
});
