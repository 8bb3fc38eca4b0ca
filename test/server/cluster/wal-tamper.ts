/**
 * Rewrites committed entries inside a stopped member's WAL while keeping every record valid
 * (both CRCs recomputed), so the member replays them as if a peer had sent them that way.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { crc32c } from "../../../node-runtime/storage/crc32c";
import { RecordType, readFrame } from "../../../node-runtime/storage/wal-record";

/**
 * Calls `patch(buf, payloadStart, at)` for every entry record whose payload contains `needle`
 * (`at`: the needle's offset in buf), then fixes that record's CRCs. Returns how many it patched.
 */
export function patchWalEntries(walDir: string, needle: string, patch: (buf: Buffer, payloadStart: number, at: number) => void): number {
  let patched = 0;
  for (const file of fs.readdirSync(walDir).filter((f) => f.endsWith(".wal"))) {
    const p = path.join(walDir, file);
    const buf = fs.readFileSync(p);
    let off = 0;
    let changed = false;
    for (;;) {
      const f = readFrame(buf, off, buf.length);
      if (!f.ok) break;
      const at = buf.subarray(f.payloadStart, f.payloadEnd).indexOf(needle);
      if (f.type === RecordType.Entry && at >= 0) {
        patch(buf, f.payloadStart, f.payloadStart + at);
        buf.writeUInt32LE(crc32c(buf, f.payloadStart, f.payloadEnd), off + 8);
        buf.writeUInt32LE(crc32c(buf, off, off + 12), off + 12);
        patched++;
        changed = true;
      }
      off = f.payloadEnd;
    }
    if (changed) fs.writeFileSync(p, buf);
  }
  return patched;
}
