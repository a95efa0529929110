import { Frame, type Payload, type Tensor, UNNAMED } from "@switchyard/data";
import type { Signature } from "@switchyard/protocol";
import { thrown } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import {
  frameToModelInputs,
  modelInputs,
  parseJsonBody,
  parseRequestBody,
  predictionsBody,
  tensorsToModelInputs,
} from "../src/mod.js";

const parseJson = (body: string | Uint8Array) => parseRequestBody(parseJsonBody(body));

const err = thrown;

const frameOf = (p: Payload): Frame => {
  expect(p).toBeInstanceOf(Frame);
  return p as Frame;
};
const tensorsOf = (p: Payload): Tensor[] => {
  expect(Array.isArray(p)).toBe(true);
  return p as Tensor[];
};

describe("request bodies", () => {
  it("reads the notes' dataframe_split example", () => {
    const req = parseJson('{"dataframe_split": {"columns": ["feature1","feature2"], "data": [[1.0, 3.5]]}}');
    expect(req.format).toBe("dataframe_split");
    expect(req.params).toEqual({});
    const f = frameOf(req.input);
    expect(f.columns).toEqual(["feature1", "feature2"]);
    expect(f.length).toBe(1);
    expect(f.column("feature1")).toEqual(new Float64Array([1]));
    expect(f.column("feature2")).toEqual(new Float64Array([3.5]));
  });

  it("reads dataframe_split with strings, booleans, nulls, index and params", () => {
    const req = parseRequestBody({
      dataframe_split: {
        columns: ["n", "s", "b"],
        index: [10, 11],
        data: [
          [1, "a", true],
          [null, null, false],
        ],
      },
      params: { temperature: 0.5 },
    });
    const f = frameOf(req.input);
    expect(f.kinds).toEqual(["float64", "string", "bool"]);
    expect(Array.from(f.column("n") as Float64Array)).toEqual([1, Number.NaN]);
    expect(f.column("s")).toEqual(["a", null]);
    expect(f.column("b")).toEqual(new Uint8Array([1, 0]));
    expect(req.params).toEqual({ temperature: 0.5 });
  });

  it("names columns 0..k-1 when dataframe_split has no columns", () => {
    const f = frameOf(parseRequestBody({ dataframe_split: { data: [[1, 2]] } }).input);
    expect(f.columns).toEqual(["0", "1"]);
  });

  it("reads dataframe_records", () => {
    const f = frameOf(parseRequestBody({ dataframe_records: [{ a: 1, b: "x" }, { a: 2 }] }).input);
    expect(f.rows()).toEqual([
      { a: 1, b: "x" },
      { a: 2, b: null },
    ]);
  });

  it("reads a list of strings as one unnamed string tensor", () => {
    const [t] = tensorsOf(parseJson('{"instances": ["good movie", "bad"]}').input);
    expect(t).toEqual({ name: UNNAMED, dtype: "string", shape: [2], data: ["good movie", "bad"] });
  });

  it("reads a list of lists as one 2-D tensor", () => {
    const [t] = tensorsOf(
      parseRequestBody({
        inputs: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      }).input,
    );
    expect(t?.shape).toEqual([2, 3]);
    expect(t?.dtype).toBe("float64");
    expect(t?.data).toEqual(new Float64Array([1, 2, 3, 4, 5, 6]));
  });

  it("reads a list of scalars and a list of booleans", () => {
    expect(tensorsOf(parseRequestBody({ instances: [1, 2] }).input)[0]?.data).toEqual(
      new Float64Array([1, 2]),
    );
    const [b] = tensorsOf(parseRequestBody({ inputs: [true, false] }).input);
    expect(b).toEqual({ name: UNNAMED, dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) });
  });

  it("reads instances/inputs records with scalar values as a Frame", () => {
    for (const key of ["instances", "inputs"]) {
      const f = frameOf(
        parseRequestBody({
          [key]: [
            { a: 1, s: "x" },
            { a: 2, s: "y" },
          ],
        }).input,
      );
      expect(f.columns).toEqual(["a", "s"]);
      expect(f.column("a")).toEqual(new Float64Array([1, 2]));
      expect(f.column("s")).toEqual(["x", "y"]);
    }
  });

  it("reads instances records with list values as named tensors", () => {
    const ts = tensorsOf(
      parseRequestBody({
        instances: [
          { img: [1, 2], tag: "a" },
          { img: [3, 4], tag: "b" },
        ],
      }).input,
    );
    expect(ts).toEqual([
      { name: "img", dtype: "float64", shape: [2, 2], data: new Float64Array([1, 2, 3, 4]) },
      { name: "tag", dtype: "string", shape: [2], data: ["a", "b"] },
    ]);
  });

  it("reads a dict of named tensors", () => {
    const ts = tensorsOf(parseRequestBody({ inputs: { a: [[1, 2]], b: ["x"] } }).input);
    expect(ts.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ["a", "float64", [1, 2]],
      ["b", "string", [1]],
    ]);
  });

  it("refuses bodies without exactly one input key with BAD_REQUEST", () => {
    expect(err(() => parseRequestBody({ data: [1] }))).toEqual([
      "BAD_REQUEST",
      "Invalid input. The input must be a JSON dictionary with exactly one of the input fields " +
        "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}. Received dictionary with input fields: " +
        '["data"].',
    ]);
    const [c, m] = err(() => parseRequestBody({ instances: [1], inputs: [1] }));
    expect(c).toBe("BAD_REQUEST");
    expect(m).toContain('Received dictionary with input fields: ["instances","inputs"]');
    expect(err(() => parseRequestBody([1, 2]))[1]).toContain("Received a list.");
    expect(err(() => parseRequestBody("x"))[1]).toContain("Received unexpected input type 'string'.");
    const [jc, jm] = err(() => parseJson('{"instances": [1,'));
    expect(jc).toBe("BAD_REQUEST");
    expect(jm).toMatch(/^Invalid input\. Ensure that input is a valid JSON formatted string\. Error: '/);
    expect(err(() => parseRequestBody({ inputs: [1], params: [1] }))).toEqual([
      "BAD_REQUEST",
      "Invalid input. 'params' must be a JSON object of parameter names to values, got a list.",
    ]);
    expect(err(() => parseRequestBody({ dataframe_split: [[1]] }))[0]).toBe("BAD_REQUEST");
    expect(err(() => parseRequestBody({ dataframe_records: { a: 1 } }))[0]).toBe("BAD_REQUEST");
    expect(err(() => parseRequestBody({ instances: { a: [1] } }))[0]).toBe("BAD_REQUEST");
    expect(err(() => parseRequestBody({ inputs: 3 }))[0]).toBe("BAD_REQUEST");
  });

  it("refuses bad values with INVALID_PARAMETER_VALUE naming the field", () => {
    expect(
      err(() => parseRequestBody({ dataframe_split: { columns: ["a", "b"], data: [[1, 2], [3]] } })),
    ).toEqual([
      "INVALID_PARAMETER_VALUE",
      "dataframe_split.data[1] has 1 values; expected 2, one per column (a, b)",
    ]);
    expect(
      err(() =>
        parseRequestBody({
          dataframe_split: {
            columns: ["a", "b"],
            data: [
              [1, 2],
              [3, "x"],
            ],
          },
        }),
      ),
    ).toEqual([
      "INVALID_PARAMETER_VALUE",
      "column 'b' mixes value types: dataframe_split.data[0] is a number, dataframe_split.data[1] is a string",
    ]);
    expect(err(() => parseRequestBody({ dataframe_records: [{ a: 1 }, { a: "x" }] }))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "column 'a' mixes value types: dataframe_records[0] is a number, dataframe_records[1] is a string",
    ]);
    expect(err(() => parseRequestBody({ dataframe_split: { columns: ["a"], data: [[[1, 2]]] } }))[1]).toBe(
      "column 'a': dataframe_split.data[0] is a list; a column holds numbers, strings, booleans or null " +
        "(send n-dimensional data as tensors with 'inputs')",
    );
    expect(err(() => parseRequestBody({ inputs: [[1, 2], [3]] }))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "inputs[1] has 1 values; expected 2 like inputs[0]",
    ]);
    expect(
      err(() =>
        parseRequestBody({
          instances: [
            [1, 2],
            [3, "x"],
          ],
        }),
      ),
    ).toEqual([
      "INVALID_PARAMETER_VALUE",
      "instances mixes value types: instances[0][0] is a number, instances[1][1] is a string",
    ]);
    expect(err(() => parseRequestBody({ inputs: { a: [1, 2], b: [1] } }))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "inputs.b has 1 rows but inputs.a has 2; every input must have the same number of rows",
    ]);
    expect(err(() => parseRequestBody({ inputs: { a: 1 } }))[1]).toBe(
      "inputs.a must be a list (a tensor with a row dimension), got a number",
    );
    expect(err(() => parseRequestBody({ instances: [{ a: [1] }, { b: [1] }] }))[1]).toBe(
      "instances[1] has no 'a'; every instance must have the same keys",
    );
  });
});

