/** The results table of a chaos run, as Markdown (bench/results/chaos.md and the README). */
import type { RunResult } from "./suite";

export interface RunMeta {
  started: string;
  members: number;
  cycles: number;
  faultMs: number;
  seed: number;
  etcdVersion: string;
  node: string;
  cpus: number;
}

function recovery(r: RunResult): string {
  if (r.heals.length === 0) return "–";
  return r.heals.map((h) => (h.recoveryMs === null ? "never" : `${(h.recoveryMs / 1000).toFixed(1)}`)).join(" / ") + " s";
}

/** "equal", or why not: hashes that differ, or a member that could not be compared (and why). */
function hashCell(r: RunResult): string {
  const n = Object.keys(r.hashes).length;
  if (r.converged) return `equal (${n})`;
  if (new Set(Object.values(r.hashes)).size > 1) return `**DIFFER** (${Object.entries(r.hashes).map(([k, v]) => `${k} ${v}`).join(", ")})`;
  const why = r.errors.find((e) => e.startsWith("hash comparison:")) ?? "";
  const exited = /member (\S+) exited/.exec(why);
  return exited ? `**not compared: ${exited[1]} exited**` : `**not compared** (${why.slice(17, 120)})`;
}

function terms(r: RunResult): string {
  const bumps = r.heals.map((h) => (h.leaderTermBefore === null || h.leaderTermAfter === null ? "?" : `+${h.leaderTermAfter - h.leaderTermBefore}`));
  return `${r.disruptedHeals}/${r.heals.length} (${bumps.join(", ")})`;
}

export function resultsTable(results: readonly RunResult[]): string {
  const rows = [
    "| nemesis | impl | ops | ok / fail / unknown | verdict | members' HashKV | recovery after heal | heals with a term bump (bump per heal) |",
    "|---|---|---:|---|---|---|---|---|",
  ];
  for (const r of results) {
    rows.push(
      `| ${r.nemesis} | ${r.impl} | ${r.ops} | ${r.ok} / ${r.fail} / ${r.unknown} | ${r.verdict} | ${hashCell(r)} | ${recovery(r)} | ${terms(r)} |`,
    );
  }
  return rows.join("\n");
}

export function renderMarkdown(meta: RunMeta, results: readonly RunResult[]): string {
  const problems = results.filter((r) => r.errors.length > 0 || r.verdict !== "linearizable" || !r.converged);
  return [
    "# Chaos results",
    "",
    `Run ${meta.started}: ${meta.members} members per cluster, ${meta.cycles} fault cycle(s) of ${(meta.faultMs / 1000).toFixed(1)} s per nemesis, seed ${meta.seed}, ` +
      `Node ${meta.node}, ${meta.cpus} CPUs (shared), reference etcd ${meta.etcdVersion}. Rerun: \`npm run chaos -- --members ${meta.members} --cycles ${meta.cycles} --fault-ms ${meta.faultMs} --seed ${meta.seed}\`.`,
    "",
    "Recovery: from the heal until a write through every member succeeded. Term bump: the leader's term just before the heal vs. 1.5 s after recovery.",
    "",
    resultsTable(results),
    "",
    ...(problems.length === 0
      ? []
      : [
          "## Details of runs with findings",
          "",
          ...problems.flatMap((r) => [
            `### ${r.impl} ${r.nemesis}`,
            "",
            "```",
            ...r.events,
            ...(r.verdict === "linearizable" ? [] : [r.checkDetail]),
            ...r.errors.map((e) => `! ${e.slice(0, 1500)}`),
            "```",
            "",
          ]),
        ]),
  ].join("\n");
}
