/**
 * What a member finds on disk when it restarts, on a real data dir of a real member process:
 * request IDs it used before the restart are never used again (issue 12, bug 4), and a snapshot
 * file the WAL does not know — left by a crash between writing the file and its WAL marker — is
 * ignored instead of crash-looping the member (issue 12, bug 2).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { TestCluster } from "../harness/cluster";
import { RawPool, eventually, missingWrites } from "./clients";
import { SnapshotStore, WriteAheadLog } from "../../../node-runtime/storage";
import { decodeConfChange } from "../../../node-runtime/raft/codec";
import { EntryType, type Entry } from "../../../node-runtime/raft/types";
import { decodeEnvelope } from "../../../node-runtime/server/envelope";

/** (origin, request ID) of every entry in the WAL that a member proposed. */
function requestIds(entries: Entry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      if (cc.context.length === 0) continue;
      const ctx = JSON.parse(Buffer.from(cc.context).toString("utf8")) as { origin?: number; seq?: number };
      if (ctx.origin !== undefined) out.push(`${ctx.origin}/${ctx.seq}`);
    } else if (e.data.length > 0) {
      const env = decodeEnvelope(e.data);
      out.push(`${env.origin}/${env.seq}`);
    }
  }
  return out;
}

function restartSuite(snapshotCount: number, body: (h: Harness) => void): () => void {
  return function (this: Mocha.Suite) {
    this.timeout(90_000);
    const h = new Harness();
    before(async () => {
      h.c = await TestCluster.start({ size: 3, snapshotCount });
      h.pool = new RawPool(h.c);
    });
    after(async () => {
      h.pool?.closeAll();
      await h.c?.destroy();
    });
    body(h);
  };
}

/** One member of a 3-member cluster, restarted and inspected on disk. */
class Harness {
  c: TestCluster | undefined;
  pool: RawPool | undefined;
  readonly name = "raftkv-1";
  readonly written = new Map<string, string>();

  dataDir(): string {
    return path.join(this.c!.dir, "data", this.name);
  }

  async start(): Promise<void> {
    this.c!.startMember(this.name);
    this.pool!.reset(this.name);
    await this.c!.waitHealthy([this.name]);
  }

  async restart(signal: NodeJS.Signals): Promise<void> {
    await this.c!.kill(this.name, signal);
    await this.start();
  }

  async write(prefix: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const key = `${prefix}${String(i).padStart(3, "0")}`;
      await this.pool!.of(this.name).put(key, `v-${key}`);
      this.written.set(key, `v-${key}`);
    }
  }
}

describe(
  "cluster: request IDs across restarts",
  restartSuite(100_000, (h) => {
    it("never reuses a request ID after a restart", async () => {
      await h.write("ids/a", 5);
      await h.restart("SIGKILL");
      await h.write("ids/b", 5);
      await h.restart("SIGTERM");
      await h.write("ids/c", 5);
      await h.c!.kill(h.name, "SIGKILL");
      const { wal, recovered } = await WriteAheadLog.open(path.join(h.dataDir(), "wal"));
      await wal.close();
      const ids = requestIds(recovered.entries);
      assert.ok(ids.length >= 15, `expected at least 15 proposed entries in the WAL, found ${ids.length}`);
      const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
      assert.deepEqual(dup, [], "request IDs used twice by the same member");
      await h.start();
      assert.deepEqual(await missingWrites(h.pool!.of(h.name), "ids/", h.written), []);
    });
  }),
);

describe(
  "cluster: a snapshot file the WAL does not know",
  restartSuite(20, (h) => {
  it("ignores a snapshot file that has no WAL marker (crash inside a snapshot install)", async () => {
    await h.write("orphan/", 60);
    const snapDir = path.join(h.dataDir(), "snap");
    await eventually("a snapshot to be saved", async () => (fs.existsSync(snapDir) && fs.readdirSync(snapDir).some((f) => f.endsWith(".snap")) ? true : undefined));
    await h.c!.kill(h.name, "SIGKILL");
    // What a crash between writing a leader's snapshot and marking it in the WAL leaves: a valid
    // snapshot file far ahead of this member's log.
    const store = new SnapshotStore(snapDir);
    const latest = (await store.loadLatest())!;
    const { wal, recovered } = await WriteAheadLog.open(path.join(h.dataDir(), "wal"));
    await wal.close();
    const last = recovered.entries.at(-1)?.index ?? recovered.snapshot!.index;
    const orphanIndex = last + 1000;
    await store.save({ meta: { ...latest.meta, index: orphanIndex, term: latest.meta.term + 1 }, data: latest.data });

    await h.start();
    await h.write("orphan/after", 5);
    assert.deepEqual(await missingWrites(h.pool!.of(h.name), "orphan/", h.written), []);
    const st = (await h.c!.status(h.name))!;
    assert.ok(st.appliedIndex < orphanIndex, `applied index ${st.appliedIndex} comes from the orphan snapshot`);
  });
  }),
);
