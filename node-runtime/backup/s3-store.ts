/**
 * The bucket as the backup agent uses it: put a file, list a prefix, fetch an object into a
 * file, delete objects. Real S3 through @aws-sdk/client-s3 (credentials from the SDK's default
 * chain: on EC2 the instance profile), or any S3-compatible server when an endpoint is given
 * (path-style requests, as MinIO and s3rver expect).
 */
import { createReadStream, createWriteStream, fsyncSync, openSync, closeSync, renameSync, rmSync, statSync } from "node:fs";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BackupError, type ListedObject } from "./naming";

export interface BackupStore {
  put(bucket: string, key: string, file: string): Promise<void>;
  list(bucket: string, prefix: string): Promise<ListedObject[]>;
  /** Writes the object to `file` (through `<file>.part`, fsynced, renamed). */
  get(bucket: string, key: string, file: string): Promise<void>;
  delete(bucket: string, key: string): Promise<void>;
}

export interface S3Settings {
  region?: string;
  /** An S3-compatible endpoint instead of AWS (a compatibility and test setting). */
  endpoint?: string;
}

/** One line for an operator: the SDK's error name and message, never a stack. */
function s3Failure(what: string, err: unknown): BackupError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode !== undefined ? ` (HTTP ${e.$metadata.httpStatusCode})` : "";
  return new BackupError(`${what}: ${e.name ?? "Error"}: ${e.message ?? String(err)}${status}`);
}

export class S3BackupStore implements BackupStore {
  private readonly client: S3Client;

  constructor(settings: S3Settings) {
    // The hosts run their distribution's Node.js 20 (Debian 13) with the SDK bundled at a fixed
    // version; its notice that later SDK releases need Node 22 would otherwise end every run's log.
    process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
    const region = settings.region ?? process.env["AWS_REGION"] ?? process.env["AWS_DEFAULT_REGION"];
    if (region === undefined || region === "") throw new BackupError("no AWS region: set --region or AWS_REGION");
    this.client = new S3Client({
      region,
      ...(settings.endpoint !== undefined ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
      // Checksums only where S3 requires them: S3-compatible servers do not all read the
      // newer checksum headers or aws-chunked bodies, and the snapshot carries its own SHA-256.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 5,
    });
  }

  async put(bucket: string, key: string, file: string): Promise<void> {
    const size = statSync(file).size;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: createReadStream(file), ContentLength: size, ContentType: "application/octet-stream" }));
    } catch (err) {
      throw s3Failure(`uploading s3://${bucket}/${key}`, err);
    }
  }

  async list(bucket: string, prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    try {
      do {
        const r = await this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token !== undefined ? { ContinuationToken: token } : {}) }));
        for (const o of r.Contents ?? []) if (o.Key !== undefined) out.push({ key: o.Key, size: o.Size ?? 0 });
        token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw s3Failure(`listing s3://${bucket}/${prefix}`, err);
    }
    return out;
  }

  async get(bucket: string, key: string, file: string): Promise<void> {
    const part = `${file}.part`;
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (r.Body === undefined) throw new BackupError(`s3://${bucket}/${key} has no body`);
      await pipeline(r.Body as Readable, createWriteStream(part, { mode: 0o600 }));
      const fd = openSync(part, "r");
      fsyncSync(fd);
      closeSync(fd);
      renameSync(part, file);
    } catch (err) {
      rmSync(part, { force: true });
      if (err instanceof BackupError) throw err;
      throw s3Failure(`downloading s3://${bucket}/${key}`, err);
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      throw s3Failure(`deleting s3://${bucket}/${key}`, err);
    }
  }

  close(): void {
    this.client.destroy();
  }
}
