import { describe, expect, it } from "vitest";
import {
  defaultServedName,
  formatModelRef,
  isModelName,
  isResourceName,
  parseModelUri,
  parseVersion,
  SwitchyardError,
  subjectToken,
} from "../src/mod.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SwitchyardError ? err.code : "NOT_A_SWITCHYARD_ERROR";
  }
  return undefined;
}

describe("model URIs", () => {
  it("parses versions, aliases and latest, with three-level names", () => {
    expect(parseModelUri("models:/fraud/3")).toEqual({ name: "fraud", kind: "version", version: 3 });
    expect(parseModelUri("models:/catalog.schema.my_model@champion")).toEqual({
      name: "catalog.schema.my_model",
      kind: "alias",
      alias: "champion",
    });
    expect(parseModelUri("models:/fraud/latest")).toEqual({ name: "fraud", kind: "latest" });
  });

  it("round-trips through formatModelRef", () => {
    for (const uri of ["models:/a/12", "models:/c.s.m@challenger", "models:/x-y/latest"]) {
      expect(formatModelRef(parseModelUri(uri))).toBe(uri);
    }
  });

  it.each([
    "fraud/3",
    "models:/fraud",
    "models:/fraud/0",
    "models:/fraud/03",
    "models:/fraud/3/extra",
    "models:/fraud@",
    "models:/@champion",
    "models:/a.b.c.d/1",
    "models:/bad name/1",
    "models:/fraud/v3",
    "models:/fraud@latest",
  ])("rejects %s with INVALID_PARAMETER_VALUE", (uri) => {
    expect(codeOf(() => parseModelUri(uri))).toBe("INVALID_PARAMETER_VALUE");
  });

  it("names the bad URI in the message", () => {
    expect(() => parseModelUri("fraud/3")).toThrow(/model URI 'fraud\/3' is malformed: expected models:\//);
  });

  it("parses versions strictly", () => {
    expect(parseVersion("7")).toBe(7);
    expect(parseVersion(2)).toBe(2);
    expect(codeOf(() => parseVersion("1.5"))).toBe("INVALID_PARAMETER_VALUE");
    expect(codeOf(() => parseVersion(-1))).toBe("INVALID_PARAMETER_VALUE");
  });
});

describe("names", () => {
  it("accepts endpoint names of 1-63 safe characters only", () => {
    expect(isResourceName("my-endpoint_2")).toBe(true);
    expect(isResourceName("a".repeat(63))).toBe(true);
    expect(isResourceName("a".repeat(64))).toBe(false);
    expect(isResourceName("a.b")).toBe(false);
    expect(isResourceName("")).toBe(false);
    expect(isResourceName("sp ace")).toBe(false);
  });

  it("accepts one- to three-level model names", () => {
    expect(isModelName("m")).toBe(true);
    expect(isModelName("catalog.schema.custom_model")).toBe(true);
    expect(isModelName("a.b.c.d")).toBe(false);
    expect(isModelName("a..b")).toBe(false);
    expect(isModelName("a.b*")).toBe(false);
  });

  it("turns dots into underscores for subject tokens and served names", () => {
    expect(subjectToken("catalog.schema.my_model")).toBe("catalog_schema_my_model");
    expect(defaultServedName("catalog.schema.my_model", 3)).toBe("catalog_schema_my_model-3");
  });
});
