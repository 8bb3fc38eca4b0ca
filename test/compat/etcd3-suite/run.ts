/**
 * `npm run compat:etcd3 -- --suite-dir DIR`: runs the `etcd3` npm package's own test suite (its
 * repository's `src/test`, at the version our package-lock pins) against a 3-member raftkv
 * cluster and against a 3-member etcd 3.4.23 cluster, the way its CI runs it against etcd:
 * `ETCD_ADDR` names the member to talk to, `ETCD_VERSION` the server version, the client port
 * serves the suite's own certificate and wants no client certificate. The suite is copied to a
 * temporary directory, its dev dependencies installed there from the npm registry (`npm ci`,
 * which also compiles it), and nothing of it enters this repository. Counts and failing tests go
 * to bench/results/etcd3-suite.md.
 *
 * Options: --targets raftkv,etcd · --runs N (repeat each target's run, for intermittent
 * failures) · --grep PATTERN (mocha's --grep) · --member I (which member is ETCD_ADDR, 0-2) ·
 * --out FILE · --keep (keep the temporary copy) · --work-dir DIR (a copy kept by an earlier
 * --keep: no second install; it is kept again).
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { REPO } from "../../server/harness/cluster";
import { classify, renderReport, type MochaJson, type SuiteRun, type TargetRuns } from "./report";
import { startEtcd, startRaftkv, suiteCerts, type Target, type TargetName } from "./targets";

class UsageError extends Error {}

interface Options {
  suiteDir: string;
  targets: TargetName[];
  runs: number;
  grep?: string;
  member: number;
  out: string;
  keep: boolean;
  workDir?: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      "suite-dir": { type: "string" },
      targets: { type: "string", default: "raftkv,etcd" },
      runs: { type: "string", default: "1" },
      grep: { type: "string" },
      member: { type: "string", default: "0" },
      out: { type: "string", default: path.join(REPO, "bench", "results", "etcd3-suite.md") },
      keep: { type: "boolean", default: false },
      "work-dir": { type: "string" },
    },
  });
  const suiteDir = values["suite-dir"];
  if (suiteDir === undefined) {
    throw new UsageError("--suite-dir DIR is required: an etcd3 source tree, e.g. `git --git-dir <etcd3 repo> archive v1.1.2 | tar -x -C DIR`");
  }
  const targets = values.targets.split(",").map((t) => t.trim());
  for (const t of targets) if (t !== "raftkv" && t !== "etcd") throw new UsageError(`--targets: unknown target ${JSON.stringify(t)} (raftkv, etcd)`);
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new UsageError(`--runs must be a positive integer, got ${values.runs}`);
  const member = Number(values.member);
  if (![0, 1, 2].includes(member)) throw new UsageError(`--member must be 0, 1 or 2, got ${values.member}`);
  return {
    suiteDir: path.resolve(suiteDir),
    targets: targets as TargetName[],
    runs,
    ...(values.grep !== undefined ? { grep: values.grep } : {}),
    member,
    out: path.resolve(values.out),
    keep: values.keep || values["work-dir"] !== undefined,
    ...(values["work-dir"] !== undefined ? { workDir: path.resolve(values["work-dir"]) } : {}),
  };
}

/** The etcd3 version our package-lock pins: the suite must be the same release. */
function pinnedEtcd3Version(): string {
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string }> };
  const v = lock.packages["node_modules/etcd3"]?.version;
  if (v === undefined) throw new Error("package-lock.json pins no etcd3");
  return v;
}

function checkSuite(dir: string): string {
  const pkgFile = path.join(dir, "package.json");
  if (!fs.existsSync(pkgFile)) throw new UsageError(`${dir} has no package.json: --suite-dir must be an etcd3 source tree`);
  const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8")) as { name?: string; version?: string };
  const pinned = pinnedEtcd3Version();
  if (pkg.name !== "etcd3" || pkg.version !== pinned) {
    throw new UsageError(`${dir} is ${pkg.name ?? "?"}@${pkg.version ?? "?"}; our package-lock pins etcd3@${pinned}: use that release's tree (tag v${pinned})`);
  }
  return `etcd3@${pkg.version}`;
}

function run(cmd: string, args: string[], cwd: string, what: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${String(r.status)}):\n${(r.stdout + r.stderr).slice(-3000)}`);
}

/** A private copy of the suite with its own dependencies installed and compiled (lib/). */
function prepareWorkDir(suiteDir: string): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-etcd3-suite-"));
  fs.cpSync(suiteDir, work, {
    recursive: true,
    filter: (src) => !["node_modules", "lib", ".git"].includes(path.basename(src)) || path.dirname(src) !== suiteDir,
  });
  process.stdout.write(`installing the suite's dependencies in ${work} (npm ci, which also compiles it)\n`);
  run("npm", ["ci", "--no-audit", "--no-fund"], work, "npm ci in the suite's copy");
  if (!fs.existsSync(path.join(work, "lib", "test"))) run("npm", ["run", "build:ts"], work, "compiling the suite");
  return work;
}

