// Reads a model's signature from its ONNX graph, and refuses bytes that are not a servable ONNX model.
// It never trusts a successful protobuf decode alone: random bytes often decode into an empty message.
import { type Dtype, type Signature, SwitchyardError, type TensorSpec } from "@switchyard/protocol";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;

/** ONNX TensorProto.DataType → our dtype names (onnxruntime's). Complex and bfloat16 are not served. */
const ELEMENT_TYPES: Record<number, Dtype> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  8: "string",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
};
const ELEMENT_TYPE_NAMES: Record<number, string> = { 14: "complex64", 15: "complex128", 16: "bfloat16" };

/** IR versions onnx has defined so far (3 = ONNX 1.0 … 11 = ONNX 1.17), with room for the next. */
const IR_VERSIONS = { min: 3, max: 12 };

type Long = { toNumber(): number };
const num = (v: number | Long | null | undefined): number =>
  v === null || v === undefined ? 0 : typeof v === "number" ? v : v.toNumber();

/**
 * The inputs and outputs of an ONNX model: names, element types and shapes, where a symbolic dimension keeps its
 * `dim_param` name and an unknown one is -1. Initializers listed as graph inputs (IR < 4 exporters) are not
 * inputs. `source` names the model in error messages.
 */
export function readOnnxSignature(bytes: Uint8Array, source = "model"): Signature {
  const notOnnx = (reason: string) =>
    new SwitchyardError("MALFORMED_MODEL", `'${source}' is not an ONNX model: ${reason}`);

  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw notOnnx(`protobuf decoding failed (${(err as Error).message})`);
  }
  const ir = num(model.irVersion);
  if (ir < IR_VERSIONS.min || ir > IR_VERSIONS.max) {
    throw notOnnx(`ir_version ${ir} is outside ${IR_VERSIONS.min}..${IR_VERSIONS.max}`);
  }
  const defaultOpset = model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx");
  const opset = num(defaultOpset?.version);
  if (opset < 1 || opset > 100) {
    throw notOnnx(
      defaultOpset ? `default-domain opset ${opset} is invalid` : "it imports no default-domain opset",
    );
  }
  // Decoded messages always carry their repeated fields (empty arrays), unlike the I* interfaces suggest.
  const graph = model.graph as onnxProto.onnx.GraphProto | null | undefined;
  if (!graph || graph.node.length === 0) throw notOnnx("its graph has no nodes");

  const initializers = new Set(graph.initializer.map((t) => t.name));
  const inputs = graph.input.filter((i) => !initializers.has(i.name ?? ""));
  if (inputs.length === 0) throw notOnnx("its graph has no inputs");
  if (graph.output.length === 0) throw notOnnx("its graph has no outputs");

  const spec = (v: ValueInfo, side: "input" | "output"): TensorSpec => {
    const name = v.name ?? "";
    if (!name) throw notOnnx(`an ${side} has no name`);
    const type = v.type as onnxProto.onnx.TypeProto | null | undefined;
    if (!type?.tensorType) {
      throw new SwitchyardError(
        "MALFORMED_MODEL",
        `'${source}' cannot be served: ${side} '${name}' is ${describeType(type)}, not a tensor; Switchyard serves ` +
          "tensor inputs and outputs only (convert sklearn classifiers with options={'zipmap': False})",
      );
    }
    const elem = type.tensorType.elemType ?? 0;
    const dtype = ELEMENT_TYPES[elem];
    if (!dtype) {
      const what = ELEMENT_TYPE_NAMES[elem] ?? `element type ${elem}`;
      throw new SwitchyardError(
        "MALFORMED_MODEL",
        `'${source}' cannot be served: ${side} '${name}' has ${what}, which onnxruntime-node does not support`,
      );
    }
    const shape = type.tensorType.shape;
    return {
      name,
      dtype,
      shape: shape
        ? (shape.dim as onnxProto.onnx.TensorShapeProto.Dimension[]).map((d) =>
            d.value === "dimValue" ? num(d.dimValue) : d.value === "dimParam" && d.dimParam ? d.dimParam : -1,
          )
        : null,
    };
  };
  return {
    inputs: inputs.map((i) => spec(i, "input")),
    outputs: graph.output.map((o) => spec(o, "output")),
  };
}

function describeType(type: onnxProto.onnx.TypeProto | null | undefined): string {
  switch (type?.value) {
    case "sequenceType":
      return "a sequence";
    case "mapType":
      return "a map";
    case "optionalType":
      return "an optional";
    case "sparseTensorType":
      return "a sparse tensor";
    default:
      return "of unknown type";
  }
}
