import { Frame } from "@switchyard/data";
import type { Signature } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { frameToModelInputs, modelInputs, numericRowsInput, parseRequestBody } from "../src/mod.js";

const sig = (dtype: "float32" | "float64", k: number | string): Signature => ({
  inputs: [{ name: "input", dtype, shape: ["batch", k] }],
  outputs: [{ name: "output", dtype: "float32", shape: ["batch", 1] }],
});

/** What the general path (Frame, then signature matching) makes of the same body. */
const general = (body: unknown, s: Signature) => {
  const req = parseRequestBody(body);
  return { feeds: modelInputs(req.input, s), params: req.params };
};

describe("numericRowsInput, the realtime fast path", () => {
  const rows = [
    [0.1, -2.5, 1e30],
    [3, 4.000001, -0],
  ];
  it.each([
    ["dataframe_split", { dataframe_split: { columns: ["a", "b", "c"], data: rows } }],
    [
      "dataframe_split with index",
      { dataframe_split: { index: [0, 1], columns: ["x", "y", "z"], data: rows } },
    ],
    ["instances", { instances: rows }],
    ["inputs", { inputs: rows, params: { threshold: 0.5 } }],
  ])("gives exactly what the general path gives for %s", (_what, body) => {
    for (const s of [sig("float32", 3), sig("float64", 3), sig("float32", "k")]) {
      const fast = numericRowsInput(body, s);
      expect(fast).toBeDefined();
      expect(fast).toEqual(general(body, s));
      expect(fast!.feeds[0]!.data.constructor).toBe(general(body, s).feeds[0]!.data.constructor);
    }
  });

  it.each([
    ["a null", { instances: [[1, null, 3]] }],
    ["a string", { instances: [[1, "2", 3]] }],
    [
      "ragged rows",
      {
        instances: [
          [1, 2, 3],
          [4, 5],
        ],
      },
    ],
    ["too few columns", { dataframe_split: { columns: ["a", "b"], data: [[1, 2]] } }],
    ["columns and data of different widths", { dataframe_split: { columns: ["a", "b"], data: [[1, 2, 3]] } }],
    ["records", { dataframe_records: [{ a: 1, b: 2, c: 3 }] }],
    ["two input keys", { instances: [[1, 2, 3]], inputs: [[1, 2, 3]] }],
    ["a scalar list", { instances: [1, 2, 3] }],
    ["no rows", { instances: [] }],
    ["params that are not an object", { instances: [[1, 2, 3]], params: 3 }],
    ["an unknown key", { instances: [[1, 2, 3]], extra: 1 }],
  ])("leaves %s to the general path", (_what, body) => {
    expect(numericRowsInput(body, sig("float32", 3))).toBeUndefined();
  });

  it("only applies to models with one 2-D float input", () => {
    const body = { instances: [[1, 2, 3]] };
    expect(
      numericRowsInput(body, {
        ...sig("float32", 3),
        inputs: [{ name: "x", dtype: "int64", shape: [-1, 3] }],
      }),
    ).toBeUndefined();
    expect(
      numericRowsInput(body, {
        ...sig("float32", 3),
        inputs: [{ name: "x", dtype: "float32", shape: [-1] }],
      }),
    ).toBeUndefined();
    const two = {
      ...sig("float32", 3),
      inputs: [sig("float32", 3).inputs[0]!, { name: "y", dtype: "float32" as const, shape: [-1, 1] }],
    };
    expect(numericRowsInput(body, two)).toBeUndefined();
  });
});

describe("frameToModelInputs into one 2-D float input", () => {
  it("interleaves plain numeric columns of any width, rounding to float32", () => {
    const frame = Frame.fromColumns({
      a: Float64Array.from([0.1, 2.5]),
      b: Int32Array.from([-3, 7]),
      c: Uint8Array.from([255, 0]),
    });
    const [feed] = frameToModelInputs(frame, sig("float32", 3));
    expect(feed!.shape).toEqual([2, 3]);
    expect(feed!.data).toEqual(Float32Array.from([0.1, -3, 255, 2.5, 7, 0]));
  });

  it("still refuses a column that cannot become a float, naming it", () => {
    const frame = Frame.fromColumns({ a: Float64Array.from([1]), b: ["x"], c: Float64Array.from([2]) });
    expect(() => frameToModelInputs(frame, sig("float32", 3))).toThrow(/column 'b'/);
  });
});
