/** SIGKILLs a process in the middle of saving snapshots: the newest acknowledged one (or a newer one) must always load intact. */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotStore } from "../../node-runtime/storage";
import { payloadFor } from "./support/payload";

const WRITER = join(__dirname, "fixtures", "snapshot-crash-writer.ts");

function runAndKill(dir: string, start: number, killAfterMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, dir, String(start)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (!out && !timer) timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== "SIGKILL") return reject(new Error(`writer exited on its own: ${err}`));
      const acks = out.split("\n").slice(0, -1).map((l) => Number(l.slice(4)));
      resolve(acks.length ? acks[acks.length - 1] : start - 1);
    });
  });
}

describe("snapshot crash safety (SIGKILL during saves)", function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "raftkv-snap-crash-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("always loads an intact snapshot at or after the last acknowledged one", async () => {
    let next = 1;
    for (let i = 0; i < 10; i++) {
      const acked = await runAndKill(dir, next, Math.floor(Math.random() * 150));
      const snap = await new SnapshotStore(dir, { logger: (m) => assert.fail(`unexpected warning: ${m}`) }).loadLatest();
      assert.ok(snap, `iteration ${i}: nothing loaded`);
      assert.ok(snap.meta.index >= acked, `loaded ${snap.meta.index}, acknowledged ${acked}`);
      assert.deepEqual(Buffer.from(snap.data), Buffer.from(payloadFor(snap.meta.index, 1, 200_000 + (snap.meta.index % 7) * 10_000)));
      next = snap.meta.index + 1;
    }
  });
});