const sig = (inputs: Signature["inputs"]): Signature => ({ inputs, outputs: [] });

describe("matching to a model signature", () => {
  const twoInputs = sig([
    { name: "age", dtype: "float32", shape: [-1] },
    { name: "city", dtype: "string", shape: ["N", 1] },
  ]);

  it("matches columns by name regardless of request order and casts", () => {
    const f = Frame.fromColumns({ city: ["a", "b"], age: [30, 40] });
    const feeds = frameToModelInputs(f, twoInputs);
    expect(feeds).toEqual([
      { name: "age", dtype: "float32", shape: [2], data: new Float32Array([30, 40]) },
      { name: "city", dtype: "string", shape: [2, 1], data: ["a", "b"] },
    ]);
  });

  it("feeds a single 2-D input with the columns in order", () => {
    const model = sig([{ name: "x", dtype: "float32", shape: ["batch", 3] }]);
    const f = Frame.fromColumns({ c: [3, 6], a: [1, 4], b: [2, 5] });
    const [x] = frameToModelInputs(f, model);
    expect(x?.shape).toEqual([2, 3]);
    expect(x?.data).toEqual(new Float32Array([3, 1, 2, 6, 4, 5]));
    expect(err(() => frameToModelInputs(Frame.fromColumns({ a: [1], b: [2] }), model))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "model input 'x' takes 3 columns per row (float32 [batch, 3]); the request has 2: a, b",
    ]);
    expect(err(() => frameToModelInputs(Frame.fromColumns({ a: [1], b: ["x"], c: [2] }), model))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "column 'b' holds strings; expected float32",
    ]);
  });

  it("casts to int64", () => {
    const [id] = frameToModelInputs(
      Frame.fromColumns({ id: [1, 2 ** 40] }),
      sig([{ name: "id", dtype: "int64", shape: [-1] }]),
    );
    expect(id?.data).toEqual(new BigInt64Array([1n, 2n ** 40n]));
  });

  it("names missing, extra and ill-typed columns", () => {
    expect(err(() => frameToModelInputs(Frame.fromColumns({ city: ["a"] }), twoInputs))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "missing column 'age' (expected float32)",
    ]);
    expect(
      err(() => frameToModelInputs(Frame.fromColumns({ age: [1], city: ["a"], zip: [1] }), twoInputs)),
    ).toEqual([
      "INVALID_PARAMETER_VALUE",
      "unexpected column 'zip'; the model's inputs are: age (float32 [-1]), city (string [N, 1])",
    ]);
    expect(
      err(() => frameToModelInputs(Frame.fromColumns({ age: ["old"], city: ["a"] }), twoInputs)),
    ).toEqual(["INVALID_PARAMETER_VALUE", "column 'age' holds strings; expected float32"]);
    expect(err(() => frameToModelInputs(Frame.fromColumns({ age: [1], city: [2] }), twoInputs))[1]).toBe(
      "column 'city' holds float64 numbers; expected string",
    );
  });

  it("feeds an unnamed tensor to a single-input model and checks fixed dims", () => {
    const model = sig([{ name: "x", dtype: "float32", shape: [-1, 2] }]);
    const req = parseRequestBody({
      inputs: [
        [1, 2],
        [3, 4],
      ],
    });
    expect(modelInputs(req.input, model)).toEqual([
      { name: "x", dtype: "float32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    ]);
    expect(err(() => modelInputs(parseRequestBody({ inputs: [[1, 2, 3]] }).input, model))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "input 'x' expects shape [-1, 2] (float32); the request has [1, 3]",
    ]);
    const text = sig([{ name: "text", dtype: "string", shape: [-1, 1] }]);
    const [t] = modelInputs(parseRequestBody({ instances: ["good movie", "bad"] }).input, text);
    expect(t).toEqual({ name: "text", dtype: "string", shape: [2, 1], data: ["good movie", "bad"] });
  });

  it("matches named tensors by name and refuses unnamed ones for several inputs", () => {
    const model = sig([
      { name: "a", dtype: "int64", shape: [-1] },
      { name: "b", dtype: "float32", shape: [-1, 2] },
    ]);
    const feeds = tensorsToModelInputs(
      tensorsOf(parseRequestBody({ inputs: { b: [[1, 2]], a: [7] } }).input),
      model,
    );
    expect(feeds.map((f) => [f.name, f.dtype, f.shape])).toEqual([
      ["a", "int64", [1]],
      ["b", "float32", [1, 2]],
    ]);
    expect(feeds[0]?.data).toEqual(new BigInt64Array([7n]));
    expect(err(() => modelInputs(parseRequestBody({ inputs: [[1, 2]] }).input, model))[1]).toBe(
      "the request sends one unnamed tensor but the model has 2 inputs (a (int64 [-1]), b (float32 [-1, 2])); " +
        'send named tensors: {"inputs": {"name": [...]}}',
    );
    expect(err(() => modelInputs(parseRequestBody({ inputs: { a: [1] } }).input, model))[1]).toBe(
      "missing input 'b' (expected float32 [-1, 2])",
    );
    expect(
      err(() => modelInputs(parseRequestBody({ inputs: { a: [1], b: [[1, 2]], c: [1] } }).input, model))[1],
    ).toBe("unexpected input 'c'; the model's inputs are: a (int64 [-1]), b (float32 [-1, 2])");
    expect(
      err(() => modelInputs(parseRequestBody({ inputs: { a: [1.5], b: [[1, 2]] } }).input, model))[1],
    ).toBe("input 'a' row 0: 1.5 is not a whole number, cannot cast to int64");
  });

  it("refuses a row count other than a fixed batch dimension", () => {
    const model = sig([{ name: "x", dtype: "float32", shape: [1, 2] }]);
    expect(err(() => modelInputs(Frame.fromColumns({ a: [1, 2], b: [3, 4] }), model))[1]).toBe(
      "model input 'x' takes exactly 1 rows per call; the request has 2",
    );
  });
});

