// The MLflow `{"predictions": …}` reply written straight from typed-array outputs to JSON text, one pass per
// output: the text is byte for byte `JSON.stringify(predictionsBody(outputs))` (reply.ts says what it holds) without
// building a JavaScript array per row. It must never format a value differently from that path.
import { elementCount, Frame, fromFloat16Bits, type Payload, type TensorData } from "@switchyard/data";
import type { Dtype } from "@switchyard/protocol";
import { predictionsBody } from "./reply.js";

interface OutputView {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  data: TensorData | readonly (string | null)[];
}

/** One element of an output as JSON text. */
type ElementWriter = (i: number) => string;

/** `JSON.stringify(predictionsBody(outputs))`, written without intermediate arrays. */
export function predictionsJson(outputs: Payload): string {
  const views: OutputView[] =
    outputs instanceof Frame
      ? outputs.entries().map((c) => ({ name: c.name, dtype: c.kind, shape: [outputs.length], data: c.data }))
      : outputs;
  const only = views[0];
  if (views.length === 1 && only) return `{"predictions":${outputJson(only)}}`;
  // Records and the dict form are objects keyed by output name: JavaScript orders integer-like keys first, drops a
  // repeated key's first place and treats "__proto__" specially. Such names keep the object path, so the text
  // stays what JSON.stringify writes.
  if (!plainKeys(views)) return JSON.stringify(predictionsBody(outputs));
  const rows = only?.shape[0];
  const perRow = rows !== undefined && views.every((v) => v.shape.length >= 1 && v.shape[0] === rows);
  if (!perRow) {
    let s = '{"predictions":{';
    views.forEach((v, j) => {
      s += `${j === 0 ? "" : ","}${JSON.stringify(v.name)}:${outputJson(v)}`;
    });
    return `${s}}}`;
  }
  const keys = views.map((v, j) => `${j === 0 ? "{" : ","}${JSON.stringify(v.name)}:`);
  const writers = views.map(elementWriter);
  const rowSizes = views.map((v) => elementCount(v.shape.slice(1)));
  const scalar = views.map((v) => squeezesToScalar(v.shape));
  let s = '{"predictions":[';
  for (let r = 0; r < rows; r++) {
    if (r > 0) s += ",";
    for (let j = 0; j < views.length; j++) {
      const at = r * rowSizes[j]!;
      s += keys[j]! + (scalar[j] ? writers[j]!(at) : nested(views[j]!, writers[j]!, at, 1));
    }
    s += "}";
  }
  return `${s}]}`;
}

const squeezesToScalar = (shape: readonly number[]) =>
  shape.length === 1 || (shape.length === 2 && shape[1] === 1);

/** Names JavaScript keeps as ordinary, distinct, insertion-ordered object keys. */
function plainKeys(views: readonly OutputView[]): boolean {
  const seen = new Set<string>();
  for (const { name } of views) {
    if (seen.has(name) || name === "__proto__" || isArrayIndex(name)) return false;
    seen.add(name);
  }
  return true;
}

const isArrayIndex = (key: string) => /^(0|[1-9]\d*)$/.test(key) && Number(key) < 2 ** 32 - 1;

function outputJson(v: OutputView): string {
  const write = elementWriter(v);
  if (v.shape.length === 0) return write(0);
  if (v.shape.length === 2 && v.shape[1] === 1) return nested({ ...v, shape: [v.shape[0]!] }, write, 0, 0);
  return nested(v, write, 0, 0);
}

/** The sub-array of `v` starting at flat `offset` spanning dimensions `dim..`. */
function nested(v: OutputView, write: ElementWriter, offset: number, dim: number): string {
  const n = v.shape[dim] ?? 0;
  let s = "[";
  if (dim === v.shape.length - 1) {
    for (let i = 0; i < n; i++) s += (i === 0 ? "" : ",") + write(offset + i);
    return `${s}]`;
  }
  const stride = elementCount(v.shape.slice(dim + 1));
  for (let i = 0; i < n; i++) s += (i === 0 ? "" : ",") + nested(v, write, offset + i * stride, dim + 1);
  return `${s}]`;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** How `v`'s elements are written, chosen once per output. Each case is reply.ts `jsonAt` followed by
 * JSON.stringify: a finite number as `String(x)`, NaN/±Infinity as null, bool as true/false, an int64 as a number
 * when exactly representable, else a decimal string; a missing element as null. */
function elementWriter(v: OutputView): ElementWriter {
  const d = v.data;
  if (v.dtype === "bool" && d instanceof Uint8Array) {
    return (i) => {
      const x = d[i];
      return x === undefined ? "null" : x !== 0 ? "true" : "false";
    };
  }
  if (
    (d instanceof Float32Array || d instanceof Float64Array) &&
    v.dtype !== "bool" &&
    v.dtype !== "float16"
  ) {
    return (i) => {
      const x = d[i];
      return x !== undefined && Number.isFinite(x) ? String(x) : "null";
    };
  }
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    return (i) => {
      const x = d[i];
      if (x === undefined) return "null";
      return x >= MIN_SAFE && x <= MAX_SAFE ? String(Number(x)) : `"${x}"`;
    };
  }
  return (i) => anyJson(v.dtype, d[i]);
}

/** Any other element: float16 bits, integers, strings (escaped as JSON.stringify does), null. */
function anyJson(dtype: Dtype, x: unknown): string {
  switch (typeof x) {
    case "number": {
      if (dtype === "bool") return x !== 0 ? "true" : "false";
      const f = dtype === "float16" ? fromFloat16Bits(x) : x;
      return Number.isFinite(f) ? String(f) : "null";
    }
    case "bigint":
      return x >= MIN_SAFE && x <= MAX_SAFE ? String(Number(x)) : `"${x}"`;
    default:
      return JSON.stringify(x ?? null);
  }
}
