// The member registry a restarting member starts from (issue 14): founding members from the log's
// first entries with their --initial-cluster URLs, never a member --initial-cluster merely lists.
import assert from "node:assert/strict";
import { encodeConfChange } from "../../node-runtime/raft/codec";
import { EntryType, type Entry } from "../../node-runtime/raft/types";
import { memberIdFor } from "../../node-runtime/server/identity";
import { Membership, foundingMemberIds } from "../../node-runtime/server/membership";

const token = "tok";
const url = (n: number) => `https://10.0.0.${n}:2380`;
const founding = [1, 2, 3].map((n) => ({ name: `m${n}`, peerUrl: url(n) }));
const fid = (n: number) => memberIdFor([url(n)], token);
const cc = (index: number, term: number, type: "addNode" | "removeNode", nodeId: number, context = ""): Entry => ({
  index,
  term,
  type: EntryType.ConfChange,
  data: encodeConfChange({ type, nodeId, context: Buffer.from(context) }),
});

describe("member registry at restart", () => {
  it("takes the founding members from the log's leading context-less conf changes", () => {
    const ids = [1, 2, 3].map(fid).sort((a, b) => a - b);
    const log = [...ids.map((id, i) => cc(i + 1, 1, "addNode", id)), { index: 4, term: 2, type: EntryType.Normal, data: Buffer.alloc(0) }, cc(5, 2, "addNode", 99, '{"peerURLs":["https://x:1"]}')];
    assert.deepEqual([...foundingMemberIds(log)].sort((a, b) => a - b), ids);
    assert.deepEqual([...foundingMemberIds(log.slice(1))], [], "a log that does not start at index 1 names no founders");
  });

  it("seeds only founders with their flag URLs; a joined member listed in --initial-cluster is left to the log", () => {
    // m3 was replaced by m4 (run-time ID); m4's flags list m1, m2 and itself
    const flags = [founding[0]!, founding[1]!, { name: "m4", peerUrl: url(4) }];
    const ms = Membership.restart(flags, token, new Set([fid(1), fid(2), fid(3)]), 42);
    assert.equal(ms.clusterId, 42);
    assert.deepEqual(ms.list().map((m) => [m.id, m.name, m.peerURLs]).sort(), [[fid(1), "m1", [url(1)]], [fid(2), "m2", [url(2)]]].sort());
    assert.equal(ms.has(memberIdFor([url(4)], token)), false, "no member invented under an ID m4's URL derives");
  });
});