function mochaArgs(work: string, out: string, grep: string | undefined, extra: string[] = []): string[] {
  return [path.join(work, "node_modules", "mocha", "bin", "mocha.js"), "--reporter", "json", "--reporter-option", `output=${out}`, ...(grep !== undefined ? ["--grep", grep] : []), ...extra];
}

/** Every test's full title, from a dry run (no server needed). */
function listTests(work: string, grep: string | undefined): string[] {
  const out = path.join(work, "dry-run.json");
  run(process.execPath, mochaArgs(work, out, grep, ["--dry-run"]), work, "mocha --dry-run");
  const j = JSON.parse(fs.readFileSync(out, "utf8")) as MochaJson;
  return j.tests.map((t) => t.fullTitle);
}

async function runSuite(work: string, target: Target, all: string[], grep: string | undefined, n: number): Promise<SuiteRun> {
  const out = path.join(work, `${target.name}-${n}.json`);
  const logFile = path.join(work, `${target.name}-${n}.log`);
  const fd = fs.openSync(logFile, "w");
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, mochaArgs(work, out, grep), {
      cwd: work,
      stdio: ["ignore", fd, fd],
      env: { ...process.env, ETCD_ADDR: target.addr, ETCD_VERSION: target.version, NODE_NO_WARNINGS: "1" },
    });
    child.once("error", reject);
    child.once("exit", (c) => resolve(c));
  });
  fs.closeSync(fd);
  if (!fs.existsSync(out)) throw new Error(`the suite wrote no results against ${target.name} (exit ${String(code)}); its output:\n${fs.readFileSync(logFile, "utf8").slice(-3000)}`);
  return classify(all, JSON.parse(fs.readFileSync(out, "utf8")) as MochaJson);
}

function describeTarget(t: TargetName, member: number): string {
  const what = t === "raftkv" ? "raftkv (the built bundle), 3 members on loopback" : `etcd ${execVersion()} (Debian etcd-server), 3 members on loopback`;
  return `${what}; heartbeat 50 ms, election timeout 500 ms; ETCD_ADDR = member ${member + 1}'s client port (the suite talks to one host, as its CI does), client port TLS with the suite's own server certificate, no client certificates.`;
}

function execVersion(): string {
  const r = spawnSync("/usr/bin/etcd", ["--version"], { encoding: "utf8", env: { ...process.env, ETCD_UNSUPPORTED_ARCH: "" } });
  return /etcd Version: (\S+)/.exec(r.stdout ?? "")?.[1] ?? "?";
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  const suite = checkSuite(opts.suiteDir);
  const certs = suiteCerts(opts.suiteDir);
  const load = os.loadavg().map((l) => l.toFixed(1)).join(" ");
  const work = opts.workDir ?? prepareWorkDir(opts.suiteDir);
  const results: TargetRuns[] = [];
  try {
    const all = listTests(work, opts.grep);
    for (const name of opts.targets) {
      const runs: SuiteRun[] = [];
      for (let i = 1; i <= opts.runs; i++) {
        // A fresh cluster per run: one run's leftovers (users, auth on) must not decide the next.
        const target = name === "raftkv" ? await startRaftkv(certs, opts.member) : await startEtcd(certs, opts.member);
        try {
          const r = await runSuite(work, target, all, opts.grep, i);
          runs.push(r);
          process.stdout.write(`${name} run ${i}: ${r.passed.length} passed, ${r.failed.length} failed, ${r.pending.length} pending, ${r.notRun.length} did not run (of ${r.total})\n`);
        } finally {
          await target.stop();
        }
      }
      results.push({ target: name, description: describeTarget(name, opts.member), runs });
    }
  } finally {
    if (opts.keep) process.stdout.write(`kept the suite's copy and its logs in ${work}\n`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
  // The suite's path is this machine's; the page shows the command with DIR in its place.
  const placeholders: Record<string, string> = { "--suite-dir": "DIR", "--work-dir": "WORKDIR" };
  const shown = argv.map((a, i) => {
    const flag = a.split("=")[0]!;
    if (a.includes("=") && placeholders[flag] !== undefined) return `${flag}=${placeholders[flag]}`;
    return placeholders[argv[i - 1] ?? ""] ?? a;
  });
  const command = ["npm run compat:etcd3 --", ...shown].join(" ");
  const report = renderReport(
    { when: new Date().toISOString().replace(/\.\d+Z$/, "Z"), suite: `${suite} (its src/test, compiled by its own tsc)`, command, node: `Node.js ${process.version}`, load, ...(opts.grep !== undefined ? { grep: opts.grep } : {}) },
    results,
  );
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, report + "\n");
  process.stdout.write(`wrote ${opts.out}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`compat:etcd3: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
