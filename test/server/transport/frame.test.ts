import assert from "node:assert/strict";
import fc from "fast-check";
import { CHUNK_BYTES, FrameError, FrameParser, FrameType, encodeFrame } from "../../../node-runtime/server/transport/frame";

function parseAll(chunks: Buffer[]): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  const p = new FrameParser((type, body) => out.push([type, Buffer.from(body).toString("hex")]));
  for (const c of chunks) p.push(c);
  return out;
}

describe("peer frame parser", () => {
  const frames = [
    encodeFrame(FrameType.Msg, Buffer.from("hello")),
    encodeFrame(FrameType.Msg, Buffer.alloc(0)),
    encodeFrame(FrameType.Ping, Buffer.from("12345678")),
    encodeFrame(FrameType.Msg, Buffer.alloc(70_000, 7)),
  ];
  const stream = Buffer.concat(frames);
  const expected = frames.map((f) => [f[4]!, f.subarray(5).toString("hex")] as [number, string]);

  it("decodes many frames delivered in one chunk", () => {
    assert.deepEqual(parseAll([stream]), expected);
  });

  it("decodes frames delivered one byte at a time (header and body split)", () => {
    const bytes = [...stream].map((b) => Buffer.from([b]));
    assert.deepEqual(parseAll(bytes), expected);
  });

  it("decodes the same frames for every way of cutting the stream", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 20 }), (cuts) => {
        const sorted = [...cuts].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let at = 0;
        for (const c of sorted) {
          chunks.push(stream.subarray(at, c));
          at = c;
        }
        chunks.push(stream.subarray(at));
        assert.deepEqual(parseAll(chunks), expected);
      }),
      { numRuns: 200 },
    );
  });

  it("hands out a frame inside one chunk without copying it", () => {
    const chunk = encodeFrame(FrameType.Msg, Buffer.from("abc"));
    let body: Buffer | undefined;
    new FrameParser((_t, b) => (body = b)).push(chunk);
    assert.equal(body!.buffer, chunk.buffer);
  });

  it("refuses a frame larger than the limit before buffering it", () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(CHUNK_BYTES + 1, 0);
    header[4] = FrameType.Msg;
    assert.throws(() => parseAll([header]), FrameError);
  });
});
