// The MLflow `{"predictions": …}` reply written from typed-array outputs to JSON text: byte for byte
// `JSON.stringify(predictionsBody(outputs))` (reply.ts says what it holds), without an array per row or an object
// per record — each output's values are formatted once, as one flat array. It must never format a value differently
// from that path.
import { elementCount, Frame, fromFloat16Bits, type Payload, type TensorData } from "@switchyard/data";
import type { Dtype } from "@switchyard/protocol";
import { predictionsBody } from "./reply.js";

interface OutputView {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  data: TensorData | readonly (string | null)[];
}

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
  const texts = views.map((v) => elementTexts(v, elementCount(v.shape)));
  const rowSizes = views.map((v) => elementCount(v.shape.slice(1)));
  const scalar = views.map((v) => squeezesToScalar(v.shape));
  let s = '{"predictions":[';
  for (let r = 0; r < rows; r++) {
    if (r > 0) s += ",";
    for (let j = 0; j < views.length; j++) {
      const at = r * rowSizes[j]!;
      s += keys[j]! + (scalar[j] ? texts[j]![at]! : nested(views[j]!.shape, texts[j]!, at, 1));
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
  if (v.shape.length === 0) return textOf(jsonAt(v, 0));
  const flat = v.shape.length === 1 || (v.shape.length === 2 && v.shape[1] === 1);
  if (flat) return flatJson(v, v.shape[0]!);
  return nested(v.shape, elementTexts(v, elementCount(v.shape)), 0, 0);
}

/** The sub-array of an output of `shape` starting at flat `offset` spanning dimensions `dim..`. */
function nested(shape: readonly number[], texts: readonly string[], offset: number, dim: number): string {
  const n = shape[dim] ?? 0;
  if (dim === shape.length - 1) return `[${texts.slice(offset, offset + n).join(",")}]`;
  const stride = elementCount(shape.slice(dim + 1));
  let s = "[";
  for (let i = 0; i < n; i++) s += (i === 0 ? "" : ",") + nested(shape, texts, offset + i * stride, dim + 1);
  return `${s}]`;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Up to this many elements are written one by one: below it one JSON.stringify call costs more than it saves. */
const FEW = 4;

/** The JSON array of the first `n` elements of `v`. */
function flatJson(v: OutputView, n: number): string {
  if (n > FEW && v.dtype !== "string" && !Array.isArray(v.data)) return JSON.stringify(jsonValues(v, n));
  let s = "[";
  for (let i = 0; i < n; i++) s += (i === 0 ? "" : ",") + textOf(jsonAt(v, i));
  return `${s}]`;
}

/**
 * The JSON text of the first `n` elements of `v`. Many numbers, booleans and int64s are formatted by one
 * JSON.stringify of a flat array (V8 writes a number array natively, several times faster than `String(x)` per
 * element), then split at its commas, which no such value contains. Strings may contain commas: each is written on
 * its own.
 */
function elementTexts(v: OutputView, n: number): string[] {
  const values = jsonValues(v, n);
  if (n <= FEW || v.dtype === "string" || Array.isArray(v.data)) return values.map(textOf);
  return JSON.stringify(values).slice(1, -1).split(",");
}

function jsonValues(v: OutputView, n: number): unknown[] {
  const values = new Array<unknown>(n);
  for (let i = 0; i < n; i++) values[i] = jsonAt(v, i);
  return values;
}

/** One value as JSON.stringify writes it inside an array (non-finite numbers as null). */
function textOf(x: unknown): string {
  if (typeof x === "number") return Number.isFinite(x) ? String(x) : "null";
  return JSON.stringify(x ?? null);
}

/** reply.ts `jsonAt`: NaN and ±Infinity become null in the text (JSON.stringify's own rule). */
function jsonAt(v: OutputView, i: number): unknown {
  const x = v.data[i];
  switch (typeof x) {
    case "number":
      if (v.dtype === "bool") return x !== 0;
      return v.dtype === "float16" ? fromFloat16Bits(x) : x;
    case "bigint":
      return x >= MIN_SAFE && x <= MAX_SAFE ? Number(x) : x.toString();
    default:
      return x ?? null;
  }
}
