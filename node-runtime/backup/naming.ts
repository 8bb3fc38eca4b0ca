/**
 * Where backups live in S3 and what their object keys say. A key is
 *   <prefix><UTC time yyyymmddThhmmssZ>-<reason>-<member>-rev<revision>.db
 * so the lexical order of keys under a prefix is their time order, and a listing alone tells an
 * operator when, why and from which member each snapshot was taken. Pure: no I/O.
 */

export type BackupReason = "scheduled" | "pre-change" | "manual";
export const BACKUP_REASONS: readonly BackupReason[] = ["scheduled", "pre-change", "manual"];

export class BackupError extends Error {
  override readonly name = "BackupError";
}

export interface S3Location {
  bucket: string;
  /** The object key, or a prefix when it ends in "/" (or is empty). */
  key: string;
}

/** `s3://bucket/key`; bucket names as S3 allows them (3-63 lowercase letters, digits, '.', '-'). */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (m === null) throw new BackupError(`${JSON.stringify(url)} is not an S3 URL (s3://bucket/key or s3://bucket/prefix/)`);
  return { bucket: m[1]!, key: m[2] ?? "" };
}

export function isS3Url(source: string): boolean {
  return source.startsWith("s3://");
}

/** A prefix as keys use it: no leading slash, a trailing one unless empty. */
export function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, "");
  if (p !== "" && !/^[A-Za-z0-9!_.*'()/-]+$/.test(p)) throw new BackupError(`backup prefix ${JSON.stringify(prefix)}: use letters, digits and !_.*'()/-`);
  return p === "" || p.endsWith("/") ? p : `${p}/`;
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
}

export function backupKey(prefix: string, taken: Date, reason: BackupReason, member: string, revision: number): string {
  if (!/^[A-Za-z0-9._-]+$/.test(member)) throw new BackupError(`member name ${JSON.stringify(member)} cannot be part of an object key`);
  return `${normalizePrefix(prefix)}${stamp(taken)}-${reason}-${member}-rev${revision}.db`;
}

export interface ParsedKey {
  taken: Date;
  reason: BackupReason;
  member: string;
  revision: number;
}

/** The parts of a key backupKey made; undefined for any other object under the prefix. */
export function parseBackupKey(key: string): ParsedKey | undefined {
  const m = /(?:^|\/)(\d{8})T(\d{6})Z-(scheduled|pre-change|manual)-([A-Za-z0-9._-]+)-rev(\d+)\.db$/.exec(key);
  if (m === null) return undefined;
  const [d, t] = [m[1]!, m[2]!];
  const taken = new Date(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${t.slice(0, 2)}:${t.slice(2, 4)}:${t.slice(4, 6)}Z`);
  return { taken, reason: m[3] as BackupReason, member: m[4]!, revision: Number(m[5]) };
}

export interface ListedObject {
  key: string;
  size: number;
}

/** The backups among the listed objects, newest first. */
export function backupsNewestFirst(objects: readonly ListedObject[]): Array<ListedObject & ParsedKey> {
  return objects
    .flatMap((o) => {
      const p = parseBackupKey(o.key);
      return p === undefined ? [] : [{ ...o, ...p }];
    })
    .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
}

/**
 * Which backups retention removes: those taken more than retentionDays before now, but never the
 * newest one, so a cluster whose backups stopped still has its last snapshot.
 */
export function expiredBackups(objects: readonly ListedObject[], now: Date, retentionDays: number): string[] {
  const sorted = backupsNewestFirst(objects);
  const cutoff = now.getTime() - retentionDays * 86_400_000;
  return sorted.slice(1).filter((b) => b.taken.getTime() < cutoff).map((b) => b.key);
}
