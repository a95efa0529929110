// MLflow scoring-server request bodies → Frame/Tensors, request data → a model's feeds, and outputs → the
// `{"predictions": …}` response, read the way MLflow 2.x's scoring server and proto_json_utils read them.
import { invalid, SwitchyardError } from "./errors.js";
import { describeValue, Frame, inferColumn } from "./frame.js";
import type { Dtype, Signature, TensorSpec } from "./model.js";
import {
  allocate,
  castColumn,
  castTensor,
  elementCount,
  fromFloat16Bits,
  type Tensor,
  type TensorData,
  UNNAMED,
} from "./tensor.js";

/**
 * Request or response data: a Frame (named columns: `dataframe_split`, `dataframe_records`, lists of records,
 * CSV) or tensors (`instances`/`inputs` lists and named-tensor objects; a bare list is one tensor named
 * `UNNAMED`). Tell them apart with `instanceof Frame`. The same type crosses NATS and reaches custom models.
 */
export type Payload = Frame | Tensor[];
export type Params = Record<string, unknown>;

export const INPUT_FORMATS = ["dataframe_split", "dataframe_records", "instances", "inputs"] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

export interface ParsedRequest {
  input: Payload;
  /** The body's `params` object; `{}` when absent or null. */
  params: Params;
  /** Which input key the body used. */
  format: InputFormat;
}

const REQUIRED_INPUT_FORMAT =
  "The input must be a JSON dictionary with exactly one of the input fields " +
  "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}";

const utf8 = new TextDecoder();

const badRequest = (message: string) => new SwitchyardError("BAD_REQUEST", `Invalid input. ${message}`);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/** A JSON body (text or UTF-8 bytes) as a value. Malformed JSON → BAD_REQUEST with MLflow's wording. */
export function parseJsonBody(body: string | Uint8Array): unknown {
  const text = typeof body === "string" ? body : utf8.decode(body);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(
      `Ensure that input is a valid JSON formatted string. Error: '${(err as Error).message}'`,
    );
  }
}

/** Parses a JSON request body (text or UTF-8 bytes). Malformed JSON → BAD_REQUEST. */
export function parseJsonRequest(body: string | Uint8Array): ParsedRequest {
  return parseRequestBody(parseJsonBody(body));
}

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
  if (params !== undefined && !isObject(params)) return undefined;
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
  if (k === 0 || (typeof fixed === "number" && fixed >= 0 && fixed !== k)) return undefined;
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

/**
 * Reads a decoded body: an object with exactly one of `dataframe_split`, `dataframe_records`, `instances`,
 * `inputs`, plus an optional `params` object (other keys are ignored, as MLflow ignores them). Body shape
 * errors → BAD_REQUEST; bad values (ragged rows, mixed types) → INVALID_PARAMETER_VALUE naming the field.
 */
export function parseRequestBody(body: unknown): ParsedRequest {
  if (!isObject(body)) {
    const received = Array.isArray(body)
      ? "Received a list"
      : `Received unexpected input type '${body === null ? "null" : typeof body}'`;
    throw badRequest(`${REQUIRED_INPUT_FORMAT}. ${received}.`);
  }
  const keys = INPUT_FORMATS.filter((k) => Object.hasOwn(body, k));
  const format = keys[0];
  if (keys.length !== 1 || format === undefined) {
    throw badRequest(
      `${REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: ${JSON.stringify(Object.keys(body))}.`,
    );
  }
  const rawParams = body.params;
  if (rawParams !== undefined && rawParams !== null && !isObject(rawParams)) {
    throw badRequest(
      `'params' must be a JSON object of parameter names to values, got ${describeValue(rawParams)}.`,
    );
  }
  const params = (rawParams ?? {}) as Params;
  const value = body[format];
  switch (format) {
    case "dataframe_split":
      return { input: parseSplit(value), params, format };
    case "dataframe_records":
      if (!Array.isArray(value)) {
        throw badRequest(
          `'dataframe_records' must be a list of records (objects), got ${describeValue(value)}.`,
        );
      }
      return { input: Frame.fromRecords(value, "dataframe_records"), params, format };
    default:
      return { input: parseTfServing(format, value), params, format };
  }
}

