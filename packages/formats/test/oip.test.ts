import { toFloat16Bits } from "@switchyard/data";
import { thrown } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import {
  dtypeOfOip,
  OIP_DATATYPES,
  oipDatatype,
  oipResponse,
  oipTensorMetadata,
  parseOipRequest,
} from "../src/oip.js";

const err = thrown;

const body = (inputs: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ inputs, ...extra });

describe("OIP v2 datatypes", () => {
  it("maps every datatype to a dtype and back", () => {
    for (const d of OIP_DATATYPES) expect(oipDatatype(dtypeOfOip(d))).toBe(d);
    expect(dtypeOfOip("FP32")).toBe("float32");
    expect(dtypeOfOip("BYTES")).toBe("string");
    expect(oipDatatype("int64")).toBe("INT64");
  });

  it("describes a signature tensor with dynamic dims as -1", () => {
    expect(oipTensorMetadata({ name: "x", dtype: "float32", shape: ["batch", 4] })).toEqual({
      name: "x",
      datatype: "FP32",
      shape: [-1, 4],
    });
  });
});

describe("parseOipRequest", () => {
  it("reads flat and nested data row-major with the declared dtype", () => {
    const flat = parseOipRequest(
      body([{ name: "x", shape: [2, 2], datatype: "FP32", data: [1, 2, 3, 4] }], { id: "r1" }),
    );
    const nested = parseOipRequest(
      body([
        {
          name: "x",
          shape: [2, 2],
          datatype: "FP32",
          data: [
            [1, 2],
            [3, 4],
          ],
        },
      ]),
    );
    expect(flat.id).toBe("r1");
    expect(nested.id).toBeUndefined();
    for (const r of [flat, nested]) {
      const t = r.inputs[0]!;
      expect(t.dtype).toBe("float32");
      expect(t.shape).toEqual([2, 2]);
      expect(t.data).toBeInstanceOf(Float32Array);
      expect(Array.from(t.data as Float32Array)).toEqual([1, 2, 3, 4]);
    }
    expect(flat.outputs).toBeNull();
    expect(flat.params).toEqual({});
  });

  it("converts every datatype", () => {
    const r = parseOipRequest(
      body([
        { name: "b", shape: [2], datatype: "BOOL", data: [true, false] },
        { name: "u8", shape: [1], datatype: "UINT8", data: [255] },
        { name: "i8", shape: [1], datatype: "INT8", data: [-128] },
        { name: "i64", shape: [1], datatype: "INT64", data: [-5] },
        { name: "u64", shape: [1], datatype: "UINT64", data: [7] },
        { name: "h", shape: [1], datatype: "FP16", data: [0.5] },
        { name: "d", shape: [1], datatype: "FP64", data: [0.1] },
        { name: "s", shape: [2], datatype: "BYTES", data: ["a", "b"] },
      ]),
    );
    const [b, u8, i8, i64, u64, h, d, s] = r.inputs;
    expect(b!.data).toEqual(new Uint8Array([1, 0]));
    expect(b!.dtype).toBe("bool");
    expect(u8!.data).toEqual(new Uint8Array([255]));
    expect(i8!.data).toEqual(new Int8Array([-128]));
    expect(i64!.data).toEqual(new BigInt64Array([-5n]));
    expect(u64!.data).toEqual(new BigUint64Array([7n]));
    expect(h!.data).toEqual(new Uint16Array([toFloat16Bits(0.5)]));
    expect(d!.data).toEqual(new Float64Array([0.1]));
    expect(s!.data).toEqual(["a", "b"]);
  });

  it("keeps parameters and requested outputs", () => {
    const r = parseOipRequest(
      body([{ name: "x", shape: [1], datatype: "FP32", data: [1] }], {
        parameters: { t: 1 },
        outputs: [{ name: "label" }],
      }),
    );
    expect(r.params).toEqual({ t: 1 });
    expect(r.outputs).toEqual(["label"]);
  });

  it("refuses malformed bodies with BAD_REQUEST", () => {
    expect(err(() => parseOipRequest("{"))[0]).toBe("BAD_REQUEST");
    expect(err(() => parseOipRequest("[]"))[0]).toBe("BAD_REQUEST");
    expect(err(() => parseOipRequest(body([])))[0]).toBe("BAD_REQUEST");
    expect(
      err(() => parseOipRequest(body([{ name: "x", shape: [1], datatype: "FLOAT", data: [1] }]))),
    ).toEqual(["BAD_REQUEST", expect.stringContaining("'datatype' must be one of BOOL")]);
    expect(
      err(() => parseOipRequest(body([{ name: "x", shape: [-1], datatype: "FP32", data: [1] }])))[0],
    ).toBe("BAD_REQUEST");
  });

  it("refuses bad data naming the input", () => {
    expect(
      err(() => parseOipRequest(body([{ name: "x", shape: [2, 2], datatype: "FP32", data: [1, 2, 3] }]))),
    ).toEqual(["INVALID_PARAMETER_VALUE", "input 'x' has 3 values but shape [2, 2] needs 4"]);
    expect(
      err(() => parseOipRequest(body([{ name: "x", shape: [1], datatype: "INT32", data: [1.5] }]))),
    ).toEqual(["INVALID_PARAMETER_VALUE", expect.stringContaining("input 'x'")]);
    expect(
      err(() => parseOipRequest(body([{ name: "x", shape: [1], datatype: "UINT8", data: [256] }])))[0],
    ).toBe("INVALID_PARAMETER_VALUE");
    expect(
      err(() => parseOipRequest(body([{ name: "x", shape: [1], datatype: "FP32", data: ["a"] }]))),
    ).toEqual(["INVALID_PARAMETER_VALUE", expect.stringContaining("FP32 values are numbers")]);
    expect(
      err(() =>
        parseOipRequest(
          body([
            { name: "x", shape: [1], datatype: "FP32", data: [1] },
            { name: "x", shape: [1], datatype: "FP32", data: [1] },
          ]),
        ),
      ),
    ).toEqual(["INVALID_PARAMETER_VALUE", "input 'x' is sent twice"]);
  });
});

describe("oipResponse", () => {
  const outputs = [
    { name: "label", dtype: "int64" as const, shape: [2], data: new BigInt64Array([1n, 0n]) },
    {
      name: "probabilities",
      dtype: "float32" as const,
      shape: [2, 2],
      data: new Float32Array([0.25, 0.75, 1, 0]),
    },
    { name: "flag", dtype: "bool" as const, shape: [2], data: new Uint8Array([1, 0]) },
  ];

  it("builds the v2 response with flat data", () => {
    const r = oipResponse({ modelName: "m", modelVersion: 3, id: "r1", outputs });
    expect(JSON.parse(JSON.stringify(r))).toEqual({
      model_name: "m",
      model_version: "3",
      id: "r1",
      outputs: [
        { name: "label", shape: [2], datatype: "INT64", data: [1, 0] },
        { name: "probabilities", shape: [2, 2], datatype: "FP32", data: [0.25, 0.75, 1, 0] },
        { name: "flag", shape: [2], datatype: "BOOL", data: [true, false] },
      ],
    });
  });

  it("returns only the requested outputs, refusing unknown names", () => {
    const r = oipResponse({
      modelName: "m",
      modelVersion: 1,
      id: "r",
      outputs,
      requested: ["probabilities"],
    });
    expect(r.outputs.map((o) => o.name)).toEqual(["probabilities"]);
    expect(
      err(() => oipResponse({ modelName: "m", modelVersion: 1, id: "r", outputs, requested: ["nope"] }))[0],
    ).toBe("INVALID_PARAMETER_VALUE");
  });
});
