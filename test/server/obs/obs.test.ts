import assert from "node:assert/strict";
import { Metrics } from "../../../node-runtime/server/obs/metrics";
import { parseLogLevel } from "../../../node-runtime/server/obs/logger";
import { captureLog } from "../tls/log-capture";

describe("logger and metrics", () => {
  it("writes JSON lines with level, ts, msg and component fields of child loggers", () => {
    const log = captureLog("info");
    log.logger.child({ component: "raft" }).info({ term: 3 }, "became leader");
    log.logger.debug("hidden below the level");
    assert.equal(log.lines.length, 1);
    const line = log.lines[0]!;
    assert.equal(line.level, "info");
    assert.equal(line.msg, "became leader");
    assert.equal(line.component, "raft");
    assert.equal(line.term, 3);
    assert.ok(!Number.isNaN(Date.parse(String(line.ts))));
  });

  it("rejects an unknown log level by name", () => {
    assert.throws(() => parseLogLevel("loud"), /invalid log level "loud"/);
    assert.equal(parseLogLevel("WARN"), "warn");
  });

  it("keeps each member's series on its own registry, with etcd's names", async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.proposalsCommitted.set(5);
    a.leaderChanges.inc();
    a.walFsyncDuration.observe(0.002);
    b.proposalsCommitted.set(9);
    const textA = await a.exposition();
    const textB = await b.exposition();
    assert.match(textA, /^etcd_server_proposals_committed_total 5$/m);
    assert.match(textB, /^etcd_server_proposals_committed_total 9$/m);
    assert.match(textA, /^etcd_server_leader_changes_seen_total 1$/m);
    assert.match(textA, /^etcd_disk_wal_fsync_duration_seconds_bucket\{le="0.004"\} 1$/m);
    for (const name of [
      "etcd_server_proposals_applied_total",
      "etcd_server_proposals_pending",
      "etcd_server_proposals_failed_total",
      "etcd_server_has_leader",
      "etcd_network_peer_round_trip_time_seconds",
      "etcd_network_peer_sent_bytes_total",
      "etcd_network_peer_received_bytes_total",
      "grpc_server_handling_seconds",
      "process_cpu_user_seconds_total",
    ]) {
      assert.match(textA, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
  });
});
