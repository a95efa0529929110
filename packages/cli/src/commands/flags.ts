// Flag values every job command reads the same way: numbers checked here (naming the flag), lists split on commas.
import { invalid, parseDuration } from "@switchyard/protocol";

/** A positive integer flag; undefined when not given. */
export function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw invalid(`${flag}: expected a positive integer, got '${value}'`);
  return n;
}

/** `a, b,c` → `["a", "b", "c"]`. */
export function commaList(value: string): string[] {
  return value.split(",").map((c) => c.trim());
}

/** A duration flag (`30s`, `30m`, `2h`, `500ms` or milliseconds), in ms. */
export function durationFlag(value: string, flag: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw invalid(`${flag}: expected a duration such as 30s, 30m, 2h, 500ms or milliseconds, got '${value}'`);
  }
  return ms;
}
