// Model outputs → MLflow's `{"predictions": …}` response body, as MLflow's scoring server writes it. Replicas write the
// same body straight to JSON text (reply-json.ts); this object form is its reference and the in-process API's reply.
import { elementCount, Frame, fromFloat16Bits, type Payload, type TensorData } from "@switchyard/data";
import type { Dtype } from "@switchyard/protocol";

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
