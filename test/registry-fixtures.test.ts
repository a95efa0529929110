// The ONNX fixture builders produce models that raw onnxruntime-node loads and runs, with outputs equal to the
// plain-JS references (and, for the small ones, to values computed by hand).

import {
  buildLinear,
  buildMlp,
  buildMultiInput,
  linearPredict,
  mlpPredict,
  multiInputPredict,
  prng,
} from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";

const f32 = (rows: number[][]) =>
  new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>) {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return { session, out: await session.run(feeds) };
  } finally {
    await session.release();
  }
}

function expectClose(actual: ArrayLike<number>, expected: number[], tol = 1e-5) {
  expect(actual.length).toBe(expected.length);
  for (const [i, e] of expected.entries()) {
    expect(Math.abs(Number(actual[i]) - e)).toBeLessThanOrEqual(tol * (1 + Math.abs(e)));
  }
}

describe("ONNX fixture builders", () => {
  it("buildLinear: linear regression equals x·W + b by hand", async () => {
    const opts = { inputs: 3, weights: [1, 2, 3], bias: [0.5] };
    const { session, out } = await run(buildLinear(opts), {
      input: f32([
        [1, 1, 1],
        [1, 0, -1],
      ]),
    });
    expect(session.inputNames).toEqual(["input"]);
    expect(session.outputNames).toEqual(["output"]);
    expect(out.output!.dims).toEqual([2, 1]);
    expectClose(out.output!.data as Float32Array, [6.5, -1.5]);
    expect(
      linearPredict(opts, [
        [1, 1, 1],
        [1, 0, -1],
      ]),
    ).toEqual([[6.5], [-1.5]]);
  });

  it("buildLinear: logistic regression with named columns and two outputs", async () => {
    const opts = {
      inputs: 2,
      outputs: 2,
      weights: [1, 0, 0, -1],
      bias: [0, 0],
      sigmoid: true,
      inputName: "x",
      outputName: "p",
    };
    const { out } = await run(buildLinear(opts), {
      x: f32([
        [0, 0],
        [2, 3],
      ]),
    });
    expect(out.p!.dims).toEqual([2, 2]);
    const s = (v: number) => 1 / (1 + Math.exp(-v));
    expectClose(out.p!.data as Float32Array, [0.5, 0.5, s(2), s(-3)]);
  });

  it("buildLinear: default weights are 0.1·(i+1)·(j+1)", async () => {
    const { out } = await run(buildLinear({ inputs: 2, outputs: 2 }), { input: f32([[1, 1]]) });
    expectClose(out.output!.data as Float32Array, [0.1 + 0.2, 0.2 + 0.4]);
  });

  it("buildMlp: 64→512³→1 equals the reference and is deterministic per seed", async () => {
    const sizes = [64, 512, 512, 512, 1];
    const bytes = buildMlp(sizes, { seed: 7 });
    // Byte comparison through Buffer: vitest's deep equality walks 2 MB element by element.
    expect(Buffer.from(buildMlp(sizes, { seed: 7 })).equals(bytes)).toBe(true);
    expect(Buffer.from(buildMlp(sizes, { seed: 8 })).equals(bytes)).toBe(false);
    const rand = prng(42);
    const rows = Array.from({ length: 4 }, () => Array.from({ length: 64 }, () => rand() * 2 - 1));
    const { out } = await run(bytes, { input: f32(rows) });
    expect(out.output!.dims).toEqual([4, 1]);
    const expected = mlpPredict(sizes, 7, rows).flat();
    expectClose(out.output!.data as Float32Array, expected, 1e-4);
    // Not saturated: the outputs differ between rows, so a wrong weight layout would show.
    expect(new Set(expected.map((v) => v.toFixed(4))).size).toBe(4);
  });

  it("buildMultiInput: inputs a, b by name; outputs label (int64) and probabilities", async () => {
    const { session, out } = await run(buildMultiInput(), {
      a: f32([[1], [0]]),
      b: f32([
        [0, 0],
        [0, 2],
      ]),
    });
    expect(session.inputNames).toEqual(["a", "b"]);
    expect(session.outputNames).toEqual(["label", "probabilities"]);
    expect(out.label!.type).toBe("int64");
    expect(out.label!.dims).toEqual([2]);
    // Row 0: x = [1, 0, 0] → logits [1, -0.9] → label 0. Row 1: x = [0, 0, 2] → logits [-2, 2.1] → label 1.
    expect(Array.from(out.label!.data as BigInt64Array)).toEqual([0n, 1n]);
    const p0 = 1 / (1 + Math.exp(-1.9));
    const p1 = 1 / (1 + Math.exp(4.1));
    expectClose(out.probabilities!.data as Float32Array, [p0, 1 - p0, p1, 1 - p1]);
    expect(multiInputPredict(1, [0, 0])).toEqual({
      label: 0,
      probabilities: [expect.closeTo(p0, 12), expect.closeTo(1 - p0, 12)],
    });
  });
});
