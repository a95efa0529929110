// The agreement rule of shadow traffic: how many prediction rows of a shadow's reply equal the primary's. Pure;
// it runs off the hot path, once a mirror's reply and its primary's reply are both in.

import { predictionsOf } from "@switchyard/protocol";

const utf8 = new TextDecoder();

/** Numbers count as equal within this much relative to the larger of 1 and their magnitudes. */
export const AGREEMENT_TOLERANCE = 1e-6;

/** Whether two JSON values are the same: numbers within the tolerance, arrays and objects element by element. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") {
    if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
    return Math.abs(a - b) <= AGREEMENT_TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b));
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameValue(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    const ob = b as Record<string, unknown>;
    return ka.every((k) => Object.hasOwn(ob, k) && sameValue((a as Record<string, unknown>)[k], ob[k]));
  }
  return a === b;
}

/**
 * The prediction rows of an MLflow reply body `{"predictions": …}`: the list's elements (a scalar, a list or a
 * record per row), or one record per row of MLflow's dict form `{"name": [...], …}`. Undefined for anything
 * else (OIP v2 and msgpack replies, bodies that are not JSON): those are not compared.
 */
export function predictionRows(body: Uint8Array | string): unknown[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof body === "string" ? body : utf8.decode(body));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || !("predictions" in parsed)) return undefined;
  const p = (parsed as { predictions: unknown }).predictions;
  if (Array.isArray(p)) return p;
  if (p === null || typeof p !== "object") return undefined;
  const columns = Object.entries(p as Record<string, unknown>);
  const n = Array.isArray(columns[0]?.[1]) ? (columns[0][1] as unknown[]).length : -1;
  if (n < 0 || !columns.every(([, v]) => Array.isArray(v) && v.length === n)) return undefined;
  return Array.from({ length: n }, (_, i) =>
    Object.fromEntries(columns.map(([k, v]) => [k, (v as unknown[])[i]])),
  );
}

/**
 * Rows compared and rows agreed between a primary's reply and a shadow's. Rows are compared by their prediction
 * as the feedback join reads it (`predictionsOf`: a classifier's `label`, a single output, OIP's `label`
 * output), so agreement and live accuracy speak of the same thing; replies without one prediction per row are
 * compared row by row whole. Every row of the primary's reply is compared (a row the shadow's reply lacks
 * disagrees); undefined when either reply has no prediction rows.
 */
export function agreement(
  primary: Uint8Array | string,
  shadow: Uint8Array | string,
): { compared: number; agreed: number } | undefined {
  const text = (body: Uint8Array | string) => (typeof body === "string" ? body : utf8.decode(body));
  const [p, s] = [text(primary), text(shadow)];
  const labels = [predictionsOf(p), predictionsOf(s)];
  const [a, b] = labels[0] && labels[1] ? labels : [predictionRows(p), predictionRows(s)];
  if (!a || !b) return undefined;
  let agreed = 0;
  for (let i = 0; i < a.length; i++) if (i < b.length && sameValue(a[i], b[i])) agreed++;
  return { compared: a.length, agreed };
}
