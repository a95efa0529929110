// Request data → a model's feeds: a Payload fitted to a signature (columns matched by name or taken in order,
// each cast to the input's dtype and shape), plus the realtime fast path for plain numeric rows.
import {
  allocate,
  castColumn,
  castTensor,
  Frame,
  type Payload,
  type Tensor,
  UNNAMED,
} from "@switchyard/data";
import {
  type Dtype,
  deeperThan,
  invalid,
  MAX_COLUMNS,
  MAX_PARAMS_DEPTH,
  type Signature,
  type TensorSpec,
} from "@switchyard/protocol";
import type { Params } from "./request.js";

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

const ROW_KEYS = ["dataframe_split", "instances", "inputs"] as const;

/**
 * The realtime hot path: a body of numeric rows (`dataframe_split`, or `instances`/`inputs` as a list of
 * lists) for a model whose only input is a 2-D float tensor becomes that tensor directly, rows copied into
 * one typed array, instead of a Frame of one array per column cast afterwards. Anything unusual (nulls,
 * strings, ragged rows, other keys, another kind of model) returns undefined and takes the general path,
 * which gives the same result and the precise errors.
 */
export function numericRowsInput(
  body: unknown,
  signature: Signature,
): { feeds: Tensor[]; params: Params } | undefined {
  if (signature.inputs.length !== 1 || !isObject(body)) return undefined;
  const spec = signature.inputs[0]!;
  if ((spec.dtype !== "float32" && spec.dtype !== "float64") || spec.shape?.length !== 2) return undefined;
  let key: (typeof ROW_KEYS)[number] | undefined;
  for (const k of Object.keys(body)) {
    if (k === "params") continue;
    if (key !== undefined || !(ROW_KEYS as readonly string[]).includes(k)) return undefined;
    key = k as (typeof ROW_KEYS)[number];
  }
  if (key === undefined) return undefined;
  const params = body.params;
  if (params !== undefined && (!isObject(params) || deeperThan(params, MAX_PARAMS_DEPTH))) return undefined;
  let rows: unknown = body[key];
  if (key === "dataframe_split") {
    if (!isObject(rows) || !Array.isArray(rows.columns)) return undefined;
    for (const k of Object.keys(rows)) if (k !== "columns" && k !== "data" && k !== "index") return undefined;
    const width = rows.columns.length;
    rows = rows.data;
    if (!Array.isArray(rows) || (rows.length > 0 && (rows[0] as unknown[])?.length !== width))
      return undefined;
  }
  if (!Array.isArray(rows) || rows.length === 0 || !Array.isArray(rows[0])) return undefined;
  const k = (rows[0] as unknown[]).length;
  const fixed = spec.shape[1];
  if (k === 0 || k > MAX_COLUMNS || (typeof fixed === "number" && fixed >= 0 && fixed !== k))
    return undefined;
  const n = rows.length;
  const data = spec.dtype === "float32" ? new Float32Array(n * k) : new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    const row = rows[r];
    if (!Array.isArray(row) || row.length !== k) return undefined;
    for (let c = 0; c < k; c++) {
      const v = row[c];
      if (typeof v !== "number") return undefined;
      data[r * k + c] = v;
    }
  }
  return {
    feeds: [{ name: spec.name, dtype: spec.dtype, shape: [n, k], data }],
    params: (params ?? {}) as Params,
  };
}
type Dim = number | string;
const isDynamic = (d: Dim | undefined) => typeof d === "string" || d === undefined || d < 0;
const shapeText = (shape: readonly Dim[] | null) => (shape ? `[${shape.join(", ")}]` : "(any shape)");
const specText = (s: TensorSpec) => `${s.name} (${s.dtype} ${shapeText(s.shape)})`;

/** Feeds for `signature.inputs`, in signature order, each cast to the input's dtype and shape. */
export function modelInputs(input: Payload, signature: Signature): Tensor[] {
  return input instanceof Frame
    ? frameToModelInputs(input, signature)
    : tensorsToModelInputs(input, signature);
}

function checkRows(spec: TensorSpec, rows: number): void {
  const d0 = spec.shape?.[0];
  if (d0 !== undefined && !isDynamic(d0) && d0 !== rows) {
    throw invalid(`model input '${spec.name}' takes exactly ${d0} rows per call; the request has ${rows}`);
  }
}

/** Column kinds whose values are plain JS numbers in their typed arrays (no bigint, bool or float16 bits). */
const PLAIN_NUMERIC: ReadonlySet<Dtype> = new Set<Dtype>([
  "float64",
  "float32",
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
]);

/**
 * Frame → feeds. A model with exactly one 2-D input `[N, k]` takes the frame's columns in order as its k
 * features. Otherwise columns match inputs by name (request order does not matter): a missing, extra or
 * ill-typed column fails naming it; each column feeds an `[N]` or `[N, 1]` input.
 */
