import type { SwitchyardError } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { decode, decodeJsonOrMsgpack, encode } from "../src/codec.js";
import { Frame } from "../src/frame.js";
import type { Tensor } from "../src/tensor.js";

const arrays = [
  new Int8Array([-128, 0, 127]),
  new Uint8Array([0, 1, 255]),
  new Int16Array([-32768, 5, 32767]),
  new Uint16Array([0, 7, 65535]),
  new Int32Array([-(2 ** 31), 9, 2 ** 31 - 1]),
  new Uint32Array([0, 11, 2 ** 32 - 1]),
  new Float32Array([0.1, Number.NaN, -3.5]),
  new Float64Array([0.1, Number.NaN, Number.NEGATIVE_INFINITY]),
  new BigInt64Array([-(2n ** 63n), 0n, 2n ** 63n - 1n]),
  new BigUint64Array([0n, 13n, 2n ** 64n - 1n]),
];

/** Copies `bytes` to `offset` bytes into a fresh 8-aligned buffer. */
const atOffset = (bytes: Uint8Array, offset: number) => {
  const buf = new Uint8Array(new ArrayBuffer(bytes.byteLength + 16), offset, bytes.byteLength);
  buf.set(bytes);
  return buf;
};

describe("codec", () => {
  it("round-trips every typed array kind with its constructor, at any byte offset", () => {
    for (const a of arrays) {
      for (const offset of [0, 1, 3, 4]) {
        const back = decode(atOffset(encode({ a }), offset)) as { a: typeof a };
        expect(back.a.constructor.name).toBe(a.constructor.name);
        expect(back.a).toEqual(a);
      }
    }
  });

  it("decodes aligned arrays as views without copying, and copies on request", () => {
    const big = new Float64Array(10_000).map((_, i) => i / 3);
    const bytes = atOffset(encode({ big }), 0);
    const view = (decode(bytes) as { big: Float64Array }).big;
    expect(view.buffer).toBe(bytes.buffer);
    expect(view).toEqual(big);
    const owned = (decode(bytes, { copy: true }) as { big: Float64Array }).big;
    expect(owned.buffer).not.toBe(bytes.buffer);
    expect(owned.byteOffset).toBe(0);
    expect(owned).toEqual(big);
    for (const offset of [1, 2, 5]) {
      const moved = (decode(atOffset(encode({ big }), offset)) as { big: Float64Array }).big;
      expect(moved.byteOffset % 8).toBe(0);
      expect(moved).toEqual(big);
    }
  });

  it("keeps Buffers as msgpack bin", () => {
    const bytes = encode(Buffer.from([1, 2, 3]));
    expect(bytes[0]).toBe(0xc4);
    expect(Array.from(decode(bytes) as Uint8Array)).toEqual([1, 2, 3]);
  });

  it("round-trips Frames with every column kind, bool and string-with-null", () => {
    const f = Frame.fromColumns(
      {
        n: new Float64Array([1.5, Number.NaN]),
        f: new Float32Array([0.25, 2]),
        i: new BigInt64Array([2n ** 60n, -1n]),
        u: new Uint8Array([3, 4]),
        b: new Uint8Array([1, 0]),
        h: new Uint16Array([0x3c00, 0x4000]),
        s: ["x", null],
      },
      { b: "bool", h: "float16" },
    );
    const back = decode(encode({ payload: f })) as { payload: Frame };
    expect(back.payload).toBeInstanceOf(Frame);
    expect(back.payload.columns).toEqual(f.columns);
    expect(back.payload.kinds).toEqual(["float64", "float32", "int64", "uint8", "bool", "float16", "string"]);
    for (const name of f.columns) {
      expect(back.payload.column(name).constructor.name).toBe(f.column(name).constructor.name);
      expect(back.payload.column(name)).toEqual(f.column(name));
    }
    expect(back.payload.column("s")).toEqual(["x", null]);
    expect(back.payload.length).toBe(2);
    for (const offset of [1, 3, 6]) {
      const moved = decode(atOffset(encode(f), offset)) as Frame;
      expect(moved.column("i")).toEqual(f.column("i"));
      expect(moved.column("n")).toEqual(f.column("n"));
    }
    const empty = decode(encode(Frame.fromRecords([{}, {}]))) as Frame;
    expect([empty.columns.length, empty.length]).toEqual([0, 2]);
  });

  it("round-trips Tensors exactly", () => {
    const ts: Tensor[] = [
      { name: "x", dtype: "float32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      { name: "ok", dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) },
      { name: "s", dtype: "string", shape: [1], data: ["hé"] },
      { name: "id", dtype: "int64", shape: [1], data: new BigInt64Array([5n]) },
    ];
    const back = decode(encode(ts)) as Tensor[];
    expect(back).toEqual(ts);
    expect(back.map((t) => t.data.constructor.name)).toEqual([
      "Float32Array",
      "Uint8Array",
      "Array",
      "BigInt64Array",
    ]);
  });

  it("reports bad msgpack as BAD_REQUEST", () => {
    try {
      decode(new Uint8Array([0xc9, 0, 0, 0, 9, 0x54, 99]));
      expect.unreachable();
    } catch (e) {
      expect((e as SwitchyardError).code).toBe("BAD_REQUEST");
    }
  });
});

describe("decodeJsonOrMsgpack", () => {
  const json = (s: string) => new TextEncoder().encode(s);

  it("sniffs JSON by its first non-blank byte and msgpack otherwise", () => {
    expect(decodeJsonOrMsgpack(json('  \n{"inputs": [1]}'))).toEqual({
      format: "json",
      value: { inputs: [1] },
    });
    expect(decodeJsonOrMsgpack(json("[1]"))).toEqual({ format: "json", value: [1] });
    expect(decodeJsonOrMsgpack(encode({ a: 1 }))).toEqual({ format: "msgpack", value: { a: 1 } });
  });

  it("follows the content type", () => {
    expect(decodeJsonOrMsgpack(json('"x"'), "application/json; charset=utf-8").value).toBe("x");
    expect(decodeJsonOrMsgpack(encode({ a: 1 }), "application/msgpack").format).toBe("msgpack");
  });

  it("reports malformed JSON as BAD_REQUEST", () => {
    try {
      decodeJsonOrMsgpack(json("{nope"));
      expect.unreachable();
    } catch (e) {
      expect((e as SwitchyardError).code).toBe("BAD_REQUEST");
      expect((e as SwitchyardError).message).toMatch(/^Invalid input\. Ensure that input is a valid JSON/);
    }
  });
});
