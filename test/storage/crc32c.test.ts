import { strict as assert } from "node:assert";
import fc from "fast-check";
import { crc32c, crc32cInSteps } from "../../node-runtime/storage/crc32c";

/** Bit-at-a-time CRC-32C straight from the definition, to judge the sliced tables. */
function reference(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe("crc32c", () => {
  it("matches the published check value and the RFC 3720 (iSCSI) vectors", () => {
    assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  });

  it("agrees with the bitwise definition for any bytes and any sub-range", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (data, a, b) => {
        const start = data.length ? a % (data.length + 1) : 0;
        const end = start + (data.length - start ? b % (data.length - start + 1) : 0);
        assert.equal(crc32c(data, start, end), reference(data.subarray(start, end)));
      }),
      { numRuns: 500 },
    );
  });

  it("continues a checksum across buffers", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
        assert.equal(crc32c(b, 0, b.length, crc32c(a)), crc32c(Buffer.concat([a, b])));
      }),
    );
  });

  it("in steps: the same checksum, pausing between steps and not after the last", async () => {
    for (const [size, step, want] of [[0, 8, 0], [5, 8, 0], [16, 8, 1], [17, 8, 2], [100, 7, 14]] as const) {
      const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 31) & 0xff));
      let pauses = 0;
      const crc = await crc32cInSteps(data, async () => void pauses++, step);
      assert.equal(crc, crc32c(data), `size ${size}`);
      assert.equal(pauses, want, `pauses for size ${size} step ${step}`);
    }
  });
});
