/**
 * Reads an etcd backend database (ours or one written by a real etcd) back into the store's
 * snapshot state: every stored revision with its create/mod revision, version and lease, the
 * leases, alarms and the compaction revision, as etcd's mvcc store restores them.
 */
import { KeyIndex, Mvcc, type Rec } from "../mvcc";
import type { SnapshotState } from "../snapshot";
import type { AlarmMember } from "../types";
import { BoltReader } from "./bbolt-reader";
import { AUTH_ENABLED_KEY, AUTH_REVISION_KEY, decodeAuthBuckets } from "./auth-schema";
import { CONSISTENT_INDEX, FINISHED_COMPACT, SCHEDULED_COMPACT, decodeAlarm, decodeKeyValue, decodeLease, parseRevKey } from "./schema";

export interface ImportedBackend {
  /** The state with `appliedIndex` set to etcd's consistent index. */
  state: SnapshotState;
  /** Keys and revisions read (every record in the key bucket). */
  records: number;
}

export function importBackend(reader: BoltReader): ImportedBackend {
  const bucket = (name: string) => reader.bucket(name);
  let consistentIndex = 0;
  let finished = 0;
  let scheduled = 0;
  const meta = bucket("meta");
  if (meta) {
    for (const e of reader.entries(meta)) {
      const k = e.key.toString("latin1");
      if (k === CONSISTENT_INDEX && e.value.length === 8) consistentIndex = Number(e.value.readBigUInt64BE(0));
      else if (k === FINISHED_COMPACT) finished = parseRevKey(e.value).main;
      else if (k === SCHEDULED_COMPACT) scheduled = parseRevKey(e.value).main;
    }
  }

  const leases: { id: string; ttl: number }[] = [];
  const leaseB = bucket("lease");
  if (leaseB) for (const e of reader.entries(leaseB)) leases.push(decodeLease(e.value));

  const alarms: AlarmMember[] = [];
  const alarmB = bucket("alarm");
  if (alarmB) for (const e of reader.entries(alarmB)) alarms.push(decodeAlarm(e.key));

  // etcd's auth store (users with their bcrypt hashes, roles, enabled flag, revision).
  let authEnabled: Buffer | undefined;
  let authRevision: Buffer | undefined;
  const authB = bucket("auth");
  if (authB) {
    for (const e of reader.entries(authB)) {
      const k = e.key.toString("latin1");
      if (k === AUTH_ENABLED_KEY) authEnabled = e.value;
      else if (k === AUTH_REVISION_KEY) authRevision = e.value;
    }
  }
  const values = (name: string): Buffer[] => {
    const b = bucket(name);
    return b ? [...reader.entries(b)].map((e) => Buffer.from(e.value)) : [];
  };
  const auth = decodeAuthBuckets(authEnabled, authRevision, values("authUsers"), values("authRoles"));

  const byKey = new Map<string, KeyIndex>();
  const leaseIds = new Map<string, string>([["0", "0"]]);
  for (const l of leases) leaseIds.set(l.id, l.id);
  let log: Rec[] = [];
  let maxRev = 0;
  const keyB = bucket("key");
  if (keyB) {
    for (const e of reader.entries(keyB)) {
      const rev = parseRevKey(e.key);
      const kv = decodeKeyValue(e.value);
      let ki = byKey.get(kv.key);
      if (!ki) {
        ki = new KeyIndex(kv.key);
        byKey.set(kv.key, ki);
      }
      const rec: Rec = rev.tombstone
        ? { ki, mod: rev.main, sub: rev.sub, create: 0, ver: 0, val: null, lease: "0" }
        : { ki, mod: rev.main, sub: rev.sub, create: kv.create, ver: kv.version, val: kv.value, lease: leaseIds.get(kv.lease) ?? kv.lease };
      ki.recs.push(rec);
      log.push(rec);
      maxRev = rev.main;
    }
  }
  let keys = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let compactRevision = finished;
  if (scheduled > finished) {
    // A compaction etcd had scheduled but not finished: etcd redoes it on start, so do we.
    const m = new Mvcc(keys, log);
    m.compact(scheduled);
    keys = m.index.toArray();
    log = m.log;
    compactRevision = scheduled;
  }
  return {
    state: {
      appliedIndex: consistentIndex,
      revision: Math.max(maxRev, compactRevision, 1),
      compactRevision,
      alarms,
      leases,
      keys,
      log,
      ...(auth ? { auth } : {}),
    },
    records: log.length,
  };
}
