/**
 * `snapshot status` as etcdctl 3.4 computes it (etcdctl/snapshot/v3_snapshot.go Status): after
 * bbolt's consistency check, a CRC-32C over every bucket name and every key and value in
 * bucket order; the revision is the main revision of the last key in the `key` bucket; the key
 * count counts entries of all buckets; the size is the database's page count × page size.
 */
import { crc32c } from "../../storage/crc32c";
import { BoltReader } from "./bbolt-reader";

export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

export class SnapshotStatusError extends Error {}

export function snapshotStatus(reader: BoltReader): SnapshotStatus {
  const problems = reader.check();
  if (problems.length > 0) {
    throw new SnapshotStatusError(`snapshot file integrity check failed. ${problems.length} errors found.\n` + problems.join("\n"));
  }
  let crc = 0;
  let revision = 0;
  let totalKey = 0;
  for (const { name, bucket } of reader.buckets()) {
    crc = crc32c(name, 0, name.length, crc);
    const isKey = name.toString("latin1") === "key";
    for (const e of reader.entries(bucket)) {
      crc = crc32c(e.key, 0, e.key.length, crc);
      crc = crc32c(e.value, 0, e.value.length, crc);
      if (isKey && e.key.length >= 8) revision = Number(e.key.readBigInt64BE(0));
      totalKey++;
    }
  }
  return { hash: crc >>> 0, revision, totalKey, totalSize: reader.dataSize };
}
