/**
 * Kills a real writer process (SIGKILL) at random moments, many times over the same WAL
 * directory, and checks after each kill that recovery returns a state the acknowledged
 * operations allow: every acknowledged save and marker is there with identical content, at
 * most a prefix of the unacknowledged ones follows, and nothing is reported corrupt.
 *
 * Seed: RAFTKV_CRASH_SEED (printed on failure). More iterations: RAFTKV_CRASH_ITERATIONS.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WriteAheadLog, type WalRecovered } from "../../node-runtime/storage";
import { payloadFor, rng } from "./support/payload";
import { describe as describeState, EMPTY_MODEL, possibleStates, sameState, type ModelOp, type ModelState } from "./support/wal-model";

const WRITER = join(__dirname, "fixtures", "wal-crash-writer.ts");
const ITERATIONS = Number(process.env.RAFTKV_CRASH_ITERATIONS ?? 40);
const SEED = Number(process.env.RAFTKV_CRASH_SEED ?? Date.now() % 1_000_000);
const SEGMENT_BYTES = 16 * 1024;

interface RunOutput {
  ops: ModelOp[];
  acked: number;
  sawReady: boolean;
  stderr: string;
}

/** Runs the writer until a random kill; resolves once it has exited and its output is drained. */
function runAndKill(dir: string, journal: string, seed: number, killAfterReadyMs: number | undefined, killAfterSpawnMs: number): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, dir, String(seed), String(SEGMENT_BYTES), journal], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let sawReady = false;
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => void child.kill("SIGKILL");
    if (killAfterReadyMs === undefined) timer = setTimeout(kill, killAfterSpawnMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (!sawReady && out.startsWith("ready\n")) {
        sawReady = true;
        if (killAfterReadyMs !== undefined) timer = setTimeout(kill, killAfterReadyMs);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== "SIGKILL") {
        reject(new Error(`writer exited on its own (code ${code}, signal ${signal}): ${err}`));
        return;
      }
      // The writer's journal (a regular file written with writeSync) holds every "issue" line
      // before its call starts. A line cut by the kill was never completed, so its call was never made.
      let text = "";
      try {
        text = readFileSync(journal, "utf8");
      } catch {
        // The kill landed before the writer opened its journal: nothing was issued.
      }
      const lines = text.split("\n").slice(0, -1);
      const ops: ModelOp[] = [];
      let acked = 0;
      for (const line of lines) {
        if (line.startsWith("issue ")) ops.push(JSON.parse(line.slice(6)) as ModelOp);
        else if (line.startsWith("ack ")) {
          assert.equal(Number(line.slice(4)), ops[acked]?.id, "acknowledgements arrive in call order");
          acked++;
        }
      }
      resolve({ ops, acked, sawReady, stderr: err });
    });
  });
}

function toModel(r: WalRecovered): ModelState {
  const last = r.entries.length ? r.entries[r.entries.length - 1].index : (r.snapshot?.index ?? 0);
  return {
    hardState: r.hardState,
    marker: r.snapshot ? { index: r.snapshot.index, term: r.snapshot.term } : undefined,
    log: r.entries.map((e) => ({ index: e.index, term: e.term })),
    last,
  };
}

describe("WAL crash safety (SIGKILL of a real writer process)", function () {
  this.timeout(120_000);
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "raftkv-wal-crash-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`recovers every acknowledged entry after ${ITERATIONS} random kills (seed ${SEED})`, async () => {
    const random = rng(SEED);
    const walDir = join(dir, "wal");
    let base: ModelState = EMPTY_MODEL;
    let totalAcked = 0;
    let totalRecoveredUnacked = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      // One kill in five lands during start-up or recovery itself.
      const early = random() < 0.2;
      const run = await runAndKill(walDir, join(dir, `journal-${i}`), Math.floor(random() * 2 ** 31), early ? undefined : Math.floor(random() * 250), Math.floor(random() * 400));
      const logs: string[] = [];
      const { wal, recovered } = await WriteAheadLog.open(walDir, { segmentBytes: SEGMENT_BYTES, logger: (m) => logs.push(m) });
      await wal.close();

      const got = toModel(recovered);
      const candidates = possibleStates(base, run.ops, run.acked);
      const match = candidates.findIndex((c) => sameState(c, got));
      assert.ok(
        match >= 0,
        `seed ${SEED} iteration ${i}: recovered ${describeState(got)} is not a state the ${run.acked} acknowledged of ${run.ops.length} issued ops allow; ` +
          `expected at least ${describeState(candidates[0])}\nwriter stderr: ${run.stderr}`,
      );
      for (const e of recovered.entries) {
        assert.deepEqual(Buffer.from(e.data), Buffer.from(payloadFor(e.index, e.term)), `entry ${e.index} content (seed ${SEED})`);
        assert.equal(e.type, 0);
      }
      if (recovered.snapshot) assert.deepEqual(recovered.snapshot.confState.voters, [1, 2, 3]);
      totalAcked += run.acked;
      if (!sameState(candidates[0], got)) totalRecoveredUnacked++;
      base = got;
    }
    // Guards against a run that never got to write (the test would prove nothing).
    assert.ok(totalAcked > ITERATIONS, `only ${totalAcked} operations were acknowledged in ${ITERATIONS} runs`);
    void totalRecoveredUnacked;
  });
});
