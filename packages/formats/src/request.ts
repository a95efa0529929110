// MLflow scoring-server request bodies → Payload (a Frame or Tensors), read the way MLflow 2.x's scoring server
// and proto_json_utils read them. Only the body's shape is judged here; fitting data to a model is feeds.ts.
import { describeValue, Frame, inferColumn, type Payload, type Tensor, UNNAMED } from "@switchyard/data";
import {
  deeperThan,
  invalid,
  MAX_COLUMNS,
  MAX_PARAMS_DEPTH,
  MAX_TENSOR_DIMS,
  SwitchyardError,
} from "@switchyard/protocol";

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
  // Params reach custom models and logs, which walk them recursively: bound the nesting here.
  if (deeperThan(rawParams, MAX_PARAMS_DEPTH)) {
    throw badRequest(`'params' nests deeper than ${MAX_PARAMS_DEPTH} levels, the most allowed.`);
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
      checkRecordColumns(value, "dataframe_records");
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
  checkColumnCount(names.length, `${where}.columns`);
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
    const entries = Object.entries(value);
    checkColumnCount(entries.length, "inputs");
    const tensors = entries.map(([name, v]) => {
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
  checkRecordColumns(records, key);
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

function checkColumnCount(n: number, where: string): void {
  if (n > MAX_COLUMNS) {
    throw invalid(`${where} names ${n} columns; at most ${MAX_COLUMNS} columns are allowed in one request`);
  }
}

/** Bounds the columns a list of records names (the union of their keys) before a Frame is built from them. */
function checkRecordColumns(records: readonly unknown[], where: string): void {
  const keys = new Set<string>();
  for (const r of records) {
    if (!isObject(r)) continue; // judged, with its index, by the record readers
    for (const k in r) {
      keys.add(k);
      if (keys.size > MAX_COLUMNS) {
        throw invalid(
          `${where} names more than ${MAX_COLUMNS} columns; at most ${MAX_COLUMNS} columns are allowed in one request`,
        );
      }
    }
  }
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
    // The walk below recurses once per dimension: a 100,000-level list must stop here, not overflow it.
    if (shape.length > MAX_TENSOR_DIMS) {
      throw invalid(
        `${where} nests lists deeper than ${MAX_TENSOR_DIMS} dimensions, the most a tensor may have`,
      );
    }
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
