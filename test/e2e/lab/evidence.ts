/**
 * What a host that did not boot leaves behind for a post-mortem, beyond its console: taken from
 * inside, while the container still runs: systemd's state and queued jobs, failed units, this
 * boot's journal, every process of the container with its kernel wait channel and cgroup (a PID 1
 * blocked in the kernel shows there even when systemctl cannot answer). It is written outside the
 * lab's directory (which close() removes), and a summary goes into the error message, which is
 * all a CI log keeps.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { RunResult } from "./run";

export const EVIDENCE_ROOT = process.env.RAFTKV_E2E_EVIDENCE ?? "/var/tmp/raftkv-e2e/evidence";
/** Older evidence directories beyond this many are removed (a flaky CI machine must not fill up). */
const KEEP = 20;

type Exec = (argv: string[], opts: { timeoutMs: number }) => Promise<RunResult>;

/** Every process in the PID namespace of `initPid`, read from the machine's /proc. */
export function containerProcesses(initPid: number): string {
  let ns: string;
  try {
    ns = fs.readlinkSync(`/proc/${initPid}/ns/pid`);
  } catch {
    return `(PID ${initPid} is gone)\n`;
  }
  const lines = ["PID STATE WCHAN CGROUP(unified) CMDLINE"];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/ns/pid`) !== ns) continue;
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
      const wchan = fs.readFileSync(`/proc/${e}/wchan`, "utf8") || "-";
      const cg = /^0::(.*)$/m.exec(fs.readFileSync(`/proc/${e}/cgroup`, "utf8"))?.[1] ?? "?";
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0/g, " ").trim();
      lines.push(`${e} ${state} ${wchan} ${cg} ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  return `${lines.join("\n")}\n`;
}

const COMMANDS: Array<{ file: string; argv: string[] }> = [
  { file: "is-system-running.txt", argv: ["systemctl", "is-system-running"] },
  { file: "list-jobs.txt", argv: ["systemctl", "list-jobs", "--no-pager", "--full"] },
  { file: "failed.txt", argv: ["systemctl", "list-units", "--failed", "--all", "--no-pager", "--full"] },
  { file: "activating.txt", argv: ["systemctl", "list-units", "--state=activating,deactivating", "--all", "--no-pager", "--full"] },
  { file: "journal.txt", argv: ["journalctl", "-b", "--no-pager", "-o", "short-monotonic"] },
  { file: "cgroups.txt", argv: ["systemd-cgls", "--no-pager", "--full", "-a"] },
  { file: "cloud-init.txt", argv: ["cloud-init", "status", "--long"] },
];

/** Collects the evidence into a new directory; returns it and a summary for the error message. */
export async function collectBootEvidence(opts: {
  machine: string;
  hostDir: string;
  initPid: number | undefined;
  exec: Exec;
}): Promise<{ dir: string; summary: string }> {
  const dir = path.join(EVIDENCE_ROOT, `${opts.machine}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  fs.mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  const save = (file: string, text: string) => {
    out[file] = text;
    fs.writeFileSync(path.join(dir, file), text);
  };
  try {
    fs.copyFileSync(path.join(opts.hostDir, "console.log"), path.join(dir, "console.log"));
  } catch {
    // no console yet
  }
  save("processes.txt", opts.initPid !== undefined ? containerProcesses(opts.initPid) : "(no container PID 1)\n");
  if (opts.initPid !== undefined) {
    // In parallel: a wedged systemd makes each systemctl call wait out its timeout.
    await Promise.all(
      COMMANDS.map(async ({ file, argv }) => {
        const r = await opts.exec(argv, { timeoutMs: 30_000 }).catch((err: Error) => ({ code: -1, stdout: "", stderr: err.message }));
        save(file, `$ ${argv.join(" ")}  (exit ${r.code})\n${r.stdout}${r.stderr ? `--- stderr\n${r.stderr}` : ""}`);
      }),
    );
  }
  prune();
  const head = (file: string, n: number, fromEnd = false) => {
    const lines = (out[file] ?? "").trimEnd().split("\n");
    return (fromEnd ? lines.slice(-n) : lines.slice(0, n)).join("\n");
  };
  const summary = [
    `--- evidence kept in ${dir}`,
    head("is-system-running.txt", 3),
    head("list-jobs.txt", 20),
    head("failed.txt", 12),
    `--- journal (last lines)`,
    head("journal.txt", 30, true),
  ].join("\n");
  return { dir, summary };
}

function prune(): void {
  try {
    const dirs = fs
      .readdirSync(EVIDENCE_ROOT)
      .map((d) => ({ d, t: fs.statSync(path.join(EVIDENCE_ROOT, d)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const { d } of dirs.slice(KEEP)) fs.rmSync(path.join(EVIDENCE_ROOT, d), { recursive: true, force: true });
  } catch {
    // best effort
  }
}
