/**
 * Binary encoding of raft messages and conf changes for the peer transport and the log.
 *
 * Layout: integers are unsigned LEB128 varints (at most 2^53-1), byte strings are a varint
 * length followed by the bytes, booleans one byte 0/1. A message is its type code, from, to,
 * term, then the fields of its type in declaration order. Entries in `app`/`prop` are sent as
 * the first index and a count, then (term, type, data) each: indices are implicit, so a decoded
 * batch is always contiguous.
 *
 * Decoded byte fields (entry data, ctx, snapshot data) are views into the input buffer, not
 * copies: the caller must not reuse that buffer while the message is alive.
 *
 * Terms, indices and commit points in a decoded message are at most MAX_LOG_POSITION (2^52).
 * Raft adds to them (a campaign takes term + 1, an append index + n); a value near 2^53 - 1
 * taken from the wire would make this member's next write of its own state unencodable, i.e.
 * kill it. So such a message is refused at decode, like any other malformed input.
 */
import { EntryType, type ConfChange, type ConfChangeType, type Entry, type Message, type MessageType, type Snapshot } from "./types";

const TYPE_CODES: Record<MessageType, number> = {
  app: 1,
  appResp: 2,
  vote: 3,
  voteResp: 4,
  preVote: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  snap: 9,
  timeoutNow: 10,
  prop: 11,
  readIndex: 12,
  readIndexResp: 13,
};
const TYPES_BY_CODE: (MessageType | undefined)[] = [];
for (const [name, code] of Object.entries(TYPE_CODES)) TYPES_BY_CODE[code] = name as MessageType;

const CC_TYPES: ConfChangeType[] = ["addNode", "addLearner", "removeNode"];

/** The largest term or index a decoded message may carry; see the file comment. */
export const MAX_LOG_POSITION = 2 ** 52;

class Writer {
  buf: Uint8Array;
  pos = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  uint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`codec: cannot encode ${v} as an unsigned integer`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  bool(b: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = b ? 1 : 0;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  uint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.buf.length) throw new Error("codec: truncated integer");
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (v > Number.MAX_SAFE_INTEGER) throw new Error("codec: integer out of range");
        return v;
      }
      mul *= 0x80;
    }
    throw new Error("codec: integer too long");
  }

  bool(): boolean {
    if (this.pos >= this.buf.length) throw new Error("codec: truncated boolean");
    const b = this.buf[this.pos++];
    if (b > 1) throw new Error(`codec: invalid boolean ${b}`);
    return b === 1;
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (n > this.buf.length - this.pos) throw new Error("codec: truncated bytes");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A term, index or commit point: bounded so that raft's own arithmetic stays encodable. */
  logPos(): number {
    const v = this.uint();
    if (v > MAX_LOG_POSITION) throw new Error("codec: term or index out of range");
    return v;
  }

  /** A count of items each at least `minSize` bytes long, checked against what is left. */
  count(minSize: number): number {
    const n = this.uint();
    if (n * minSize > this.buf.length - this.pos) throw new Error("codec: count exceeds input");
    return n;
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new Error("codec: trailing bytes");
  }
}

function writeEntries(w: Writer, ents: Entry[]): void {
  w.uint(ents.length);
  if (ents.length === 0) return;
  w.uint(ents[0].index);
  for (let i = 0; i < ents.length; i++) {
    const e = ents[i];
    if (e.index !== ents[0].index + i) throw new Error("codec: entries are not contiguous");
    w.uint(e.term);
    w.uint(e.type);
    w.bytes(e.data);
  }
}

function readEntries(r: Reader): Entry[] {
  const n = r.count(3);
  if (n === 0) return [];
  const first = r.logPos();
  if (first + n > MAX_LOG_POSITION) throw new Error("codec: term or index out of range");
  const ents = new Array<Entry>(n);
  for (let i = 0; i < n; i++) {
    const term = r.logPos();
    const t = r.uint();
    if (t !== EntryType.Normal && t !== EntryType.ConfChange) throw new Error(`codec: unknown entry type ${t}`);
    ents[i] = { term, index: first + i, type: t, data: r.bytes() };
  }
  return ents;
}

function writeSnapshot(w: Writer, s: Snapshot): void {
  w.uint(s.meta.index);
  w.uint(s.meta.term);
  w.uint(s.meta.confState.voters.length);
  for (const v of s.meta.confState.voters) w.uint(v);
  w.uint(s.meta.confState.learners.length);
  for (const v of s.meta.confState.learners) w.uint(v);
  w.bytes(s.data);
}

