// The one-pass MLflow reply writer against the object path it replaces: for every dtype, shape and layout the
// text must be byte for byte JSON.stringify(predictionsBody(outputs)).
import { Frame, type Payload, type Tensor, toFloat16Bits } from "@switchyard/data";
import { prng } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import { predictionsBody, predictionsJson } from "../src/mod.js";

const reference = (p: Payload) => JSON.stringify(predictionsBody(p));
const same = (p: Payload) => expect(predictionsJson(p)).toBe(reference(p));

/** Values whose formatting has edges: signs of zero, the exponent switch at 1e-7 and 1e21, float32's extremes
 * and subnormals, non-finite values (null in MLflow's JSON). */
const EDGES = [
  0,
  -0,
  1,
  -1,
  0.1,
  1 / 3,
  1e-7,
  9.999999e-8,
  1e-6,
  1e20,
  1e21,
  3.4e38,
  3.4028234663852886e38,
  -3.4028234663852886e38,
  1.1754943508222875e-38, // float32's smallest normal
  1.401298464324817e-45, // float32's smallest subnormal
  5e-324,
  Number.MAX_VALUE,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];

/** `n` float64 values: the edges, then random bit patterns (every class of double, NaN and subnormals included)
 * and random magnitudes. */
function randomDoubles(n: number, seed: number): number[] {
  const rand = prng(seed);
  const bits = new Uint32Array(2);
  const asDouble = new Float64Array(bits.buffer);
  const out = [...EDGES];
  while (out.length < n) {
    if (out.length % 2) {
      bits[0] = Math.floor(rand() * 2 ** 32);
      bits[1] = Math.floor(rand() * 2 ** 32);
      out.push(asDouble[0]!);
    } else {
      out.push((rand() * 2 - 1) * 10 ** Math.floor(rand() * 80 - 40));
    }
  }
  return out.slice(0, n);
}

/** `n` float32 values: the edges rounded to float32, then random bit patterns (subnormals, NaN, ±Infinity). */
function randomFloats(n: number, seed: number): Float32Array {
  const rand = prng(seed);
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    if (i < EDGES.length) out[i] = EDGES[i]!;
    else if (i % 3 === 0) out[i] = (rand() * 2 - 1) * 10 ** Math.floor(rand() * 20 - 10);
    else bits[i] = Math.floor(rand() * 2 ** 32);
  }
  return out;
}

const f32 = (name: string, shape: number[], data: Float32Array): Tensor => ({
  name,
  dtype: "float32",
  shape,
  data,
});