function parseSplit(value: unknown): Frame {
  const where = "dataframe_split";
  if (!isObject(value)) {
    throw badRequest(`'${where}' must be an object with 'columns' and 'data', got ${describeValue(value)}.`);
  }
  for (const k of Object.keys(value)) {
    if (k !== "columns" && k !== "data" && k !== "index") {
      throw badRequest(
        `'${where}' has unexpected key '${k}'; expected 'columns', 'data' and optionally 'index'.`,
      );
    }
  }
  const { columns, data, index } = value;
  if (!Array.isArray(data))
    throw badRequest(`'${where}.data' must be a list of rows, got ${describeValue(data)}.`);
  let names: string[];
  if (columns === undefined) {
    // pandas names columns 0..k-1 when none are given.
    const first = data[0];
    names = Array.isArray(first) ? first.map((_, i) => String(i)) : [];
  } else {
    if (!Array.isArray(columns) || !columns.every((c) => typeof c === "string" || typeof c === "number")) {
      throw badRequest(`'${where}.columns' must be a list of column names.`);
    }
    names = columns.map(String);
  }
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw invalid(`${where}.columns names column '${n}' twice`);
    seen.add(n);
  }
  const width = names.length;
  for (let r = 0; r < data.length; r++) {
    const row = data[r];
    if (!Array.isArray(row)) {
      throw invalid(
        `${where}.data[${r}] must be a list of ${width} values (one per column), got ${describeValue(row)}`,
      );
    }
    if (row.length !== width) {
      throw invalid(
        `${where}.data[${r}] has ${row.length} values; expected ${width}, one per column (${names.join(", ")})`,
      );
    }
  }
  if (index !== undefined && (!Array.isArray(index) || index.length !== data.length)) {
    throw invalid(`${where}.index must be a list with one entry per row (${data.length})`);
  }
  const rows = data as unknown[][];
  return Frame.of(
    names.map((name, c) => {
      const get = (r: number) => rows[r]![c];
      return inferColumn(name, rows.length, get, (r) => `${where}.data[${r}]`);
    }),
    rows.length,
  );
}

/** `instances` / `inputs`, after MLflow's `parse_tf_serving_input`. */
function parseTfServing(key: "instances" | "inputs", value: unknown): Payload {
  if (Array.isArray(value)) {
    if (value.length > 0 && isObject(value[0])) return parseInstanceRecords(key, value);
    return [tensorFromNested(UNNAMED, value, key)];
  }
  if (isObject(value)) {
    if (key === "instances") {
      throw badRequest(
        "'instances' must be a list with one entry per row, got an object; send named tensors as " +
          '{"inputs": {"name": [...]}}.',
      );
    }
    const tensors = Object.entries(value).map(([name, v]) => {
      if (!Array.isArray(v)) {
        throw invalid(
          `inputs.${name} must be a list (a tensor with a row dimension), got ${describeValue(v)}`,
        );
      }
      return tensorFromNested(name, v, `inputs.${name}`);
    });
    checkSameRows(tensors, (t) => `inputs.${t.name}`);
    return tensors;
  }
  throw badRequest(`'${key}' must be a list or an object of named lists, got ${describeValue(value)}.`);
}

/** A list of records: scalar values → a Frame (missing keys are null); any list value → named tensors. */
function parseInstanceRecords(key: string, records: unknown[]): Payload {
  let nested = false;
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (!isObject(r)) {
      throw invalid(`${key}[${i}] must be an object like ${key}[0], got ${describeValue(r)}`);
    }
    if (Object.values(r).some(Array.isArray)) nested = true;
  }
  if (!nested) return Frame.fromRecords(records, key);
  const names = new Map<string, true>();
  for (const r of records as Record<string, unknown>[]) for (const k of Object.keys(r)) names.set(k, true);
  const tensors = [...names.keys()].map((name) => {
    const values = (records as Record<string, unknown>[]).map((r, i) => {
      if (!Object.hasOwn(r, name)) {
        throw invalid(`${key}[${i}] has no '${name}'; every instance must have the same keys`);
      }
      return r[name];
    });
    return tensorFromNested(name, values, `${key}[*].${name}`);
  });
  return tensors;
}

function checkSameRows(tensors: readonly Tensor[], where: (t: Tensor) => string): void {
  const first = tensors[0];
  for (const t of tensors) {
    if (first && t.shape[0] !== first.shape[0]) {
      throw invalid(
        `${where(t)} has ${t.shape[0]} rows but ${where(first)} has ${first.shape[0]}; ` +
          "every input must have the same number of rows",
      );
    }
  }
}

type Leaf = "number" | "string" | "boolean";

/**
 * A nested JSON list → one tensor: shape from the first element at each depth, every list at a depth must
 * have that length. numbers → float64 (null → NaN), strings → string, booleans → bool; mixing fails.
 */
