/**
 * `npm run chaos`: every nemesis against raftkv and against etcd 3.4 (Debian's /usr/bin/etcd),
 * in the same namespaces with the same certificates and flags, one fresh cluster per
 * (implementation, nemesis). Writes bench/results/chaos.json and chaos.md.
 *
 *   npm run chaos -- [--members 5] [--cycles 2] [--fault-ms 5000] [--seed N]
 *                    [--impl raftkv,etcd] [--nemesis name,name] [--out bench/results]
 *
 * Needs root (namespaces, iptables). Cleans up its namespaces, bridge, processes and temp dir on
 * every exit path, including SIGINT/SIGTERM.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ensureBuilt, REPO } from "../server/harness/cluster";
import { ETCD_BIN, type Impl } from "./cluster";
import { ChaosNet } from "./net";
import { NEMESES, nemesisByName } from "./nemesis";
import { renderMarkdown } from "./report";
import { runNemesis, type RunResult } from "./suite";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

async function main(): Promise<void> {
  const members = Number(arg("members", "5"));
  const cycles = Number(arg("cycles", "2"));
  const faultMs = Number(arg("fault-ms", "5000"));
  const seed = Number(arg("seed", String(Date.now() % 1_000_000)));
  const impls = arg("impl", "raftkv,etcd").split(",") as Impl[];
  const nemeses = arg("nemesis", NEMESES.map((n) => n.name).join(",")).split(",").map(nemesisByName);
  const out = path.resolve(REPO, arg("out", "bench/results"));
  for (const i of impls) if (i !== "raftkv" && i !== "etcd") throw new Error(`--impl: raftkv or etcd, got ${i}`);
  if (impls.includes("etcd") && !fs.existsSync(ETCD_BIN)) throw new Error(`${ETCD_BIN} missing: apt-get install -y etcd-server`);
  if (process.getuid?.() !== 0) throw new Error("npm run chaos needs root (network namespaces, iptables)");

  ensureBuilt();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "raftkv-chaos-"));
  let net: ChaosNet | undefined;
  const cleanup = async (): Promise<void> => {
    // Namespaces' close() kills every process still inside them (our members).
    await net?.close();
    net = undefined;
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`chaos: ${sig}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const results: RunResult[] = [];
  const started = new Date();
  try {
    net = await ChaosNet.open(members + 1);
    console.log(`chaos: ${members} members, ${cycles} cycle(s) of ${faultMs} ms per nemesis, seed ${seed}, namespaces ${net.slots[0]!.netns}.., bridge ${net.bridge}`);
    for (const nemesis of nemeses) {
      // The seed of a nemesis depends on its place in the full list, so a subset repeats the same choices.
      const k = NEMESES.indexOf(nemesis);
      for (const impl of impls) {
        const r = await runNemesis({ impl, net, size: members, nemesis, cycles, faultMs, dir: tmp, seed: seed + k, log: (l) => console.log(l) });
        results.push(r);
        console.log(
          `== ${impl} ${nemesis.name}: ${r.ops} ops (${r.ok} ok, ${r.fail} fail, ${r.unknown} unknown), ${r.verdict}, converged ${r.converged}, recovery ${r.heals.map((h) => h.recoveryMs ?? "none").join("/")} ms, disrupted heals ${r.disruptedHeals}/${r.heals.length}`,
        );
        if (r.verdict !== "linearizable") console.log(r.checkDetail);
        for (const e of r.errors) console.log(`   ! ${e}`);
      }
    }
  } finally {
    await cleanup();
  }
  fs.mkdirSync(out, { recursive: true });
  const meta = { started: started.toISOString(), members, cycles, faultMs, seed, etcdVersion: "3.4.23 (Debian etcd-server)", node: process.version, cpus: os.cpus().length };
  fs.writeFileSync(path.join(out, "chaos.json"), JSON.stringify({ meta, results }, null, 2) + "\n");
  fs.writeFileSync(path.join(out, "chaos.md"), renderMarkdown(meta, results));
  console.log(`chaos: wrote ${path.relative(REPO, path.join(out, "chaos.md"))} and chaos.json`);
  const bad = results.filter((r) => r.impl === "raftkv" && (r.verdict === "NOT linearizable" || !r.converged));
  process.exitCode = bad.length > 0 ? 1 : 0;
}

main().catch((e: unknown) => {
  console.error(`chaos: ${(e as Error).message}`);
  process.exitCode = 2;
});
