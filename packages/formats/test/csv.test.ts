import { SwitchyardError } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { parseCsv } from "../src/csv.js";

describe("parseCsv", () => {
  it("detects numeric, boolean and string columns; NA cells are null", () => {
    const f = parseCsv('feature1,feature2,flag,city\n1.0,3.5,true,Lima\n2,,False,NA\n-1e3,inf,true,"a, b"\n');
    expect(f.columns).toEqual(["feature1", "feature2", "flag", "city"]);
    expect(f.kinds).toEqual(["float64", "float64", "bool", "string"]);
    expect(f.column("feature1")).toEqual(new Float64Array([1, 2, -1000]));
    expect(Array.from(f.column("feature2") as Float64Array)).toEqual([
      3.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ]);
    expect(f.column("flag")).toEqual(new Uint8Array([1, 0, 1]));
    expect(f.column("city")).toEqual(["Lima", null, "a, b"]);
  });

  it("keeps a column mixing numbers and text as strings, as pandas does", () => {
    expect(parseCsv("a\n1\nx\n").column("a")).toEqual(["1", "x"]);
  });

  it("names ragged rows and refuses empty input", () => {
    try {
      parseCsv("a,b\n1,2\n3\n");
      expect.unreachable();
    } catch (e) {
      expect((e as SwitchyardError).code).toBe("INVALID_PARAMETER_VALUE");
      expect((e as SwitchyardError).message).toBe("CSV data row 2 has 1 fields; the header has 2 (a, b)");
    }
    expect(() => parseCsv("")).toThrow(SwitchyardError);
  });
});
