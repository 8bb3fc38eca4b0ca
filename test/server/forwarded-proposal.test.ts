import { strict as assert } from "node:assert";
import { encodeConfChange } from "../../node-runtime/raft/codec";
import { EntryType, type Entry } from "../../node-runtime/raft/types";
import { encodeCommand } from "../../node-runtime/kv";
import { EntryKind, encodeEnvelope } from "../../node-runtime/server/envelope";
import { forwardedEntryProblem } from "../../node-runtime/server/forwarded-proposal";

const entry = (type: EntryType, data: Uint8Array): Entry => ({ term: 0, index: 0, type, data });

describe("forwarded proposals", () => {
  const from = 0x1234;
  const put = encodeCommand({ type: "put", req: { key: Buffer.from("k"), value: Buffer.from("v") } });

  it("accepts what a member proposes on its own behalf: kv commands, member attributes, conf changes", () => {
    assert.equal(forwardedEntryProblem(entry(EntryType.Normal, encodeEnvelope(EntryKind.Kv, from, 7, put)), from), undefined);
    const attr = Buffer.from(JSON.stringify({ id: from, name: "raftkv-2", clientURLs: ["https://127.0.0.1:2389"] }));
    assert.equal(forwardedEntryProblem(entry(EntryType.Normal, encodeEnvelope(EntryKind.MemberAttr, from, 8, attr)), from), undefined);
    const cc = encodeConfChange({ type: "addNode", nodeId: 99, context: Buffer.from(JSON.stringify({ name: "", peerURLs: ["https://127.0.0.1:2410"] })) });
    assert.equal(forwardedEntryProblem(entry(EntryType.ConfChange, cc), from), undefined);
  });

  it("refuses what no member could apply, or a proposal in another member's name (a 4-byte proposal killed every member)", () => {
    assert.match(forwardedEntryProblem(entry(EntryType.Normal, Buffer.from([0xde, 0xad, 0xbe, 0xef])), from)!, /shorter than its 17-byte header/);
    assert.match(forwardedEntryProblem(entry(EntryType.Normal, new Uint8Array(0)), from)!, /empty entry/);
    assert.match(forwardedEntryProblem(entry(EntryType.Normal, encodeEnvelope(EntryKind.Kv, from + 1, 7, put)), from)!, /forwarded by another/);
    assert.ok(forwardedEntryProblem(entry(EntryType.Normal, encodeEnvelope(EntryKind.Kv, from, 7, Buffer.from([1, 2, 3]))), from));
    assert.ok(forwardedEntryProblem(entry(EntryType.Normal, encodeEnvelope(EntryKind.MemberAttr, from, 7, Buffer.from("{not json"))), from));
    assert.ok(forwardedEntryProblem(entry(EntryType.ConfChange, Buffer.from([9, 9])), from));
  });
});
