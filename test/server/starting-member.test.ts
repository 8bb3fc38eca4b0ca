/**
 * The client ports open before a member has read its data dir (so a port conflict is reported
 * before data is touched). Requests arriving in that window once threw TypeErrors (issue 14 #5:
 * `Maintenance.Status` → "Cannot read properties of undefined (reading 'revision')" in the log);
 * they must get an answer or a clean etcd error instead.
 */
import { strict as assert } from "node:assert";
import pino from "pino";
import { EtcdError } from "../../node-runtime/server/errors";
import { Member } from "../../node-runtime/server/member";
import { parseConfig } from "../../node-runtime/server/config";
import { Metrics } from "../../node-runtime/server/obs/metrics";
import type { ReloadingTls } from "../../node-runtime/server/tls";
import { clusterService, kvService, maintenanceService, unaryFunction } from "../../node-runtime/server/api/services";

describe("a member that is still starting", () => {
  const cfg = parseConfig(
    [
      "--name=m1",
      "--initial-cluster=m1=https://127.0.0.1:2380",
      "--initial-advertise-peer-urls=https://127.0.0.1:2380",
      "--listen-peer-urls=https://127.0.0.1:2380",
      "--listen-client-urls=http://127.0.0.1:2379",
      "--peer-cert-file=/nonexistent/peer.crt",
      "--peer-key-file=/nonexistent/peer.key",
      "--peer-trusted-ca-file=/nonexistent/ca.crt",
    ],
    {},
  );
  // Never started: no raft node, no store, no registry yet (peer TLS is only used by start()).
  const member = new Member(cfg, undefined as unknown as ReloadingTls, pino({ level: "silent" }), new Metrics());
  const ctx = { member, maxRequestBytes: cfg.maxRequestBytes, maxTxnOps: cfg.maxTxnOps };
  const call = (svc: ReturnType<typeof kvService>, method: string, req: object) => unaryFunction(svc, method)!(req);

  it("answers Maintenance.Status with an empty status instead of throwing", async () => {
    const st = (await call(maintenanceService(ctx), "Status", {})) as { header: { revision: string; member_id: string }; leader: string; errors: string[] };
    assert.equal(st.header.revision, "0");
    assert.equal(st.header.member_id, String(member.id));
    assert.equal(st.leader, "0");
    assert.deepEqual(st.errors, []);
  });

  it("answers reads, writes, hashes, alarms and member lists with 'no leader', never a TypeError", async () => {
    const cases: Array<[ReturnType<typeof kvService>, string, object]> = [
      [kvService(ctx), "Range", { key: Buffer.from("k"), serializable: true }],
      [kvService(ctx), "Range", { key: Buffer.from("k") }],
      [kvService(ctx), "Put", { key: Buffer.from("k"), value: Buffer.from("v") }],
      [maintenanceService(ctx), "Hash", {}],
      [maintenanceService(ctx), "HashKV", { revision: "0" }],
      [clusterService(ctx), "MemberList", {}],
    ];
    for (const [svc, method, req] of cases) {
      await assert.rejects(call(svc, method, req), (e: unknown) => e instanceof EtcdError && e.message === "etcdserver: no leader", method);
    }
    const alarms = (await call(maintenanceService(ctx), "Alarm", { action: "GET", memberID: "0", alarm: "NONE" })) as { alarms: unknown[] };
    assert.deepEqual(alarms.alarms, []);
  });
});