export function frameToModelInputs(frame: Frame, signature: Signature): Tensor[] {
  const inputs = signature.inputs;
  const only = inputs.length === 1 ? inputs[0] : undefined;
  if (only?.shape?.length === 2) {
    const k = only.shape[1];
    const cols = frame.entries();
    if (!isDynamic(k) && cols.length !== k) {
      throw invalid(
        `model input '${only.name}' takes ${k} columns per row (${only.dtype} ${shapeText(only.shape)}); ` +
          `the request has ${cols.length}: ${frame.columns.join(", ") || "(none)"}`,
      );
    }
    checkRows(only, frame.length);
    const n = frame.length;
    const width = cols.length;
    const out = allocate(only.dtype, n * width);
    const floatTarget = only.dtype === "float32" || only.dtype === "float64";
    cols.forEach((c, j) => {
      // Plain numeric columns go straight into a float input (typed-array stores round like the cast);
      // everything else takes the checked cast, which names the column when a value cannot be converted.
      const values =
        floatTarget && PLAIN_NUMERIC.has(c.kind)
          ? c.data
          : castColumn(c.data, c.kind, only.dtype, `column '${c.name}'`);
      for (let r = 0; r < n; r++) (out as unknown[])[r * width + j] = values[r];
    });
    return [{ name: only.name, dtype: only.dtype, shape: [n, width], data: out }];
  }

  const expected = new Set(inputs.map((s) => s.name));
  const feeds = inputs.map((spec) => {
    if (!frame.has(spec.name)) throw invalid(`missing column '${spec.name}' (expected ${spec.dtype})`);
    const shape = spec.shape;
    let feedShape: number[];
    if (shape === null || shape.length === 1) feedShape = [frame.length];
    else if (shape.length === 2 && (isDynamic(shape[1]) || shape[1] === 1)) feedShape = [frame.length, 1];
    else {
      throw invalid(
        `model input '${spec.name}' takes shape ${shapeText(shape)}; a column gives one value per row, ` +
          'so send this input as a tensor: {"inputs": {"name": [...]}}',
      );
    }
    checkRows(spec, frame.length);
    const data = castColumn(
      frame.column(spec.name),
      frame.kind(spec.name),
      spec.dtype,
      `column '${spec.name}'`,
    );
    return { name: spec.name, dtype: spec.dtype, shape: feedShape, data };
  });
  for (const name of frame.columns) {
    if (!expected.has(name)) {
      throw invalid(
        `unexpected column '${name}'; the model's inputs are: ${inputs.map(specText).join(", ")}`,
      );
    }
  }
  return feeds;
}

/**
 * Tensors → feeds. Names must match the inputs; one unnamed tensor feeds a single-input model. Fixed
 * dimensions must match (symbolic or -1 dimensions take anything); `[N]` feeds `[N, 1]` and back.
 */
export function tensorsToModelInputs(tensors: readonly Tensor[], signature: Signature): Tensor[] {
  const inputs = signature.inputs;
  const first = tensors[0];
  if (tensors.length === 1 && first?.name === UNNAMED) {
    const only = inputs[0];
    if (inputs.length !== 1 || !only) {
      throw invalid(
        `the request sends one unnamed tensor but the model has ${inputs.length} inputs ` +
          `(${inputs.map(specText).join(", ")}); send named tensors: {"inputs": {"name": [...]}}`,
      );
    }
    return [fitTensor(first, only)];
  }
  const byName = new Map<string, Tensor>();
  for (const t of tensors) {
    if (t.name === UNNAMED || byName.has(t.name)) {
      throw invalid(
        t.name === UNNAMED
          ? "an unnamed tensor cannot be sent with others"
          : `input '${t.name}' is sent twice`,
      );
    }
    byName.set(t.name, t);
  }
  const feeds = inputs.map((spec) => {
    const t = byName.get(spec.name);
    if (!t) throw invalid(`missing input '${spec.name}' (expected ${spec.dtype} ${shapeText(spec.shape)})`);
    return fitTensor(t, spec);
  });
  const expected = new Set(inputs.map((s) => s.name));
  for (const t of tensors) {
    if (!expected.has(t.name)) {
      throw invalid(
        `unexpected input '${t.name}'; the model's inputs are: ${inputs.map(specText).join(", ")}`,
      );
    }
  }
  return feeds;
}

function fitTensor(t: Tensor, spec: TensorSpec): Tensor {
  let shape = t.shape;
  const want = spec.shape;
  const field = `input '${spec.name}'`;
  if (want) {
    if (shape.length + 1 === want.length && (isDynamic(want.at(-1)) || want.at(-1) === 1))
      shape = [...shape, 1];
    else if (shape.length === want.length + 1 && shape.at(-1) === 1) shape = shape.slice(0, -1);
    const fits = shape.length === want.length && want.every((d, i) => isDynamic(d) || d === shape[i]);
    if (!fits) {
      throw invalid(
        `${field} expects shape ${shapeText(want)} (${spec.dtype}); the request has [${t.shape.join(", ")}]`,
      );
    }
  }
  const cast = castTensor(t, spec.dtype, field);
  return { name: spec.name, dtype: spec.dtype, shape, data: cast.data };
}
