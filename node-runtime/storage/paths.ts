/** Where a member keeps each kind of durable state inside its data directory. */
import { join } from "node:path";
import { MEMBER_META_FILE } from "./member-meta";

export function storagePaths(dataDir: string): { wal: string; snap: string; member: string } {
  return { wal: join(dataDir, "wal"), snap: join(dataDir, "snap"), member: join(dataDir, MEMBER_META_FILE) };
}
