// The diff an update prints: one line per changed leaf, paths as in the config file, key order ignored.
import { describe, expect, it } from "vitest";
import { diffValues, sameJson } from "../src/apply/diff.js";

describe("apply diff", () => {
  it("lists each changed leaf with its path, before and after", () => {
    const before = { served_models: [{ name: "a", workload_size: "Small" }], routes: [{ p: 100 }] };
    const after = {
      routes: [{ p: 100 }],
      served_models: [{ workload_size: "Medium", name: "a", max_batch_size: 16 }],
    };
    expect(diffValues(before, after)).toEqual([
      "served_models[0].max_batch_size: (unset) → 16",
      'served_models[0].workload_size: "Small" → "Medium"',
    ]);
  });

  it("shows a list whose length changed as a whole", () => {
    expect(diffValues({ key: ["a"] }, { key: ["a", "b"] })).toEqual(['key: ["a"] → ["a","b"]']);
  });

  it("treats objects with the same fields in another order as equal", () => {
    expect(sameJson({ a: 1, b: { c: [1, { d: 2, e: 3 }] } }, { b: { c: [1, { e: 3, d: 2 }] }, a: 1 })).toBe(
      true,
    );
    expect(sameJson({ a: 1 }, { a: 1, b: null })).toBe(false);
    expect(diffValues({ a: 1 }, { a: 1 })).toEqual([]);
  });
});
