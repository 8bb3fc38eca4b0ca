/**
 * The whole-member simulator over many seeds (`npm run sim:member -- --seeds 2000`; `npm run sim`
 * runs the raft-core simulator's seeds and then these):
 *   --seeds N [--from S]   seeds S..S+N-1 (default 1..200)
 *   --seed S               one seed, with its event log on failure
 *   --chaos-ms MS          simulated time of faults and client load per seed (default 8000)
 */
import { intFlag } from "../../../helpers/int-flag";
import { runMemberSeed } from "./cluster";

async function main(): Promise<void> {
  const single = intFlag("seed");
  const from = single ?? intFlag("from") ?? 1;
  const count = single !== undefined ? 1 : (intFlag("seeds") ?? 200);
  const chaosMs = intFlag("chaos-ms") ?? 8000;
  // Many seeds: errors without stack traces (the member builds one per refused request); a
  // failing seed's replay (--seed N) keeps them.
  if (single === undefined) Error.stackTraceLimit = 0;
  const started = Date.now();
  const cpuStart = process.cpuUsage();
  let failures = 0;
  let acked = 0;
  let reads = 0;
  let crashes = 0;
  let atCall = 0;
  let torn = 0;
  let snaps = 0;
  let sent = 0;
  const more = { leasesGranted: 0, leasesRevoked: 0, keepAlivesAcked: 0, membersAdded: 0, membersPromoted: 0, membersRemoved: 0, gracefulStops: 0 };
  for (let seed = from; seed < from + count; seed++) {
    try {
      const r = await runMemberSeed(seed, chaosMs);
      acked += r.writesAcked;
      reads += r.readsOk;
      crashes += r.crashes;
      atCall += r.crashesAtDiskCall;
      torn += r.tornTails;
      snaps += r.snapshotsSaved;
      sent += r.snapshotsSent;
      for (const k of Object.keys(more) as Array<keyof typeof more>) more[k] += r[k];
      if (single !== undefined) console.log(JSON.stringify(r));
    } catch (e) {
      failures++;
      const msg = e instanceof Error ? e.message : String(e);
      console.error(`FAIL seed ${seed}: ${single !== undefined ? msg : msg.split("\n")[0]}`);
      console.error(`  replay: npm run sim:member -- --seed ${seed}${chaosMs !== 8000 ? ` --chaos-ms ${chaosMs}` : ""}`);
    }
    const done = seed - from + 1;
    if (done % 100 === 0) {
      const c = process.cpuUsage(cpuStart);
      console.log(`${done} seeds, ${failures} failures, ${((Date.now() - started) / 1000).toFixed(1)}s, ${((c.user + c.system) / 1e6).toFixed(1)} CPU s`);
    }
  }
  const secs = (Date.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  console.log(
    `done: ${count} member seeds from ${from}, ${failures} failures, ${acked} writes acknowledged, ${reads} reads, ${crashes} crashes (${atCall} at a disk call, ${torn} torn tails kept), ${snaps} snapshot files saved, ${sent} sent to followers, ${more.leasesGranted} leases granted (${more.keepAlivesAcked} keep-alives answered, ${more.leasesRevoked} revoked on expiry), ${more.membersAdded} members added, ${more.membersPromoted} promoted, ${more.membersRemoved} removed, ${more.gracefulStops} graceful stops, ${secs.toFixed(1)}s (${((count / secs) * 60).toFixed(0)} seeds/min; ${cpuSecs.toFixed(1)} CPU s, ${((count / cpuSecs) * 60).toFixed(0)} seeds per CPU-minute)`,
  );
  process.exitCode = failures > 0 ? 1 : 0;
}

void main();
