// The features spec of a stream job (`--features spec.json`): keyed windows over event time and KV lookups.
// Validation only: bad input becomes an error naming the field. The window logic is @switchyard/jobs' stream/windows.ts.

import { z } from "zod";
import { parseDurationMs } from "./duration.js";

function duration(minMs: number) {
  return z.string().transform((text, ctx) => {
    const ms = parseDurationMs(text);
    if (ms === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `expected a duration like 500ms, 30s, 5m, 1h or 1d, got "${text}"`,
      });
      return z.NEVER;
    }
    if (ms < minMs) ctx.addIssue({ code: "custom", message: `must be at least ${minMs}ms, got "${text}"` });
    return ms;
  });
}

export const WINDOW_AGGS = ["count", "sum", "mean", "min", "max"] as const;
export type WindowAgg = (typeof WINDOW_AGGS)[number];

/** One window feature; `size` is in milliseconds once parsed. */
export const WindowSpec = z
  .object({
    name: z.string().min(1),
    type: z.enum(["sliding", "tumbling"]),
    size: duration(1),
    agg: z.enum(WINDOW_AGGS),
    field: z.string().min(1).optional(),
  })
  .strict();
export type WindowSpec = z.output<typeof WindowSpec>;

/** The stream-static join: `fields` read from KV bucket `bucket` by the event's `key` field. */
export const LookupSpec = z
  .object({ bucket: z.string().min(1), key: z.string().min(1), fields: z.array(z.string().min(1)).min(1) })
  .strict();
export type LookupSpec = z.output<typeof LookupSpec>;

/** `allowed_lateness` is in milliseconds once parsed. */
export const FeatureSpec = z
  .object({
    key: z.string().min(1),
    event_time: z.string().min(1),
    allowed_lateness: duration(0),
    windows: z.array(WindowSpec).default([]),
    lookups: z.array(LookupSpec).default([]),
  })
  .strict()
  .superRefine((spec, ctx) => {
    spec.windows.forEach((w, i) => {
      if (w.agg === "count" && w.field !== undefined) {
        ctx.addIssue({ code: "custom", path: ["windows", i, "field"], message: 'not used by agg "count"' });
      } else if (w.agg !== "count" && w.field === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["windows", i, "field"],
          message: `required by agg "${w.agg}"`,
        });
      }
    });
    // Window names and lookup fields all become features the model sees side by side, so one name each.
    const seen = new Set<string>();
    const claim = (name: string, path: (string | number)[]) => {
      if (seen.has(name))
        ctx.addIssue({ code: "custom", path, message: `"${name}" is already a feature name` });
      seen.add(name);
    };
    for (const [i, w] of spec.windows.entries()) claim(w.name, ["windows", i, "name"]);
    for (const [i, l] of spec.lookups.entries()) {
      for (const [j, f] of l.fields.entries()) claim(f, ["lookups", i, "fields", j]);
    }
  });
export type FeatureSpec = z.output<typeof FeatureSpec>;

/** A features spec that does not validate; the message lists every problem as `path: what is wrong`. */
export class FeatureSpecError extends Error {
  override name = "FeatureSpecError";
}

export function parseFeatureSpec(input: unknown): FeatureSpec {
  const parsed = FeatureSpec.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new FeatureSpecError(
    parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "spec"}: ${i.message}`).join("; "),
  );
}
