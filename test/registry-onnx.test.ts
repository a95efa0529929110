// readOnnxSignature: what it reads from a graph, and what it refuses (pure, no NATS).

import { readOnnxSignature } from "@switchyard/ingest";
import { SwitchyardError } from "@switchyard/protocol";
import { buildLinear, buildMlp, buildMultiInput, prng } from "@switchyard/testkit";
import onnxProto from "onnx-proto";
import { describe, expect, it } from "vitest";

const { onnx } = onnxProto;

/** A one-node Identity-style model with hand-written inputs/outputs, for shapes the builders never make. */
function craft(graph: Partial<onnxProto.onnx.IGraphProto>, model: Partial<onnxProto.onnx.IModelProto> = {}) {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 13 }],
      graph: { name: "g", node: [{ opType: "Identity", input: ["x"], output: ["y"] }], ...graph },
      ...model,
    }),
  ).finish();
}

const tensor = (name: string, elemType: number, dims?: onnxProto.onnx.TensorShapeProto.IDimension[]) => ({
  name,
  type: { tensorType: { elemType, ...(dims ? { shape: { dim: dims } } : {}) } },
});

function refusal(fn: () => unknown): SwitchyardError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchyardError);
    return err as SwitchyardError;
  }
  throw new Error("expected a refusal");
}

describe("readOnnxSignature", () => {
  it("reads names, dtypes and symbolic dims of the fixture models", () => {
    expect(readOnnxSignature(buildMultiInput())).toEqual({
      inputs: [
        { name: "a", dtype: "float32", shape: ["batch", 1] },
        { name: "b", dtype: "float32", shape: ["batch", 2] },
      ],
      outputs: [
        { name: "label", dtype: "int64", shape: ["batch"] },
        { name: "probabilities", dtype: "float32", shape: ["batch", 2] },
      ],
    });
    expect(readOnnxSignature(buildLinear({ inputs: 4, sigmoid: true, inputName: "features" }))).toEqual({
      inputs: [{ name: "features", dtype: "float32", shape: ["batch", 4] }],
      outputs: [{ name: "output", dtype: "float32", shape: ["batch", 1] }],
    });
    // Initializers (W0, B0, …) are not inputs.
    expect(readOnnxSignature(buildMlp([8, 16, 1])).inputs).toEqual([
      { name: "input", dtype: "float32", shape: ["batch", 8] },
    ]);
  });

  it("drops initializers listed as graph inputs (IR 3 exporters), maps every served dtype, keeps unknown dims as -1", () => {
    const bytes = craft(
      {
        input: [
          tensor("x", 11, [{}, { dimValue: 3 }]),
          tensor("W", 1, [{ dimValue: 3 }]),
          tensor("s", 8, [{ dimParam: "n" }]),
          tensor("flag", 9),
        ],
        initializer: [{ name: "W", dataType: 1, dims: [3], floatData: [1, 2, 3] }],
        output: [tensor("y", 11, [{ dimParam: "" }, { dimValue: 3 }]), tensor("h", 10, [])],
      },
      { irVersion: 3 },
    );
    expect(readOnnxSignature(bytes)).toEqual({
      inputs: [
        { name: "x", dtype: "float64", shape: [-1, 3] },
        { name: "s", dtype: "string", shape: ["n"] },
        { name: "flag", dtype: "bool", shape: null },
      ],
      outputs: [
        { name: "y", dtype: "float64", shape: [-1, 3] },
        { name: "h", dtype: "float16", shape: [] },
      ],
    });
  });

  it("refuses bytes that are not an ONNX model, naming the source", () => {
    const rand = prng(3);
    const noise = Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256));
    const cases: [Uint8Array, RegExp][] = [
      [noise, /^'x\.onnx' is not an ONNX model: /],
      [new Uint8Array(0), /^'x\.onnx' is not an ONNX model: ir_version 0/],
      [new TextEncoder().encode("name,age\nann,3\n"), /^'x\.onnx' is not an ONNX model: /],
      [craft({}, { irVersion: 99 }), /ir_version 99 is outside 3\.\.12/],
      [craft({}, { opsetImport: [] }), /imports no default-domain opset/],
      [craft({ node: [], input: [tensor("x", 1)], output: [tensor("y", 1)] }), /its graph has no nodes/],
      [craft({ input: [], output: [tensor("y", 1)] }), /its graph has no inputs/],
      [craft({ input: [tensor("x", 1)], output: [] }), /its graph has no outputs/],
    ];
    for (const [bytes, message] of cases) {
      const err = refusal(() => readOnnxSignature(bytes, "x.onnx"));
      expect(err.code).toBe("MALFORMED_MODEL");
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain("\n");
    }
  });

  it("refuses non-tensor outputs (sklearn ZipMap) and unsupported element types", () => {
    const zipmap = craft({
      input: [tensor("x", 1, [{ dimParam: "N" }, { dimValue: 4 }])],
      output: [
        { name: "output_probability", type: { sequenceType: { elemType: { mapType: { keyType: 7 } } } } },
      ],
    });
    const e1 = refusal(() => readOnnxSignature(zipmap, "clf.onnx"));
    expect(e1.code).toBe("MALFORMED_MODEL");
    expect(e1.message).toMatch(
      /^'clf\.onnx' cannot be served: output 'output_probability' is a sequence, not a tensor/,
    );

    const bf16 = craft({ input: [tensor("x", 16, [{ dimValue: 1 }])], output: [tensor("y", 1)] });
    const e2 = refusal(() => readOnnxSignature(bf16, "b.onnx"));
    expect(e2.code).toBe("MALFORMED_MODEL");
    expect(e2.message).toBe(
      "'b.onnx' cannot be served: input 'x' has bfloat16, which onnxruntime-node does not support",
    );
  });
});
