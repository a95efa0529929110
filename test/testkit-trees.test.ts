// The testkit's tree ensemble: raw onnxruntime-node loads the TreeEnsembleRegressor it builds and predicts
// what the plain-JS reference walks out of the same parameters (pure, no NATS).

import {
  buildTreeEnsemble,
  prng,
  type TreeEnsembleOptions,
  treeEnsembleParams,
  treeEnsemblePredict,
} from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";

const TOLERANCE = 1e-5;

/** Random rows in [−1, 1), then rows that sit exactly on split thresholds (ties must go left, `<=`). */
function rowsFor(o: TreeEnsembleOptions, random: number, onThreshold: number): Float32Array[] {
  const p = treeEnsembleParams(o);
  const rand = prng(99);
  const rows: Float32Array[] = [];
  for (let r = 0; r < random + onThreshold; r++) {
    const row = Float32Array.from({ length: o.features }, () => rand() * 2 - 1);
    if (r >= random) {
      for (let k = 0; k < 8; k++) {
        const split = Math.floor(rand() * p.splitFeature.length);
        row[p.splitFeature[split]!] = p.threshold[split]!;
      }
    }
    rows.push(row);
  }
  return rows;
}

async function ortPredict(bytes: Uint8Array, rows: Float32Array[], features: number) {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const x = new Float32Array(rows.length * features);
    for (const [i, row] of rows.entries()) x.set(row, i * features);
    const out = await session.run({ input: new ort.Tensor("float32", x, [rows.length, features]) });
    return { dims: out.output!.dims, values: Array.from(out.output!.data as Float32Array) };
  } finally {
    await session.release();
  }
}

describe("buildTreeEnsemble", () => {
  for (const o of [
    { features: 30, trees: 200, depth: 3, seed: 8 },
    { features: 4, trees: 3, depth: 2, seed: 1 },
  ]) {
    it(`${o.trees} trees of depth ${o.depth} over ${o.features} features: ORT equals the JS reference`, async () => {
      const rows = rowsFor(o, 500, 100);
      const { dims, values } = await ortPredict(buildTreeEnsemble(o), rows, o.features);
      const p = treeEnsembleParams(o);
      const expected = rows.map((row) => treeEnsemblePredict(p, row));
      expect(dims).toEqual([600, 1]);
      for (let i = 0; i < rows.length; i++)
        expect(Math.abs(values[i]! - expected[i]!)).toBeLessThanOrEqual(TOLERANCE);
      // The splits do split: rows land on many different leaf combinations.
      expect(new Set(expected.map((v) => v.toFixed(6))).size).toBeGreaterThan(o.trees === 3 ? 8 : 500);
    });
  }

  it("walks a hand-checked path: one tree of depth 1", () => {
    const p = treeEnsembleParams({ features: 2, trees: 1, depth: 1, seed: 5 });
    const f = p.splitFeature[0]!;
    const row = [0, 0];
    row[f] = p.threshold[0]!;
    expect(treeEnsemblePredict(p, row)).toBe(p.base + p.leaf[0]!);
    row[f] = p.threshold[0]! + 1e-3;
    expect(treeEnsemblePredict(p, row)).toBe(p.base + p.leaf[1]!);
  });

  it("is deterministic in its seed", () => {
    const o = { features: 5, trees: 4, depth: 2, seed: 3 };
    expect(buildTreeEnsemble(o)).toEqual(buildTreeEnsemble(o));
    expect(buildTreeEnsemble(o)).not.toEqual(buildTreeEnsemble({ ...o, seed: 4 }));
  });

  it("refuses a shape it cannot build, naming the option", () => {
    expect(() => buildTreeEnsemble({ features: 30, trees: 0, depth: 3 })).toThrow(/trees must be an integer/);
    expect(() =>
      treeEnsemblePredict(treeEnsembleParams({ features: 3, trees: 1, depth: 1 }), [1, 2]),
    ).toThrow("tree ensemble expects 3 features, got a row of 2");
  });
});
