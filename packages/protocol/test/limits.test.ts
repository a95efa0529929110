import { describe, expect, it } from "vitest";
import { deeperThan, isUsableRequestId, MAX_REQUEST_ID_LENGTH } from "../src/mod.js";

describe("request limits", () => {
  it("measures nesting: a scalar is depth 0, [1] depth 1, objects and lists alike", () => {
    expect(deeperThan(1, 0)).toBe(false);
    expect(deeperThan(undefined, 0)).toBe(false);
    expect(deeperThan([1], 0)).toBe(true);
    expect(deeperThan([1], 1)).toBe(false);
    expect(deeperThan({ a: [{ b: 1 }] }, 2)).toBe(true);
    expect(deeperThan({ a: [{ b: 1 }] }, 3)).toBe(false);
    // The deep branch is found wherever it is, not only along the first element.
    expect(deeperThan([1, 2, { x: [[[0]]] }], 4)).toBe(true);
    expect(deeperThan([1, 2, { x: [[[0]]] }], 5)).toBe(false);
  });

  it("walks 100,000 levels without overflowing the stack", () => {
    const deep = JSON.parse(`${"[".repeat(100_000)}1${"]".repeat(100_000)}`);
    expect(deeperThan(deep, 32)).toBe(true);
    expect(deeperThan(deep, 100_000)).toBe(false);
  });

  it("keeps only request ids safe in headers and logs", () => {
    expect(isUsableRequestId("client-id-42")).toBe(true);
    expect(isUsableRequestId("x".repeat(MAX_REQUEST_ID_LENGTH))).toBe(true);
    for (const bad of [
      "",
      "has space",
      "a\rb",
      "a\nb",
      "tab\t",
      "ünï",
      "x".repeat(MAX_REQUEST_ID_LENGTH + 1),
      null,
      undefined,
    ]) {
      expect(isUsableRequestId(bad)).toBe(false);
    }
  });
});
