import { thrown } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import { Frame } from "../src/frame.js";

const code = thrown;

describe("Frame", () => {
  it("builds from columns, inferring kinds from plain arrays and keeping typed arrays", () => {
    const f = Frame.fromColumns(
      {
        a: [1, null, 3],
        b: ["x", null, "z"],
        c: [true, false, true],
        d: new Int32Array([7, 8, 9]),
        e: new Uint8Array([1, 0, 1]),
      },
      { e: "bool" },
    );
    expect(f.columns).toEqual(["a", "b", "c", "d", "e"]);
    expect(f.kinds).toEqual(["float64", "string", "bool", "int32", "bool"]);
    expect(f.length).toBe(3);
    expect(f.column("a")).toBeInstanceOf(Float64Array);
    expect(Array.from(f.column("a") as Float64Array)).toEqual([1, Number.NaN, 3]);
    expect(f.column("c")).toEqual(new Uint8Array([1, 0, 1]));
    expect(f.kind("c")).toBe("bool");
    expect(f.rows()).toEqual([
      { a: 1, b: "x", c: true, d: 7, e: true },
      { a: null, b: null, c: false, d: 8, e: false },
      { a: 3, b: "z", c: true, d: 9, e: true },
    ]);
  });

  it("casts inferred plain arrays to a requested kind", () => {
    const f = Frame.fromColumns({ id: [1, 2] }, { id: "int64" });
    expect(f.column("id")).toEqual(new BigInt64Array([1n, 2n]));
    expect(f.rows()).toEqual([{ id: 1n }, { id: 2n }]);
  });

  it("names the missing column", () => {
    const f = Frame.fromColumns({ a: [1] });
    expect(code(() => f.column("b"))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "no column 'b'; the frame has columns: a",
    ]);
  });

  it("refuses columns of different lengths, mixed types and a typed array of the wrong kind", () => {
    expect(code(() => Frame.fromColumns({ a: [1, 2], b: [1] }))).toEqual([
      "INVALID_PARAMETER_VALUE",
      "column 'b' has 1 values; expected 2 rows",
    ]);
    expect(code(() => Frame.fromColumns({ a: [1, "x"] as never }))[1]).toBe(
      "column 'a' mixes value types: row 0 is a number, row 1 is a string",
    );
    expect(code(() => Frame.fromColumns({ a: new Float64Array(1) }, { a: "float32" }))[1]).toBe(
      "column 'a': a Float64Array cannot hold a float32 column",
    );
    expect(code(() => Frame.fromColumns({ a: [true, null] as never }))[1]).toBe(
      "column 'a': row 1 is null; a bool column cannot hold nulls",
    );
  });

  it("reads records in first-seen key order, missing keys as null", () => {
    const g = Frame.fromRecords([{ a: 1 }, { b: "y", a: 2 }]);
    expect(g.columns).toEqual(["a", "b"]);
    expect(g.column("b")).toEqual([null, "y"]);
    expect(Array.from(g.column("a") as Float64Array)).toEqual([1, 2]);
    expect(code(() => Frame.fromRecords([{ a: 1 }, 5]))[1]).toBe(
      "records[1] must be an object mapping column names to values, got a number",
    );
  });

  it("selects, slices (as views) and replaces or appends columns", () => {
    const f = Frame.fromColumns({ a: new Float32Array([1, 2, 3, 4]), s: ["p", "q", "r", "t"] });
    expect(f.select(["s", "a"]).columns).toEqual(["s", "a"]);
    const part = f.slice(1, 3);
    expect(part.length).toBe(2);
    expect(part.column("a")).toEqual(new Float32Array([2, 3]));
    expect((part.column("a") as Float32Array).buffer).toBe((f.column("a") as Float32Array).buffer);
    expect(part.column("s")).toEqual(["q", "r"]);
    const g = f.withColumn("pred", new Float64Array([0.1, 0.2, 0.3, 0.4])).withColumn("a", [9, 9, 9, 9]);
    expect(g.columns).toEqual(["a", "s", "pred"]);
    expect(g.kind("a")).toBe("float64");
    expect(f.kind("a")).toBe("float32");
    expect(code(() => f.withColumn("x", [1]))[1]).toBe("column 'x' has 1 values; the frame has 4 rows");
  });

  it("concatenates row-wise and refuses different columns or kinds", () => {
    const a = Frame.fromColumns({ x: [1, 2], s: ["a", null] });
    const b = Frame.fromColumns({ x: [3], s: ["c"] });
    const c = Frame.concat([a, b]);
    expect(c.length).toBe(3);
    expect(c.column("x")).toEqual(new Float64Array([1, 2, 3]));
    expect(c.column("s")).toEqual(["a", null, "c"]);
    expect(code(() => Frame.concat([a, Frame.fromColumns({ s: ["c"], x: [3] })]))).toEqual([
      "INVALID_PARAMETER_VALUE",
      'cannot concatenate frames with different columns: ["s":string,"x":float64] vs ["x":float64,"s":string]',
    ]);
    expect(code(() => Frame.concat([a, Frame.fromColumns({ x: new Float32Array([3]), s: ["c"] })]))[0]).toBe(
      "INVALID_PARAMETER_VALUE",
    );
  });
});
