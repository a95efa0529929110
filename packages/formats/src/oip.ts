// Open Inference Protocol v2 (KServe/Triton REST) JSON bodies ↔ Tensors: datatypes, the infer request, the
// infer response and model metadata. Tensor data travels as a flat (or nested) row-major JSON array.
import {
  castColumn,
  describeValue,
  elementCount,
  fromFloat16Bits,
  type Tensor,
  type TensorData,
} from "@switchyard/data";
import {
  type Dtype,
  deeperThan,
  invalid,
  MAX_PARAMS_DEPTH,
  MAX_TENSOR_DIMS,
  SwitchyardError,
  type TensorSpec,
} from "@switchyard/protocol";
import type { Params } from "./request.js";

export const OIP_DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];

const TO_DTYPE: { readonly [K in OipDatatype]: Dtype } = {
  BOOL: "bool",
  UINT8: "uint8",
  UINT16: "uint16",
  UINT32: "uint32",
  UINT64: "uint64",
  INT8: "int8",
  INT16: "int16",
  INT32: "int32",
  INT64: "int64",
  FP16: "float16",
  FP32: "float32",
  FP64: "float64",
  BYTES: "string",
};

const FROM_DTYPE: { readonly [K in Dtype]: OipDatatype } = {
  bool: "BOOL",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  int8: "INT8",
  int16: "INT16",
  int32: "INT32",
  int64: "INT64",
  float16: "FP16",
  float32: "FP32",
  float64: "FP64",
  string: "BYTES",
};

export function isOipDatatype(value: unknown): value is OipDatatype {
  return typeof value === "string" && Object.hasOwn(TO_DTYPE, value);
}

/** The Switchyard dtype of an OIP datatype (`FP32` → `float32`, `BYTES` → `string`). */
export function dtypeOfOip(datatype: OipDatatype): Dtype {
  return TO_DTYPE[datatype];
}

/** The OIP datatype of a Switchyard dtype (`float32` → `FP32`, `string` → `BYTES`). */
export function oipDatatype(dtype: Dtype): OipDatatype {
  return FROM_DTYPE[dtype];
}

/** One tensor of the model metadata response (`GET /v2/models/{name}`): dynamic dimensions are -1. */
export interface OipTensorMetadata {
  name: string;
  datatype: OipDatatype;
  shape: number[];
}

export function oipTensorMetadata(spec: TensorSpec): OipTensorMetadata {
  return {
    name: spec.name,
    datatype: oipDatatype(spec.dtype),
    shape: (spec.shape ?? [-1]).map((d) => (typeof d === "number" ? d : -1)),
  };
}

export interface OipInferRequest {
  /** The request's `id`, echoed in the response; undefined when absent. */
  id: string | undefined;
  inputs: Tensor[];
  /** Request-level `parameters` (`{}` when absent). */
  params: Params;
  /** Names of the requested `outputs`, or null for all of them. */
  outputs: string[] | null;
}

export interface OipOutputTensor {
  name: string;
  shape: number[];
  datatype: OipDatatype;
  data: unknown[];
}

export interface OipInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Params;
  outputs: OipOutputTensor[];
}

const utf8 = new TextDecoder();

const badRequest = (message: string) => new SwitchyardError("BAD_REQUEST", `Invalid OIP request. ${message}`);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses an OIP v2 infer request body (text or UTF-8 bytes). Structure errors → BAD_REQUEST; bad data →
 * INVALID_PARAMETER_VALUE naming the input. */
export function parseOipRequest(body: string | Uint8Array): OipInferRequest {
  const text = typeof body === "string" ? body : utf8.decode(body);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest(
      `Ensure that input is a valid JSON formatted string. Error: '${(err as Error).message}'`,
    );
  }
  return parseOipBody(value);
}

/** Reads a decoded OIP v2 infer request object. */
export function parseOipBody(body: unknown): OipInferRequest {
  if (!isObject(body)) throw badRequest(`The body must be a JSON object, got ${describeValue(body)}.`);
  const { id, inputs, parameters, outputs } = body;
  if (id !== undefined && typeof id !== "string") {
    throw badRequest(`'id' must be a string, got ${describeValue(id)}.`);
  }
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw badRequest(`'inputs' must be a non-empty list of tensors, got ${describeValue(inputs)}.`);
  }
  if (parameters !== undefined && parameters !== null && !isObject(parameters)) {
    throw badRequest(`'parameters' must be an object, got ${describeValue(parameters)}.`);
  }
  if (deeperThan(parameters, MAX_PARAMS_DEPTH)) {
    throw badRequest(`'parameters' nests deeper than ${MAX_PARAMS_DEPTH} levels, the most allowed.`);
  }
  let wanted: string[] | null = null;
  if (outputs !== undefined && outputs !== null) {
    if (!Array.isArray(outputs)) throw badRequest(`'outputs' must be a list, got ${describeValue(outputs)}.`);
    wanted = outputs.map((o, i) => {
      if (!isObject(o) || typeof o.name !== "string") {
        throw badRequest(`outputs[${i}] must be an object with a 'name', got ${describeValue(o)}.`);
      }
      return o.name;
    });
  }
  const seen = new Set<string>();
  const tensors = inputs.map((input, i) => {
    const t = oipInputTensor(input, i);
    if (seen.has(t.name)) throw invalid(`input '${t.name}' is sent twice`);
    seen.add(t.name);
    return t;
  });
  return { id, inputs: tensors, params: (parameters ?? {}) as Params, outputs: wanted };
}

