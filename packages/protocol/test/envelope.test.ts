// The batch envelope codec: parts survive a round trip byte for byte, and every malformed envelope is one clean
// BAD_REQUEST naming what is wrong, never an exception of another kind or a part made up from garbage.
import { describe, expect, it } from "vitest";
import {
  headerBlock,
  headerBlockBytes,
  MAX_ENVELOPE_PARTS,
  packEnvelope,
  partBytes,
  SwitchyardError,
  unpackEnvelope,
} from "../src/mod.js";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** A BAD_REQUEST SwitchyardError whose message matches `message`. */
const badRequest = (message: RegExp) =>
  expect.objectContaining({
    name: SwitchyardError.name,
    code: "BAD_REQUEST",
    message: expect.stringMatching(message),
  });

describe("batch envelope codec", () => {
  const headers: [string, string[]][] = [
    ["content-type", ["application/json"]],
    ["x-request-id", ["a-1"]],
    ["x-multi", ["one", "twö"]],
  ];

  it("writes a header block exactly as NATS puts headers on the wire, and counts its bytes", () => {
    const block = headerBlock(headers);
    expect(text.decode(block)).toBe(
      "NATS/1.0\r\ncontent-type: application/json\r\nx-request-id: a-1\r\nx-multi: one\r\nx-multi: twö\r\n\r\n",
    );
    expect(headerBlockBytes(headers)).toBe(block.byteLength);
    expect(headerBlockBytes([])).toBe(headerBlock([]).byteLength);
  });

  it("round-trips parts in order, empty ones included, at the size partBytes says", () => {
    const parts = [
      { headers: headerBlock(headers), body: utf8.encode('{"inputs":[[1,2]]}') },
      { headers: new Uint8Array(0), body: new Uint8Array(0) },
      { headers: headerBlock([["x-request-id", ["b"]]]), body: Uint8Array.from([0, 255, 7]) },
    ];
    const packed = packEnvelope(parts);
    expect(packed.byteLength).toBe(
      parts.reduce((n, p) => n + partBytes(p.headers.byteLength, p.body.byteLength), 0),
    );
    const back = unpackEnvelope(packed, "3");
    expect(back).toHaveLength(3);
    back.forEach((p, i) => {
      expect(Array.from(p.headers)).toEqual(Array.from(parts[i]!.headers));
      expect(Array.from(p.body)).toEqual(Array.from(parts[i]!.body));
    });
    // Parts are read from a view anywhere inside a larger buffer (as NATS hands message data).
    const framed = new Uint8Array(packed.byteLength + 10);
    framed.set(packed, 5);
    const inner = unpackEnvelope(framed.subarray(5, 5 + packed.byteLength), "3");
    expect(text.decode(inner[0]!.body)).toBe('{"inputs":[[1,2]]}');
  });

  it("refuses a count that is not a whole number from 1 to the most parts allowed", () => {
    const one = packEnvelope([{ headers: new Uint8Array(0), body: utf8.encode("x") }]);
    for (const count of ["0", "-1", "1.5", "abc", "", String(MAX_ENVELOPE_PARTS + 1)]) {
      expect(() => unpackEnvelope(one, count)).toThrow(
        badRequest(/x-switchyard-batch must be a whole number/),
      );
    }
  });

  it("refuses an envelope cut short, announcing more than it holds, or with bytes after its last part", () => {
    const packed = packEnvelope([
      { headers: headerBlock(headers), body: utf8.encode("first") },
      { headers: headerBlock(headers), body: utf8.encode("second") },
    ]);
    expect(() => unpackEnvelope(packed, "3")).toThrow(badRequest(/part 3 of 3 is cut short/));
    expect(() => unpackEnvelope(packed, "1")).toThrow(badRequest(/bytes follow the last of 1 parts/));
    expect(() => unpackEnvelope(packed.subarray(0, packed.byteLength - 1), "2")).toThrow(
      badRequest(/part 2 of 2 is cut short \(body: 6 bytes announced\)/),
    );
    expect(() => unpackEnvelope(packed.subarray(0, 2), "2")).toThrow(badRequest(/part 1 of 2 is cut short/));
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 0xffffffff, true);
    expect(() => unpackEnvelope(huge, "1")).toThrow(badRequest(/4294967295 bytes announced/));
    expect(() => unpackEnvelope(new Uint8Array(0), "1")).toThrow(badRequest(/cut short/));
  });
});