export function tensorFromNested(name: string, value: readonly unknown[], where: string): Tensor {
  const shape: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0];
  }
  const leaves: unknown[] = [];
  const path: number[] = [];
  const at = () => `${where}${path.map((i) => `[${i}]`).join("")}`;
  const walk = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v))
        throw invalid(`${at()} is a list; expected a single value like ${where}${"[0]".repeat(depth)}`);
      leaves.push(v);
      return;
    }
    if (!Array.isArray(v)) {
      throw invalid(
        `${at()} is ${describeValue(v)}; expected a list of ${shape[depth]} values like ${where}${"[0]".repeat(depth)}`,
      );
    }
    if (v.length !== shape[depth]) {
      throw invalid(
        `${at()} has ${v.length} values; expected ${shape[depth]} like ${where}${"[0]".repeat(depth)}`,
      );
    }
    for (let i = 0; i < v.length; i++) {
      path.push(i);
      walk(v[i], depth + 1);
      path.pop();
    }
  };
  walk(value, 0);

  const flatAt = (i: number) => {
    let rest = i;
    const idx: number[] = [];
    for (let d = shape.length - 1; d >= 0; d--) {
      const n = shape[d]!;
      idx.unshift(rest % n);
      rest = Math.floor(rest / n);
    }
    return `${where}${idx.map((j) => `[${j}]`).join("")}`;
  };
  let leaf: Leaf | undefined;
  let firstAt = -1;
  let firstNull = -1;
  for (let i = 0; i < leaves.length; i++) {
    const v = leaves[i];
    if (v === null) {
      if (firstNull < 0) firstNull = i;
      continue;
    }
    const t = typeof v;
    if (t !== "number" && t !== "string" && t !== "boolean") {
      throw invalid(`${flatAt(i)} is ${describeValue(v)}; tensor values are numbers, strings or booleans`);
    }
    if (leaf === undefined) {
      leaf = t as Leaf;
      firstAt = i;
    } else if (leaf !== t) {
      throw invalid(
        `${where} mixes value types: ${flatAt(firstAt)} is ${describeValue(leaves[firstAt])}, ${flatAt(i)} is ${describeValue(v)}`,
      );
    }
  }
  if (leaf === "string" || leaf === "boolean") {
    if (firstNull >= 0) {
      throw invalid(
        `${flatAt(firstNull)} is null; a ${leaf === "string" ? "string" : "bool"} tensor cannot hold nulls`,
      );
    }
    if (leaf === "string") return { name, dtype: "string", shape, data: leaves as string[] };
    return { name, dtype: "bool", shape, data: Uint8Array.from(leaves as boolean[], (b) => (b ? 1 : 0)) };
  }
  const data = new Float64Array(leaves.length);
  for (let i = 0; i < leaves.length; i++) data[i] = (leaves[i] as number | null) ?? Number.NaN;
  return { name, dtype: "float64", shape, data };
}

// ---- request data → model feeds -------------------------------------------------------------------------

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

// ---- outputs → response ---------------------------------------------------------------------------------

interface OutputView {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  data: TensorData | readonly (string | null)[];
}

/**
 * The MLflow response `{"predictions": …}`. One output: `[v1, v2, …]` (an `[N, 1]` output flattened to N
 * values, `[N, k]` as N lists of k). Several outputs with the same row count: one record per row,
 * `[{"label": …, "probabilities": [...]}, …]`; otherwise MLflow's dict form `{"name": [...], …}`. A Frame's
 * columns are its outputs. NaN → null; int64 → number when exactly representable, else a decimal string.
 */
export function predictionsBody(outputs: Payload): { predictions: unknown } {
  const views: OutputView[] =
    outputs instanceof Frame
      ? outputs.entries().map((c) => ({ name: c.name, dtype: c.kind, shape: [outputs.length], data: c.data }))
      : outputs;
  const only = views[0];
  if (views.length === 1 && only) return { predictions: outputToJson(only) };
  const rows = only?.shape[0];
  const perRow = rows !== undefined && views.every((v) => v.shape.length >= 1 && v.shape[0] === rows);
  if (!perRow) {
    const dict: Record<string, unknown> = {};
    for (const v of views) dict[v.name] = outputToJson(v);
    return { predictions: dict };
  }
  const rowSizes = views.map((v) => elementCount(v.shape.slice(1)));
  const records: Record<string, unknown>[] = [];
  for (let r = 0; r < rows; r++) {
    const rec: Record<string, unknown> = {};
    views.forEach((v, j) => {
      const size = rowSizes[j]!;
      rec[v.name] = squeezesToScalar(v.shape) ? jsonAt(v, r * size) : nested(v, r * size, 1);
    });
    records.push(rec);
  }
  return { predictions: records };
}

const squeezesToScalar = (shape: readonly number[]) =>
  shape.length === 1 || (shape.length === 2 && shape[1] === 1);

function outputToJson(v: OutputView): unknown {
  if (v.shape.length === 0) return jsonAt(v, 0);
  if (v.shape.length === 2 && v.shape[1] === 1) return nested({ ...v, shape: [v.shape[0]!] }, 0, 0);
  return nested(v, 0, 0);
}

/** The sub-array of `v` starting at flat `offset` spanning dimensions `dim..`. */
function nested(v: OutputView, offset: number, dim: number): unknown[] {
  const n = v.shape[dim] ?? 0;
  const out = new Array<unknown>(n);
  if (dim === v.shape.length - 1) {
    for (let i = 0; i < n; i++) out[i] = jsonAt(v, offset + i);
    return out;
  }
  const stride = elementCount(v.shape.slice(dim + 1));
  for (let i = 0; i < n; i++) out[i] = nested(v, offset + i * stride, dim + 1);
  return out;
}

function jsonAt(v: OutputView, i: number): unknown {
  const x = v.data[i];
  switch (typeof x) {
    case "number": {
      if (v.dtype === "bool") return x !== 0;
      const f = v.dtype === "float16" ? fromFloat16Bits(x) : x;
      return Number.isFinite(f) ? f : null;
    }
    case "bigint":
      return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(x)
        : x.toString();
    default:
      return x ?? null;
  }
}