function oipInputTensor(input: unknown, i: number): Tensor {
  if (!isObject(input)) throw badRequest(`inputs[${i}] must be an object, got ${describeValue(input)}.`);
  const { name, shape, datatype, data } = input;
  if (typeof name !== "string" || name === "") {
    throw badRequest(`inputs[${i}].name must be a non-empty string, got ${describeValue(name)}.`);
  }
  const where = `input '${name}'`;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw badRequest(
      `${where}: 'shape' must be a list of non-negative integers, got ${JSON.stringify(shape)}.`,
    );
  }
  if (!isOipDatatype(datatype)) {
    throw badRequest(
      `${where}: 'datatype' must be one of ${OIP_DATATYPES.join(", ")}, got ${JSON.stringify(datatype)}.`,
    );
  }
  if (!Array.isArray(data)) {
    throw badRequest(
      `${where}: 'data' must be a JSON list (binary tensor data is not supported), got ${describeValue(data)}.`,
    );
  }
  const dims = shape as number[];
  if (dims.length > MAX_TENSOR_DIMS || deeperThan(data, MAX_TENSOR_DIMS)) {
    throw badRequest(`${where}: 'shape' and 'data' may have at most ${MAX_TENSOR_DIMS} dimensions.`);
  }
  const flat = flatten(data);
  const n = elementCount(dims);
  if (flat.length !== n) {
    throw invalid(`${where} has ${flat.length} values but shape [${dims.join(", ")}] needs ${n}`);
  }
  const dtype = TO_DTYPE[datatype];
  return { name, dtype, shape: dims, data: oipValues(flat, datatype, dtype, where) };
}

/** Row-major flattening of nested lists (OIP allows either form). */
function flatten(data: unknown[]): unknown[] {
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (v: unknown[]) => {
    for (const x of v) {
      if (Array.isArray(x)) walk(x);
      else out.push(x);
    }
  };
  walk(data);
  return out;
}

function oipValues(flat: unknown[], datatype: OipDatatype, dtype: Dtype, where: string): TensorData {
  const n = flat.length;
  if (datatype === "BYTES") {
    for (let i = 0; i < n; i++) {
      if (typeof flat[i] !== "string") {
        throw invalid(`${where} value ${i} is ${describeValue(flat[i])}; BYTES values are strings`);
      }
    }
    return flat as string[];
  }
  if (datatype === "BOOL") {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== "boolean")
        throw invalid(`${where} value ${i} is ${describeValue(v)}; BOOL values are true or false`);
      out[i] = v ? 1 : 0;
    }
    return out;
  }
  const numbers = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = flat[i];
    if (typeof v === "number") numbers[i] = v;
    else if (v === null && (datatype === "FP16" || datatype === "FP32" || datatype === "FP64")) {
      numbers[i] = Number.NaN;
    } else throw invalid(`${where} value ${i} is ${describeValue(v)}; ${datatype} values are numbers`);
  }
  // castColumn checks whole numbers and ranges for the integer types, naming the value.
  return castColumn(numbers, "float64", dtype, where);
}

/** A tensor's data as a flat JSON list: booleans for bool, numbers (float16 decoded, int64 as Number). */
export function oipData(t: { dtype: Dtype; data: TensorData | readonly (string | null)[] }): unknown[] {
  const d = t.data;
  if (Array.isArray(d)) return d as unknown[];
  const n = d.length;
  const out = new Array<unknown>(n);
  switch (t.dtype) {
    case "bool":
      for (let i = 0; i < n; i++) out[i] = d[i] !== 0;
      return out;
    case "float16":
      for (let i = 0; i < n; i++) out[i] = fromFloat16Bits(d[i] as number);
      return out;
    case "int64":
    case "uint64":
      for (let i = 0; i < n; i++) out[i] = Number(d[i]);
      return out;
    default:
      for (let i = 0; i < n; i++) out[i] = d[i];
      return out;
  }
}

/** The OIP v2 infer response for `outputs` (all of them, or the `requested` names in that order). */
export function oipResponse(o: {
  modelName: string;
  modelVersion: string | number;
  id: string;
  outputs: readonly Tensor[];
  requested?: readonly string[] | null;
  parameters?: Params;
}): OipInferResponse {
  let chosen: readonly Tensor[] = o.outputs;
  if (o.requested) {
    chosen = o.requested.map((name) => {
      const t = o.outputs.find((x) => x.name === name);
      if (!t) {
        throw invalid(
          `requested output '${name}' does not exist; the model's outputs are: ${o.outputs.map((x) => x.name).join(", ")}`,
        );
      }
      return t;
    });
  }
  const response: OipInferResponse = {
    model_name: o.modelName,
    model_version: String(o.modelVersion),
    id: o.id,
    outputs: chosen.map((t) => ({
      name: t.name,
      shape: [...t.shape],
      datatype: FROM_DTYPE[t.dtype],
      data: oipData(t),
    })),
  };
  if (o.parameters) response.parameters = o.parameters;
  return response;
}
