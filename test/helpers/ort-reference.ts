// References from raw onnxruntime-node, the independent side of the end-to-end tests' prediction checks.
import * as ort from "onnxruntime-node";
import { expect } from "vitest";

/** Predictions of a one-input model (`input`, float32 rows) for `rows`, as a flat list. */
export async function rowsReference(model: Uint8Array, rows: number[][]): Promise<number[]> {
  const session = await ort.InferenceSession.create(model);
  try {
    const input = new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
    const out = await session.run({ input });
    return Array.from(out.output!.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** `actual` has exactly `expected`'s length and each value is within `tol` of it. */
export function expectClose(actual: unknown, expected: number[], tol = 1e-5): void {
  const a = actual as number[];
  expect(a).toHaveLength(expected.length);
  a.forEach((v, i) => {
    expect(Math.abs(v - expected[i]!)).toBeLessThan(tol);
  });
}
