import { SwitchyardError } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import {
  castColumn,
  castTensor,
  concatTensors,
  fromFloat16Bits,
  splitTensor,
  type Tensor,
  tensor,
  toFloat16Bits,
} from "../src/tensor.js";

const err = (fn: () => unknown): SwitchyardError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof SwitchyardError) return e;
    throw e;
  }
  throw new Error("expected an error");
};

const t = (shape: number[], values: number[], name = "x"): Tensor => ({
  name,
  dtype: "float32",
  shape,
  data: new Float32Array(values),
});

describe("tensor()", () => {
  it("checks data type and element count", () => {
    expect(err(() => tensor("x", "float32", [2], new Float64Array(2))).message).toBe(
      "tensor 'x' data must be Float32Array for dtype float32, got Float64Array",
    );
    expect(err(() => tensor("x", "int64", [2, 2], new BigInt64Array(3))).message).toBe(
      "tensor 'x' has 3 elements but shape [2, 2] needs 4",
    );
    expect(tensor("b", "bool", [1], new Uint8Array([1])).dtype).toBe("bool");
  });
});

describe("concatTensors / splitTensor", () => {
  it("concatenates along rows and splits back into views", () => {
    const c = concatTensors([t([1, 2], [1, 2]), t([2, 2], [3, 4, 5, 6])]);
    expect(c.shape).toEqual([3, 2]);
    expect(c.data).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
    const [a, b] = splitTensor(c, [1, 2]);
    expect(a?.shape).toEqual([1, 2]);
    expect(b?.data).toEqual(new Float32Array([3, 4, 5, 6]));
    expect((b!.data as Float32Array).buffer).toBe((c.data as Float32Array).buffer);
  });

  it("concatenates string tensors", () => {
    const s = (v: string[]): Tensor => ({ name: "s", dtype: "string", shape: [v.length], data: v });
    expect(concatTensors([s(["a"]), s(["b", "c"])]).data).toEqual(["a", "b", "c"]);
  });

  it("refuses mismatched trailing shapes, dtypes and names", () => {
    expect(err(() => concatTensors([t([1, 2], [1, 2]), t([1, 3], [1, 2, 3])])).message).toBe(
      "cannot concatenate tensor 'x': shape [1, 3] does not match [1, 2] after the first dimension",
    );
    const f64: Tensor = { name: "x", dtype: "float64", shape: [1, 2], data: new Float64Array(2) };
    expect(err(() => concatTensors([t([1, 2], [1, 2]), f64])).message).toBe(
      "cannot concatenate tensor 'x' (float64) with tensor 'x' (float32)",
    );
    expect(err(() => concatTensors([t([1], [1]), t([1], [1], "y")])).code).toBe("INVALID_PARAMETER_VALUE");
  });

  it("refuses row counts that do not add up", () => {
    expect(err(() => splitTensor(t([3], [1, 2, 3]), [1, 1])).message).toBe(
      "cannot split tensor 'x': row counts add up to 2, the tensor has 3 rows",
    );
  });
});

describe("casts", () => {
  it("float64 → float32 rounds, → int64 gives BigInt64Array", () => {
    const src = new Float64Array([0.1, 2, -3]);
    const f32 = castColumn(src, "float64", "float32", "column 'a'");
    expect(f32.constructor).toBe(Float32Array);
    expect(Array.from(f32 as Float32Array)).toEqual([Math.fround(0.1), 2, -3]);
    expect(castColumn(new Float64Array([1, -2]), "float64", "int64", "c")).toEqual(
      new BigInt64Array([1n, -2n]),
    );
    expect(castColumn(new BigInt64Array([5n]), "int64", "float32", "c")).toEqual(new Float32Array([5]));
    expect(castColumn(new Float64Array([200]), "float64", "uint8", "c")).toEqual(new Uint8Array([200]));
  });

  it("returns the same array when the dtype already matches", () => {
    const src = new Float32Array([1]);
    expect(castColumn(src, "float32", "float32", "c")).toBe(src);
    const x = t([1], [1]);
    expect(castTensor(x, "float32")).toBe(x);
  });

  it("refuses impossible casts naming the field", () => {
    expect(err(() => castColumn(["a"], "string", "float32", "column 'name'")).message).toBe(
      "column 'name' holds strings; expected float32",
    );
    expect(err(() => castColumn(new Float64Array([1.5]), "float64", "int64", "column 'n'")).message).toBe(
      "column 'n' row 0: 1.5 is not a whole number, cannot cast to int64",
    );
    expect(
      err(() => castColumn(new Float64Array([1, Number.NaN]), "float64", "int32", "column 'n'")).message,
    ).toBe("column 'n' row 1 is null (NaN); int32 values cannot be null");
    expect(err(() => castColumn(new Float64Array([300]), "float64", "int8", "column 'n'")).message).toBe(
      "column 'n' row 0: 300 is out of range for int8",
    );
    expect(err(() => castColumn(new Uint8Array([1]), "bool", "float32", "input 'b'")).message).toBe(
      "input 'b' holds booleans; expected float32",
    );
    expect(err(() => castColumn(["a", null], "string", "string", "column 's'")).message).toBe(
      "column 's' row 1 is null; string values cannot be null",
    );
    expect(err(() => castTensor(t([1], [-1]), "uint64")).message).toBe(
      "tensor 'x' row 0: -1 is out of range for uint64",
    );
  });

  it("converts float16 both ways", () => {
    for (const x of [0, 1, -2.5, 65504, 2 ** -14, 2 ** -24, 3 * 2 ** -20, 0.333251953125]) {
      expect(fromFloat16Bits(toFloat16Bits(x))).toBe(x);
    }
    expect(toFloat16Bits(1)).toBe(0x3c00);
    expect(toFloat16Bits(1e6)).toBe(0x7c00);
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // a tie rounds to even
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    const h = castColumn(new Float64Array([1.5]), "float64", "float16", "c");
    expect(h).toEqual(new Uint16Array([0x3e00]));
    expect(castColumn(h as Uint16Array, "float16", "float32", "c")).toEqual(new Float32Array([1.5]));
  });
});
