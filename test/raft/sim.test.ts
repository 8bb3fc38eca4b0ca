import assert from "node:assert/strict";
import { runSeed } from "./sim/scenario";

// A few hundred seeds per `npm test`; thousands: npm run sim:core -- --seeds 10000
const SEEDS = 300;

describe("raft simulator (seeded chaos: safety after every step, liveness after healing)", () => {
  it(`passes seeds 1..${SEEDS}`, function () {
    this.timeout(600_000);
    const failures: string[] = [];
    let applied = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        applied += runSeed(seed).applied;
      } catch (e) {
        failures.push(`${(e as Error).message.split("\n")[0]} (replay: npm run sim:core -- --seed ${seed})`);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(applied > SEEDS * 50, `the runs made progress (${applied} entries applied)`);
  });

  it("replays a seed exactly", () => {
    assert.deepEqual(runSeed(4242), runSeed(4242));
  });
});
