// What a custom model receives: request data as a Frame, read with MLflow pyfunc's rules, checked against an
// optional MLflow column signature (`signature.json`). Pure functions; the replica calls them per request.
import { castColumn, Frame, type FrameColumn, type Payload, type Tensor, UNNAMED } from "@switchyard/data";
import {
  type Dtype,
  invalid,
  type MlflowSignature,
  type Signature,
  SwitchyardError,
  type TensorSpec,
} from "@switchyard/protocol";

/** MLflow colspec types → our dtypes. */
export const MLFLOW_COLUMN_TYPES: Readonly<Record<string, Dtype>> = {
  string: "string",
  double: "float64",
  float: "float32",
  long: "int64",
  integer: "int32",
  boolean: "bool",
};

const malformed = (message: string) => new SwitchyardError("MALFORMED_MODEL", message);

/**
 * An MLflow column signature (`{"inputs": [{"name": "text", "type": "string"}], "outputs": [...]}`) as a
 * Signature: one `[-1]` column per spec. `where` names the file in errors (MALFORMED_MODEL).
 */
export function mlflowColumnSignature(sig: MlflowSignature, where: string): Signature {
  const side = (key: "inputs" | "outputs"): TensorSpec[] => {
    const specs = sig[key] ?? [];
    const seen = new Set<string>();
    return specs.map((s, i) => {
      const at = `${where}: ${key}[${i}]`;
      if (typeof s.name !== "string" || s.name === "") throw malformed(`${at} needs a "name"`);
      if (seen.has(s.name)) throw malformed(`${at}: column '${s.name}' appears twice`);
      seen.add(s.name);
      const dtype = typeof s.type === "string" ? MLFLOW_COLUMN_TYPES[s.type] : undefined;
      if (!dtype) {
        throw malformed(
          `${at}: type ${JSON.stringify(s.type)} of column '${s.name}' is not one of ${Object.keys(MLFLOW_COLUMN_TYPES).join(", ")}`,
        );
      }
      return { name: s.name, dtype, shape: [-1] };
    });
  };
  return { inputs: side("inputs"), outputs: side("outputs") };
}

/**
 * Request data → the Frame a custom model's `predict` gets. Frames (dataframe_*, records, CSV) stay as they
 * are. Tensors, as MLflow's pyfunc reads them: one unnamed `[N]` list is one column and an unnamed `[N, k]`
 * list is k columns, named after the signature's inputs (in order) or `0`, `1`, … without one; named 1-D
 * tensors are columns of their names. With a signature the frame is then checked and cast by `fitFrame`.
 */
export function customModelFrame(input: Payload, signature: Signature | null): Frame {
  let frame: Frame;
  if (input instanceof Frame) frame = input;
  else {
    const first = input[0];
    if (input.length === 1 && first?.name === UNNAMED) frame = unnamedToFrame(first, signature);
    else frame = Frame.of(input.map(columnOf));
  }
  return signature ? fitFrame(frame, signature) : frame;
}

function unnamedToFrame(t: Tensor, signature: Signature | null): Frame {
  const names = (k: number) =>
    Array.from({ length: k }, (_, j) =>
      signature && signature.inputs.length === k ? signature.inputs[j]!.name : String(j),
    );
  if (t.shape.length === 1) return Frame.of([{ name: names(1)[0]!, kind: t.dtype, data: t.data }]);
  if (t.shape.length === 2) {
    const [n, k] = t.shape as [number, number];
    const cols: FrameColumn[] = names(k).map((name, j) => {
      if (Array.isArray(t.data)) {
        const out = new Array<string>(n);
        for (let r = 0; r < n; r++) out[r] = (t.data as string[])[r * k + j]!;
        return { name, kind: t.dtype, data: out };
      }
      const src = t.data;
      const out = new (src.constructor as new (n: number) => typeof src)(n);
      for (let r = 0; r < n; r++) (out as Float64Array)[r] = (src as Float64Array)[r * k + j]!;
      return { name, kind: t.dtype, data: out };
    });
    return Frame.of(cols, n);
  }
  throw invalid(
    `a custom model takes columns; the request sends a list of shape [${t.shape.join(", ")}] ` +
      '(send one value per row, a list of rows, or named columns: {"dataframe_split": …})',
  );
}

function columnOf(t: Tensor): FrameColumn {
  if (t.shape.length === 1 || (t.shape.length === 2 && t.shape[1] === 1)) {
    return { name: t.name, kind: t.dtype, data: t.data };
  }
  throw invalid(
    `input '${t.name}' has shape [${t.shape.join(", ")}]; a custom model takes one value per row per column`,
  );
}

/**
 * Checks a frame against a column signature and returns it with the signature's columns in its order, each
 * cast to its dtype: a missing, extra or ill-typed column → INVALID_PARAMETER_VALUE naming the column.
 * Strings may be null (a missing value), as in a pandas frame.
 */
export function fitFrame(frame: Frame, signature: Signature): Frame {
  const expected = new Set(signature.inputs.map((s) => s.name));
  for (const name of frame.columns) {
    if (!expected.has(name)) {
      throw invalid(
        `unexpected column '${name}'; the model's inputs are: ${signature.inputs.map((s) => `${s.name} (${s.dtype})`).join(", ")}`,
      );
    }
  }
  const cols = signature.inputs.map((spec): FrameColumn => {
    if (!frame.has(spec.name)) throw invalid(`missing column '${spec.name}' (expected ${spec.dtype})`);
    const kind = frame.kind(spec.name);
    const data = frame.column(spec.name);
    if (kind === spec.dtype) return { name: spec.name, kind, data };
    return {
      name: spec.name,
      kind: spec.dtype,
      data: castColumn(data, kind, spec.dtype, `column '${spec.name}'`),
    };
  });
  return Frame.of(cols, frame.length);
}
