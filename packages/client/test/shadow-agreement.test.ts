// The agreement rule of shadow traffic: same JSON value per row, numbers within 1e-6 relative, whole records.
import { describe, expect, it } from "vitest";
import { agreement, predictionRows, sameValue } from "../src/shadow-agreement.js";

const body = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe("sameValue", () => {
  it("takes numbers as equal within 1e-6 of the larger of 1 and their magnitudes", () => {
    expect(sameValue(1, 1)).toBe(true);
    expect(sameValue(0, 9e-7)).toBe(true);
    expect(sameValue(0, 2e-6)).toBe(false);
    expect(sameValue(1e9, 1e9 + 900)).toBe(true);
    expect(sameValue(1e9, 1e9 + 1100)).toBe(false);
    expect(sameValue(-3.5, -3.5000001)).toBe(true);
    expect(sameValue(1, "1")).toBe(false);
  });

  it("compares strings, booleans and null exactly", () => {
    expect(sameValue("cat", "cat")).toBe(true);
    expect(sameValue("cat", "Cat")).toBe(false);
    expect(sameValue(true, true)).toBe(true);
    expect(sameValue(null, null)).toBe(true);
    expect(sameValue(null, 0)).toBe(false);
  });

  it("compares lists element by element and records as whole rows", () => {
    expect(sameValue([0.1, 0.9], [0.1000000001, 0.9])).toBe(true);
    expect(sameValue([0.1, 0.9], [0.1, 0.9, 0])).toBe(false);
    expect(sameValue({ label: 1, p: [0.2, 0.8] }, { p: [0.2, 0.8], label: 1 })).toBe(true);
    expect(sameValue({ label: 1, p: [0.2, 0.8] }, { label: 1, p: [0.3, 0.7] })).toBe(false);
    expect(sameValue({ label: 1 }, { label: 1, extra: 0 })).toBe(false);
    expect(sameValue({ a: 1 }, [1])).toBe(false);
  });
});

describe("predictionRows", () => {
  it("reads the list form, the records form and MLflow's dict form", () => {
    expect(predictionRows(body({ predictions: [1, 0, 1] }))).toEqual([1, 0, 1]);
    expect(predictionRows(body({ predictions: [{ label: "a" }] }))).toEqual([{ label: "a" }]);
    expect(predictionRows(body({ predictions: { label: [1, 0], score: [0.9, 0.2] } }))).toEqual([
      { label: 1, score: 0.9 },
      { label: 0, score: 0.2 },
    ]);
  });

  it("has no rows for replies that are not MLflow predictions", () => {
    expect(predictionRows(new Uint8Array([0x81, 0xa1, 0x61, 0x01]))).toBeUndefined();
    expect(predictionRows(body({ outputs: [{ name: "y", data: [1] }] }))).toBeUndefined();
    expect(predictionRows(body({ predictions: { a: [1], b: [1, 2] } }))).toBeUndefined();
    expect(predictionRows(body({ predictions: 3 }))).toBeUndefined();
  });
});

describe("agreement", () => {
  it("compares every row of the primary, counting a row the shadow lacks as a disagreement", () => {
    expect(agreement(body({ predictions: [1, 0, 1, 1] }), body({ predictions: [1, 1, 1, 1] }))).toEqual({
      compared: 4,
      agreed: 3,
    });
    expect(agreement(body({ predictions: [1, 0, 1] }), body({ predictions: [1] }))).toEqual({
      compared: 3,
      agreed: 1,
    });
    expect(
      agreement(
        body({ predictions: [{ label: 1, p: 0.7 }] }),
        body({ predictions: [{ label: 1, p: 0.70000001 }] }),
      ),
    ).toEqual({ compared: 1, agreed: 1 });
  });

  it("compares a classifier's predicted labels, as live accuracy reads them, and OIP replies", () => {
    // Same labels, other probabilities: the predictions agree.
    expect(
      agreement(
        body({
          predictions: [
            { label: 1, probabilities: [0.2, 0.8] },
            { label: 0, probabilities: [0.9, 0.1] },
          ],
        }),
        body({
          predictions: [
            { label: 1, probabilities: [0.4, 0.6] },
            { label: 1, probabilities: [0.3, 0.7] },
          ],
        }),
      ),
    ).toEqual({ compared: 2, agreed: 1 });
    const oip = (data: number[]) => body({ outputs: [{ name: "label", shape: [data.length], data }] });
    expect(agreement(oip([1, 0, 1]), oip([1, 1, 1]))).toEqual({ compared: 3, agreed: 2 });
    // Rows without a single prediction (vectors) are compared whole.
    expect(agreement(body({ predictions: [[1, 2]] }), body({ predictions: [[1, 3]] }))).toEqual({
      compared: 1,
      agreed: 0,
    });
  });

  it("does not compare when either reply has no prediction rows", () => {
    expect(agreement(body({ predictions: [1] }), body({ error_code: "BAD_REQUEST" }))).toBeUndefined();
    expect(agreement("not json", body({ predictions: [1] }))).toBeUndefined();
  });
});
