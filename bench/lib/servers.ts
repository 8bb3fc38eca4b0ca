/**
 * The servers the one-off benches (bench/range-watchers.ts, bench/txn-ranges.ts) compare, started
 * one after the other: etcd 3.4.23 (one member, Debian's etcd-server) and raftkv (3 members of the
 * dist bundle through the test harness). Each is handed over running and stopped afterwards,
 * also when the measurement fails.
 */
import * as grpc from "@grpc/grpc-js";
import * as fs from "node:fs";
import type { ClientCertPaths } from "../../node-runtime/pki";
import { startReferenceEtcd } from "../../test/helpers/etcd-reference";
import { clientAddress } from "../../test/server/cluster/clients";
import { TestCluster } from "../../test/server/harness/cluster";

export interface BenchServer {
  kind: "etcd" | "raftkv";
  /** host:port of the member to load: etcd's only member, raftkv's leader. */
  address: string;
  files: ClientCertPaths;
  creds: grpc.ChannelCredentials;
  /** Every member's PID, the loaded member first. */
  pids: number[];
}

function credsOf(files: ClientCertPaths): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(fs.readFileSync(files.ca), fs.readFileSync(files.key), fs.readFileSync(files.cert));
}

/** Runs `f` against etcd, then raftkv (`only` picks one). */
export async function forEachServer(only: string | undefined, f: (s: BenchServer) => Promise<void>): Promise<void> {
  if (only !== undefined && only !== "etcd" && only !== "raftkv") throw new Error(`--only takes etcd or raftkv, not ${only}`);
  if (only !== "raftkv") {
    const etcd = await startReferenceEtcd({ startTimeoutMs: 60_000 });
    try {
      await f({ kind: "etcd", address: `127.0.0.1:${etcd.member.clientPort}`, files: etcd.client, creds: credsOf(etcd.client), pids: [etcd.pid] });
    } finally {
      await etcd.stop();
    }
  }
  if (only !== "etcd") {
    const c = await TestCluster.start({ size: 3 });
    try {
      const leader = await c.leader();
      const files = c.pki.clients["admin"]!;
      const pids = [leader, ...c.members.map((m) => m.name).filter((n) => n !== leader)].map((n) => c.procs.get(n)!.pid!);
      await f({ kind: "raftkv", address: clientAddress(c, leader), files, creds: credsOf(files), pids });
    } finally {
      await c.destroy();
    }
  }
}
