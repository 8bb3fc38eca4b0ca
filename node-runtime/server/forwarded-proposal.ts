/**
 * A proposal another member forwards to this one (a raft `prop` message) is about to become a
 * log entry that every member applies. The member that proposed it validated the request, but
 * the bytes arrive from the network: an entry that does not even decode would fail to apply on
 * every member, after every restart. So each forwarded entry must decode the way the apply path
 * will decode it, and must say it was proposed by the member that forwarded it (a member only
 * forwards its own proposals). Anything else drops the whole message; the proposer times out.
 */
import { decodeConfChange } from "../raft/codec";
import { EntryType, type Entry } from "../raft/types";
import { decodeCommand } from "../kv";
import { EntryKind, decodeEnvelope } from "./envelope";
import { memberContextOf } from "./membership";

/** Why a forwarded entry may not be proposed, or undefined when it may. */
export function forwardedEntryProblem(e: Entry, from: number): string | undefined {
  try {
    if (e.type === EntryType.ConfChange) {
      memberContextOf(decodeConfChange(e.data));
      return undefined;
    }
    // Empty normal entries are raft's own (a new leader's); a member never forwards one.
    if (e.data.length === 0) return "empty entry";
    const env = decodeEnvelope(e.data);
    if (env.origin !== from) return `entry proposed by member ${env.origin.toString(16)}, forwarded by another`;
    if (env.kind === EntryKind.Kv) decodeCommand(env.payload);
    else JSON.parse(Buffer.from(env.payload).toString("utf8"));
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