describe("predictionsJson", () => {
  it("writes float32 and float64 outputs exactly as JSON.stringify of the reply object", () => {
    const floats = randomFloats(4000, 1);
    for (const shape of [[4000], [4000, 1], [1000, 4], [200, 4, 5], [4000, 1, 1]]) {
      same([f32("y", shape, floats)]);
    }
    const doubles = Float64Array.from(randomDoubles(4000, 2));
    same([{ name: "y", dtype: "float64", shape: [4000], data: doubles }]);
    same([{ name: "y", dtype: "float64", shape: [2000, 2], data: doubles }]);
    // Outputs of a few values are written value by value (a one-row request's reply): every value on that path too.
    for (let i = 0; i < 4000; i++) {
      same([f32("y", [1, 1], floats.subarray(i, i + 1))]);
      same([{ name: "y", dtype: "float64", shape: [1], data: doubles.subarray(i, i + 1) }]);
      if (i % 4 === 0) {
        same([f32("y", [4], floats.subarray(i, i + 4))]);
        same([{ name: "y", dtype: "float64", shape: [2, 2], data: doubles.subarray(i, i + 4) }]);
      }
    }
    // The body really holds the values (a writer that dropped them would fail here, not only the comparison).
    expect(JSON.parse(predictionsJson([f32("y", [3], new Float32Array([0.5, -0, 3.4e38]))]))).toEqual({
      predictions: [0.5, 0, Math.fround(3.4e38)],
    });
    expect(predictionsJson([f32("y", [2, 1], new Float32Array([Number.NaN, 1e-7]))])).toBe(
      `{"predictions":[null,${Math.fround(1e-7)}]}`,
    );
  });

  it("writes int64 as numbers when exact and decimal strings otherwise, and every integer dtype", () => {
    const rand = prng(3);
    const big = [
      0n,
      -1n,
      2n ** 53n - 1n,
      2n ** 53n,
      -(2n ** 53n) + 1n,
      -(2n ** 53n),
      2n ** 63n - 1n,
      -(2n ** 63n),
    ];
    while (big.length < 500)
      big.push(BigInt(Math.floor((rand() * 2 - 1) * 2 ** 30)) * BigInt(1 + Math.floor(rand() * 2 ** 33)));
    same([{ name: "id", dtype: "int64", shape: [500], data: BigInt64Array.from(big) }]);
    same([{ name: "id", dtype: "int64", shape: [250, 2], data: BigInt64Array.from(big) }]);
    const ubig = BigUint64Array.from(big.map((b) => BigInt.asUintN(64, b)));
    same([{ name: "id", dtype: "uint64", shape: [500], data: ubig }]);
    const ints = Array.from({ length: 300 }, () => Math.floor((rand() * 2 - 1) * 2 ** 31));
    same([{ name: "a", dtype: "int32", shape: [300], data: Int32Array.from(ints) }]);
    same([{ name: "a", dtype: "uint32", shape: [300], data: Uint32Array.from(ints) }]);
    same([{ name: "a", dtype: "int16", shape: [300], data: Int16Array.from(ints) }]);
    same([{ name: "a", dtype: "int8", shape: [100, 3], data: Int8Array.from(ints) }]);
    same([{ name: "a", dtype: "uint8", shape: [300], data: Uint8Array.from(ints) }]);
    expect(
      predictionsJson([
        { name: "id", dtype: "int64", shape: [2], data: new BigInt64Array([2n ** 60n, -3n]) },
      ]),
    ).toBe('{"predictions":["1152921504606846976",-3]}');
  });

  it("writes bool, float16 and string outputs (escapes, nulls) as the object path does", () => {
    const rand = prng(4);
    const bools = Uint8Array.from({ length: 100 }, () => (rand() < 0.5 ? 0 : 1));
    same([{ name: "ok", dtype: "bool", shape: [100], data: bools }]);
    const halves = Uint16Array.from(randomDoubles(300, 5).map((x) => toFloat16Bits(x)));
    same([{ name: "h", dtype: "float16", shape: [300], data: halves }]);
    same([{ name: "h", dtype: "float16", shape: [100, 3], data: halves }]);
    const strings = [
      "",
      "plain",
      'quote " and \\',
      "line\nbreak\ttab\u0001",
      "ünïcødé ✓ 😀",
      "\ud800 lone",
      "</script>",
    ];
    same([{ name: "s", dtype: "string", shape: [strings.length], data: strings }]);
    expect(predictionsJson([{ name: "s", dtype: "string", shape: [2], data: ['a"b', "c"] }])).toBe(
      '{"predictions":["a\\"b","c"]}',
    );
  });

  it("writes several outputs as one record per row, and MLflow's dict form when row counts differ", () => {
    const label: Tensor = {
      name: "label",
      dtype: "int64",
      shape: [3],
      data: new BigInt64Array([1n, 0n, 2n ** 62n]),
    };
    const probs = f32("probabilities", [3, 2], randomFloats(6, 6));
    const score = f32("score", [3, 1], randomFloats(3, 7));
    const text: Tensor = { name: 'na"me', dtype: "string", shape: [3], data: ["x", "y\n", "z"] };
    const cube = f32("cube", [3, 2, 2], randomFloats(12, 8));
    same([label, probs]);
    same([label, probs, score, text, cube]);
    expect(predictionsJson([label, score])).toBe(
      `{"predictions":[{"label":1,"score":${score.data[0]}},{"label":0,"score":${score.data[1]}},{"label":"4611686018427387904","score":${score.data[2]}}]}`,
    );
    same([f32("a", [1], new Float32Array([1])), f32("b", [2], new Float32Array([1, 2]))]);
    same([f32("a", [], new Float32Array([7])), f32("b", [2], new Float32Array([1, 2]))]);
    same([]);
    same([f32("y", [0], new Float32Array(0))]);
    same([f32("y", [], new Float32Array([0.25]))]);
  });

  it("keeps JavaScript's object key rules for integer-like, repeated and __proto__ output names", () => {
    const a = f32("15", [2], new Float32Array([1, 2]));
    const b = f32("output", [2], new Float32Array([3, 4]));
    same([b, a]);
    expect(predictionsJson([b, a])).toBe('{"predictions":[{"15":1,"output":3},{"15":2,"output":4}]}');
    same([b, f32("output", [2], new Float32Array([5, 6]))]);
    same([f32("__proto__", [2], new Float32Array([1, 2])), b]);
    same([f32("0", [1], new Float32Array([1])), f32("x", [2], new Float32Array([1, 2]))]);
  });

  it("writes a Frame's columns (custom models' outputs) like the object path", () => {
    same(Frame.fromColumns({ ok: [true, false], why: ["a", null] }));
    same(Frame.fromColumns({ y: [1, 2.5, Number.NaN] }));
    same(Frame.fromColumns({ id: [1n, 2n ** 60n], p: Float32Array.from(randomFloats(2, 9)) }));
  });
});
