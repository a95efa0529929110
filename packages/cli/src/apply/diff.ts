// A readable diff of two JSON values: one `path: before → after` line per changed leaf, paths written as in
// the config file (`served_models[0].workload_size`).
import { issuePath } from "@switchyard/protocol";

const show = (v: unknown) => (v === undefined ? "(unset)" : JSON.stringify(v));
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export function diffValues(before: unknown, after: unknown, path: (string | number)[] = []): string[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => diffValues(before[k], after[k], [...path, k]));
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    return before.flatMap((b, i) => diffValues(b, after[i], [...path, i]));
  }
  return sameJson(before, after) ? [] : [`${issuePath(path)}: ${show(before)} → ${show(after)}`];
}

/** Equal as JSON, whatever the order of object keys. */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    isObject(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
  );
}
