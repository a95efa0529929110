// Durations as people write them, in one place: window sizes and lookback (`500ms`, `30s`, `5m`, `1h`, `1d`)
// and settings such as the autoscaler's, which also take fractions and plain milliseconds.
import { z } from "zod";

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const whole = /^(\d+)(ms|s|m|h|d)$/;
const fractional = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

const toMs = (m: RegExpExecArray) => Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];

/** "500ms", "30s", "5m", "1h", "1d" → milliseconds; undefined for anything else. */
export function parseDurationMs(text: string): number | undefined {
  const m = whole.exec(text);
  return m ? toMs(m) : undefined;
}

/**
 * A setting's duration — `500ms`, `30s`, `1.5m`, `2h` — or a number of milliseconds (number or digits), in ms;
 * undefined when it is neither.
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  const m = fractional.exec(text);
  if (m) return Math.round(toMs(m));
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** A duration field: `30s`, `30m`, `2h`, `500ms` or milliseconds; parsed to ms. */
export const Duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `expected a duration such as 30s, 30m, 2h, 500ms or a number of milliseconds, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return ms;
});
