// Staged canaries: an endpoint's `rollout` section (champion and challenger, the stages of the challenger's
// traffic, how long each stage holds, the guards it must pass) and the canary state kept so a new leader
// continues from the stored stage. Named `canary` because the coordinator's "rollout" already means a config
// rollout (generations replacing generations); the endpoint field stays `rollout`, as users write it.
import { z } from "zod";
import type { AutoCaptureConfig } from "./capture.js";
import { Duration } from "./duration.js";
import { isResourceName } from "./names.js";
import { type ConfigProblem, zodProblems } from "./problems.js";

/** Every default of a canary in one place (durations in ms). */
export const CANARY_DEFAULTS = {
  stages: [5, 20, 50, 100],
  holdMs: 5 * 60_000,
  /** Below this many challenger requests in a stage nothing is decided: a few errors are noise, not a verdict. */
  minRequests: 100,
  maxRetryableErrorRate: 0.05,
  maxNonRetryableErrorRate: 0.01,
  maxLatencyRatio: 1.2,
  minLabels: 100,
} as const;

const ServedName = z.string().refine(isResourceName, {
  message: "expected the name of a served model of this endpoint ([A-Za-z0-9_-]{1,63})",
});
const Rate = z.number().min(0).max(1);

export const CanaryHold = z
  .object({
    /** A stage lasts at least this long (0: as soon as it saw min_requests). */
    duration: Duration.default(CANARY_DEFAULTS.holdMs),
    /** …and saw at least this many challenger requests; fewer hold the stage whatever the clock says. */
    min_requests: z.number().int().min(1).default(CANARY_DEFAULTS.minRequests),
  })
  .strict();

export const CanaryGuards = z
  .object({
    /**
     * The challenger's errors over its requests in the stage, by the catalog's retryable flag: overload and
     * deadlines (retryable) are counted apart from failures that retrying cannot cure.
     */
    max_error_rate: z
      .object({
        retryable: Rate.default(CANARY_DEFAULTS.maxRetryableErrorRate),
        non_retryable: Rate.default(CANARY_DEFAULTS.maxNonRetryableErrorRate),
      })
      .strict()
      .prefault({}),
    /** The challenger's p95 and p99 latency over the champion's (1.2: at most 20 % slower). */
    max_latency_ratio: z
      .object({
        p95: z.number().positive().default(CANARY_DEFAULTS.maxLatencyRatio),
        p99: z.number().positive().default(CANARY_DEFAULTS.maxLatencyRatio),
      })
      .strict()
      .prefault({}),
    /**
     * The challenger's accuracy over the champion's on labelled requests (0.98: at most 2 % less accurate),
     * judged once each has `min_labels` labelled rows (a label per row of a request); until then the stage holds.
     * Accuracy is the share of rows whose prediction equals the label: a guard for classifiers (a regressor's
     * exact matches are ~0 for both, which reads as a ratio of 1 — it never fails).
     */
    min_accuracy: z
      .object({
        ratio: z.number().positive().max(1),
        min_labels: z.number().int().min(1).default(CANARY_DEFAULTS.minLabels),
      })
      .strict()
      .optional(),
  })
  .strict();

/** An endpoint's `rollout` section, defaults filled in. */
export const CanaryRollout = z
  .object({
    /** Served model names of the endpoint: the one serving now and the one that may replace it. */
    champion: ServedName,
    challenger: ServedName,
    /** The challenger's traffic percentage at each stage, increasing, ending at 100. */
    stages: z
      .array(z.number().int().min(1).max(100))
      .min(2)
      .default([...CANARY_DEFAULTS.stages]),
    hold: CanaryHold.prefault({}),
    guards: CanaryGuards.prefault({}),
    /** On promotion move the registry alias `@champion` to the challenger's version and remove `@challenger`. */
    promote_alias: z.boolean().default(false),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.champion === r.challenger) {
      ctx.addIssue({
        code: "custom",
        path: ["challenger"],
        message: `must differ from champion ('${r.champion}')`,
      });
    }
    r.stages.forEach((p, i) => {
      if (i > 0 && p <= r.stages[i - 1]!) {
        ctx.addIssue({
          code: "custom",
          path: ["stages", i],
          message: `stages must increase: ${p} follows ${r.stages[i - 1]}`,
        });
      }
    });
    if (r.stages[r.stages.length - 1] !== 100) {
      ctx.addIssue({
        code: "custom",
        path: ["stages", r.stages.length - 1],
        message: `the last stage must be 100 (the challenger takes all traffic before promotion), got ${r.stages[r.stages.length - 1]}`,
      });
    }
  });
export type CanaryRollout = z.infer<typeof CanaryRollout>;
export type CanaryRolloutInput = z.input<typeof CanaryRollout>;

/** A `rollout` section checked, or every problem it has, each naming its field under `prefix`. */
export function parseCanaryRollout(
  input: unknown,
  prefix = "rollout",
): { rollout: CanaryRollout; problems: [] } | { rollout: undefined; problems: ConfigProblem[] } {
  const parsed = CanaryRollout.safeParse(input);
  return parsed.success
    ? { rollout: parsed.data, problems: [] }
    : { rollout: undefined, problems: zodProblems(parsed.error, prefix) };
}

/**
 * What a `rollout` section must agree with in its endpoint's config: champion and challenger are served models
 * of it, and an accuracy guard needs the inference table on (labels join the predictions it captures). Fields
 * are named under `prefix` (the section's own path: `config.rollout`, or "" for `rollout start`'s body).
 */