describe("predictions body", () => {
  const f32 = (name: string, shape: number[], v: number[]): Tensor => ({
    name,
    dtype: "float32",
    shape,
    data: new Float32Array(v),
  });

  it("[N] and [N, 1] give N values, [N, k] gives N lists", () => {
    expect(predictionsBody([f32("y", [3], [0.5, 1, 2])])).toEqual({ predictions: [0.5, 1, 2] });
    expect(predictionsBody([f32("y", [2, 1], [0.5, 1])])).toEqual({ predictions: [0.5, 1] });
    expect(predictionsBody([f32("y", [2, 2], [1, 2, 3, 4])])).toEqual({
      predictions: [
        [1, 2],
        [3, 4],
      ],
    });
  });

  it("several outputs give one record per row", () => {
    const body = predictionsBody([
      { name: "label", dtype: "int64", shape: [2], data: new BigInt64Array([1n, 0n]) },
      f32("probabilities", [2, 2], [0.25, 0.75, 0.5, 0.5]),
    ]);
    expect(body).toEqual({
      predictions: [
        { label: 1, probabilities: [0.25, 0.75] },
        { label: 0, probabilities: [0.5, 0.5] },
      ],
    });
  });

  it("NaN → null, unsafe int64 → string, bool → boolean, frames by column", () => {
    expect(
      predictionsBody([{ name: "y", dtype: "float64", shape: [2], data: new Float64Array([Number.NaN, 1]) }]),
    ).toEqual({
      predictions: [null, 1],
    });
    expect(
      predictionsBody([
        { name: "id", dtype: "int64", shape: [2], data: new BigInt64Array([2n ** 60n, -3n]) },
      ]),
    ).toEqual({ predictions: ["1152921504606846976", -3] });
    const f = Frame.fromColumns({ ok: [true, false], why: ["a", null] });
    expect(predictionsBody(f)).toEqual({
      predictions: [
        { ok: true, why: "a" },
        { ok: false, why: null },
      ],
    });
    expect(predictionsBody(Frame.fromColumns({ y: [1, 2] }))).toEqual({ predictions: [1, 2] });
  });

  it("outputs with different row counts use MLflow's dict form", () => {
    expect(predictionsBody([f32("a", [1], [1]), f32("b", [2], [1, 2])])).toEqual({
      predictions: { a: [1], b: [1, 2] },
    });
  });
});