function readIds(r: Reader): number[] {
  const n = r.count(1);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.uint());
  return ids;
}

function readSnapshot(r: Reader): Snapshot {
  const index = r.logPos();
  const term = r.logPos();
  const voters = readIds(r);
  const learners = readIds(r);
  return { meta: { index, term, confState: { voters, learners } }, data: r.bytes() };
}

function sizeHint(m: Message): number {
  let n = 64;
  if (m.type === "app" || m.type === "prop") for (const e of m.entries) n += e.data.length + 12;
  else if (m.type === "snap") n += m.snapshot.data.length + 16 * (m.snapshot.meta.confState.voters.length + m.snapshot.meta.confState.learners.length);
  else if (m.type === "readIndex" || m.type === "readIndexResp") n += m.ctx.length;
  return n;
}

export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer(sizeHint(m));
  w.uint(TYPE_CODES[m.type]);
  w.uint(m.from);
  w.uint(m.to);
  w.uint(m.term);
  switch (m.type) {
    case "app":
      w.uint(m.index);
      w.uint(m.logTerm);
      w.uint(m.commit);
      writeEntries(w, m.entries);
      break;
    case "appResp":
      w.uint(m.index);
      w.bool(m.reject);
      w.uint(m.rejectHint);
      w.uint(m.logTerm);
      break;
    case "vote":
    case "preVote":
      w.uint(m.index);
      w.uint(m.logTerm);
      w.bool(m.force);
      break;
    case "voteResp":
    case "preVoteResp":
      w.bool(m.reject);
      break;
    case "heartbeat":
      w.uint(m.commit);
      w.uint(m.readSeq);
      break;
    case "heartbeatResp":
      w.uint(m.readSeq);
      break;
    case "snap":
      writeSnapshot(w, m.snapshot);
      break;
    case "timeoutNow":
      break;
    case "prop":
      writeEntries(w, m.entries);
      break;
    case "readIndex":
      w.bytes(m.ctx);
      break;
    case "readIndexResp":
      w.uint(m.index);
      w.bytes(m.ctx);
      break;
  }
  return w.finish();
}

/** Decode one message; throws an Error (never anything else) on malformed input. */
export function decodeMessage(buf: Uint8Array): Message {
  const r = new Reader(buf);
  const code = r.uint();
  const type = TYPES_BY_CODE[code];
  if (type === undefined) throw new Error(`codec: unknown message type ${code}`);
  const from = r.uint();
  const to = r.uint();
  const term = r.logPos();
  let m: Message;
  switch (type) {
    case "app": {
      const index = r.logPos();
      const logTerm = r.logPos();
      const commit = r.logPos();
      m = { type, from, to, term, index, logTerm, commit, entries: readEntries(r) };
      break;
    }
    case "appResp": {
      const index = r.logPos();
      const reject = r.bool();
      const rejectHint = r.logPos();
      m = { type, from, to, term, index, reject, rejectHint, logTerm: r.logPos() };
      break;
    }
    case "vote":
    case "preVote": {
      const index = r.logPos();
      const logTerm = r.logPos();
      m = { type, from, to, term, index, logTerm, force: r.bool() };
      break;
    }
    case "voteResp":
    case "preVoteResp":
      m = { type, from, to, term, reject: r.bool() };
      break;
    case "heartbeat": {
      const commit = r.logPos();
      m = { type, from, to, term, commit, readSeq: r.logPos() };
      break;
    }
    case "heartbeatResp":
      m = { type, from, to, term, readSeq: r.logPos() };
      break;
    case "snap":
      m = { type, from, to, term, snapshot: readSnapshot(r) };
      break;
    case "timeoutNow":
      m = { type, from, to, term };
      break;
    case "prop":
      m = { type, from, to, term, entries: readEntries(r) };
      break;
    case "readIndex":
      m = { type, from, to, term, ctx: r.bytes() };
      break;
    case "readIndexResp": {
      const index = r.logPos();
      m = { type, from, to, term, index, ctx: r.bytes() };
      break;
    }
  }
  r.end();
  return m;
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const w = new Writer(16 + cc.context.length);
  w.uint(CC_TYPES.indexOf(cc.type));
  w.uint(cc.nodeId);
  w.bytes(cc.context);
  return w.finish();
}

export function decodeConfChange(buf: Uint8Array): ConfChange {
  const r = new Reader(buf);
  const t = r.uint();
  const type = CC_TYPES[t];
  if (type === undefined) throw new Error(`codec: unknown conf change type ${t}`);
  const nodeId = r.uint();
  const context = r.bytes();
  r.end();
  return { type, nodeId, context };
}
