// Shadow traffic (our extension; Databricks has none): an endpoint's `shadow_config` names served models that
// get a mirrored copy of a share of the requests the split sends to the primary, what routers learn of it with
// the live routes, and what a router reports of its mirrors. No I/O here; the mirroring lives in @switchyard/client.
import { z } from "zod";
import type { ConfigProblem } from "./endpoint.js";
import type { ErrorCode } from "./errors.js";
import type { Percentiles, TimeSummary } from "./stats.js";

/** Mirrors a router keeps outstanding per endpoint when the config does not say. */
export const SHADOW_DEFAULTS = { max_in_flight: 64 } as const;

const percentage = z
  .number({ error: "expected a number from 0 to 100" })
  .min(0, { error: "expected a number from 0 to 100" })
  .max(100, { error: "expected a number from 0 to 100" });

export const ShadowRoute = z
  .object({
    served_model_name: z.string({ error: "expected the name of a served model of this config" }),
    /** Share of the requests routed to the primary that are mirrored to this served model (fractions allowed). */
    mirror_percentage: percentage,
  })
  .strict();
export type ShadowRoute = z.infer<typeof ShadowRoute>;

/** `config.shadow_config` as users send it, the default filled in; GET returns it in this shape. */
export const ShadowConfig = z
  .object({
    routes: z.array(ShadowRoute),
    /** Mirrors outstanding per router and endpoint; beyond it a mirror is dropped (and counted). */
    max_in_flight: z
      .number({ error: "expected a positive integer" })
      .int({ error: "expected a positive integer" })
      .positive({ error: "expected a positive integer" })
      .default(SHADOW_DEFAULTS.max_in_flight),
  })
  .strict();
export type ShadowConfig = z.output<typeof ShadowConfig>;
export type ShadowConfigInput = z.input<typeof ShadowConfig>;

/**
 * What the schema cannot see: each shadow is a served model of this config that takes none of the primary
 * traffic (a 0 % route or none), named once.
 */
export function shadowProblems(
  shadow: ShadowConfig,
  served: readonly string[],
  routes: readonly { served_model_name: string; traffic_percentage: number }[],
  prefix: string,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  shadow.routes.forEach((r, i) => {
    const field = `${prefix}.shadow_config.routes[${i}].served_model_name`;
    const name = r.served_model_name;
    if (!served.includes(name)) {
      problems.push({ field, message: `'${name}' is not the name of a served model of this config` });
      return;
    }
    const pct = routes.find((t) => t.served_model_name === name)?.traffic_percentage ?? 0;
    if (pct !== 0) {
      problems.push({
        field,
        message: `'${name}' takes ${pct}% of the traffic; a shadow takes none (give it traffic_percentage 0)`,
      });
    }
    if (seen.has(name)) problems.push({ field, message: `'${name}' is shadowed twice` });
    seen.add(name);
  });
  return problems;
}

/** What routers learn with an endpoint's live routes: which served models get mirrors, and how many at most. */
export const RoutesShadow = z
  .object({
    routes: z.array(
      z.object({ served_model_name: z.string(), mirror_percentage: z.number().min(0).max(100) }).strict(),
    ),
    max_in_flight: z.number().int().positive(),
  })
  .strict();
export type RoutesShadow = z.infer<typeof RoutesShadow>;

/** The shadow a config asks routers for; undefined when nothing is mirrored (absent, or every route at 0 %). */
export function routesShadowOf(c: ShadowConfig | undefined): RoutesShadow | undefined {
  const routes = (c?.routes ?? []).filter((r) => r.mirror_percentage > 0);
  if (!c || routes.length === 0) return undefined;
  return {
    routes: routes.map((r) => ({
      served_model_name: r.served_model_name,
      mirror_percentage: r.mirror_percentage,
    })),
    max_in_flight: c.max_in_flight,
  };
}

/** Whether routers already mirror as asked (same shadows, percentages and bound, or both off). */
export function sameShadow(a: RoutesShadow | undefined, b: RoutesShadow | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** One router's mirrors to one shadow served model of an endpoint (cumulative, as every router stat). */
export interface ShadowServedStats {
  /** Mirrors sent. */
  mirrored: number;
  /** Mirrors not sent because `max_in_flight` were outstanding. */
  dropped: number;
  /** Mirrors answered with an error (or none), by catalog code. */
  errors: Partial<Record<ErrorCode, number>>;
  /** From sending a mirror to its reply (or error). */
  latency_us: TimeSummary;
  /** Prediction rows compared with the primary's reply (mirrors whose primary succeeded), and those equal. */
  compared: number;
  agreed: number;
}

/** One window of one shadow served model, in the JSON summary. */
export interface ShadowWindow {
  mirrored: number;
  dropped: number;
  errors: Partial<Record<ErrorCode, number>>;
  error_rate: number;
  latency_ms: Percentiles;
  agreement: { compared: number; agreed: number; rate: number };
}

/** `EndpointMetrics.shadow[]`. */
export interface ShadowModelMetrics {
  served_model_name: string;
  windows: Record<"1m" | "5m", ShadowWindow>;
}