export function canaryConfigProblems(
  rollout: Pick<CanaryRollout, "champion" | "challenger" | "guards">,
  capture: Pick<AutoCaptureConfig, "enabled"> | undefined,
  served: ReadonlySet<string>,
  prefix = "config.rollout",
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = [...served].map((n) => `'${n}'`).join(", ");
  const field = (...path: string[]) => [prefix, ...path].filter(Boolean).join(".");
  for (const role of ["champion", "challenger"] as const) {
    if (!served.has(rollout[role])) {
      problems.push({
        field: field(role),
        message: `'${rollout[role]}' is not a served model of this endpoint (served models: ${names || "none"})`,
      });
    }
  }
  if (rollout.guards.min_accuracy && !capture?.enabled) {
    problems.push({
      field: field("guards", "min_accuracy"),
      message:
        "needs the inference table: enable auto_capture_config (labels are joined to the predictions it captures)",
    });
  }
  return problems;
}

export const CANARY_GUARDS = [
  "retryable_error_rate",
  "non_retryable_error_rate",
  "p95_latency_ratio",
  "p99_latency_ratio",
  "accuracy_ratio",
] as const;
export type CanaryGuardName = (typeof CANARY_GUARDS)[number];

/** One guard read over a stage: its value against its limit, or why it has no value yet. */
export const CanaryGuardReading = z
  .object({
    guard: z.enum(CANARY_GUARDS),
    /** `waiting`: too little traffic or too few labels to judge. */
    state: z.enum(["ok", "failed", "waiting"]),
    value: z.number().nullable(),
    limit: z.number(),
    /** What the value was read from, for people: `12 of 100 labels`, `champion baseline of stage 3 (50%)`. */
    note: z.string(),
  })
  .strict();
export type CanaryGuardReading = z.infer<typeof CanaryGuardReading>;

/** The champion's numbers from the last stage where it had enough traffic, for stages where it has none. */
export const CanaryBaseline = z
  .object({
    stage: z.number().int().nonnegative(),
    p95_ms: z.number().nonnegative().optional(),
    p99_ms: z.number().nonnegative().optional(),
    accuracy: z.number().min(0).max(1).optional(),
  })
  .strict();
export type CanaryBaseline = z.infer<typeof CanaryBaseline>;

export const CANARY_EVENTS = [
  "started",
  "advanced",
  "promoted",
  "rolled_back",
  "paused",
  "resumed",
  "aborted",
] as const;

export const CanaryEvent = z
  .object({
    at: z.number().int(),
    event: z.enum(CANARY_EVENTS),
    /** The stage it happened at (for `advanced`, the stage left) and its challenger percentage. */
    stage: z.number().int().nonnegative(),
    percent: z.number().int().min(0).max(100),
    message: z.string(),
    guards: z.array(CanaryGuardReading).default([]),
  })
  .strict();
export type CanaryEvent = z.infer<typeof CanaryEvent>;

/** Events kept per canary: every stage's fit with room to spare. */
export const CANARY_HISTORY = 50;

export const CANARY_PHASES = ["running", "paused", "promoted", "rolled_back", "aborted"] as const;

/** A canary's stored state: all a leader that takes over needs to continue from the same stage. */
export const CanaryState = z
  .object({
    phase: z.enum(CANARY_PHASES),
    /** Index into the rollout's stages. */
    stage: z.number().int().nonnegative(),
    stage_started_at: z.number().int(),
    started_at: z.number().int(),
    baseline: CanaryBaseline.nullable(),
    /** Oldest first, the last CANARY_HISTORY. */
    history: z.array(CanaryEvent),
    /**
     * A promotion with `promote_alias` whose registry and config changes are not all done yet: stored with the
     * promotion, before any of them, so whoever leads finishes it (each step is idempotent) and removes it.
     */
    alias_move: z.object({ model: z.string(), version: z.number().int().positive() }).strict().optional(),
  })
  .strict();
export type CanaryState = z.infer<typeof CanaryState>;

/** What the leader last read of the current stage, kept with the canary so any coordinator can answer status. */
export const CanaryReadings = z
  .object({
    at: z.number().int(),
    /** The stage these readings are of (`stage_started_at` identifies it). */
    stage_started_at: z.number().int(),
    /** Where the counted traffic begins: the stage's start, or when this leader first saw the stage. */
    observed_since: z.number().int(),
    requests: z.object({ champion: z.number().int(), challenger: z.number().int() }).strict(),
    guards: z.array(CanaryGuardReading),
    /** The last hold's reason, for people (`stage 1 of 4 (5%) holds for traffic: …`). */
    message: z.string(),
  })
  .strict();
export type CanaryReadings = z.infer<typeof CanaryReadings>;

/** KV `<c>_cluster` key `canary.<endpoint>`: the rollout frozen when the canary started, its state, readings. */
export const StoredCanary = z
  .object({
    spec: CanaryRollout,
    state: CanaryState,
    readings: CanaryReadings.nullable().default(null),
  })
  .strict();
export type StoredCanary = z.infer<typeof StoredCanary>;

/** A canary's phase while it holds the endpoint's routes: config updates wait until it ends or is aborted. */
export const canaryActive = (phase: CanaryState["phase"]) => phase === "running" || phase === "paused";

/** The body of `rollout status` (and `GET .../rollout`). */
export interface CanaryView {
  endpoint: string;
  champion: string;
  challenger: string;
  phase: CanaryState["phase"];
  /** Index into `stages`, and the challenger's percentage there. */
  stage: number;
  stages: number[];
  percent: number;
  started_at: number;
  stage_started_at: number;
  hold: { elapsed_ms: number; duration_ms: number; requests: number; min_requests: number };
  guards: CanaryGuardReading[];
  /** Why the stage holds now, or how the canary ended. */
  message: string;
  /** When the readings were taken (null: the leader has not observed this stage yet). */
  observed_at: number | null;
  observed_since: number | null;
  promote_alias: boolean;
  history: CanaryEvent[];
}
