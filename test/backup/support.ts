/**
 * Fixtures shared by the backup suites: s3rver behind the agent's S3BackupStore for one
 * describe block, and a fake member that snapshots a small store.
 */
import * as fs from "node:fs";
import type { MemberView } from "../../node-runtime/backup/agent";
import { S3BackupStore } from "../../node-runtime/backup/s3-store";
import { encodeCommand, KvStore, type KvCommand } from "../../node-runtime/kv";
import { etcdSnapshotChunks } from "../../node-runtime/kv/etcd-backend/export";
import { freePort } from "../helpers/free-port";
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from "../helpers/s3-server";

export interface S3Backups {
  readonly store: S3BackupStore;
  readonly bucket: string;
  readonly endpoint: string;
}

const AWS_ENV = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] as const;

/**
 * Registers before/after hooks in the calling describe block: s3rver on a free loopback port with
 * bucket "raftkv-backups", an S3BackupStore on it, and s3rver's credentials in the AWS_* env (as
 * the SDK reads them on the hosts) until the block ends, when the previous values come back.
 */
export function useS3Backups(): S3Backups {
  let s3: S3Server | undefined;
  let store: S3BackupStore | undefined;
  const saved: Partial<Record<(typeof AWS_ENV)[number], string>> = {};
  before(async () => {
    for (const k of AWS_ENV) if (process.env[k] !== undefined) saved[k] = process.env[k];
    process.env["AWS_ACCESS_KEY_ID"] = S3RVER_CREDENTIALS.accessKeyId;
    process.env["AWS_SECRET_ACCESS_KEY"] = S3RVER_CREDENTIALS.secretAccessKey;
    process.env["AWS_REGION"] = "eu-west-1";
    s3 = await startS3Server({ address: "127.0.0.1", port: await freePort(), bucket: "raftkv-backups" });
    store = new S3BackupStore({ endpoint: s3.endpoint });
  });
  after(async () => {
    store?.close();
    await s3?.stop();
    for (const k of AWS_ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const started = (): S3Server => {
    if (!s3) throw new Error("s3rver is not started (use it inside a test)");
    return s3;
  };
  return {
    get store() {
      started();
      return store!;
    },
    get bucket() {
      return started().bucket;
    },
    get endpoint() {
      return started().endpoint;
    },
  };
}

/** An etcd-format snapshot of a store holding k1..k<keys> (revision keys + 1). */
export function snapshotBytes(keys: number): Buffer {
  const kv = new KvStore();
  for (let i = 1; i <= keys; i++) kv.applyEntry(i, encodeCommand({ type: "put", req: { key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) } } as KvCommand));
  return Buffer.concat([...etcdSnapshotChunks({ kv: kv.view(), members: [], removedMembers: [] }).chunks]);
}

/** A member that names itself and its leader and snapshots `keys` keys; counts its snapshots. */
export class FakeMember implements MemberView {
  snapshots = 0;
  constructor(
    public name: string,
    public leader: string | undefined,
    public keys = 3,
  ) {}
  async identify() {
    return { name: this.name, leader: this.leader };
  }
  async snapshot(file: string) {
    this.snapshots++;
    fs.writeFileSync(file, snapshotBytes(this.keys));
  }
}
