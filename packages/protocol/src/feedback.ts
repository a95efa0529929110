// Feedback labels and live accuracy: the label a caller sends for a request it made, the limits of the feedback
// and outcome streams, the outcome one label becomes once joined to the request's captured prediction, and the
// accuracy summary read by the JSON metrics. No I/O here: the join runs in the coordinator, windows in autoscaler.
import { z } from "zod";
import { invalid } from "./errors.js";

/** One label value: what a model predicts for one row. */
export type LabelValue = number | string | boolean;

const scalarLabel = z.union([z.number(), z.string(), z.boolean()]);
const LABEL_EXPECTED =
  "expected a number, string or boolean, or an array of them (one label per row of the request)";

/**
 * One label as sent (`POST …/feedback`, `switchyard feedback`, or JSON on `<c>.feedback.<endpoint>`): the
 * `x-request-id` of the request it labels, and one label for a one-row request or an array with one per row.
 */
export const FeedbackLabel = z
  .object({
    request_id: z
      .string({ error: "expected a non-empty string (the request's x-request-id)" })
      .min(1, { error: "expected a non-empty string (the request's x-request-id)" }),
    label: z.union([scalarLabel, z.array(scalarLabel).min(1)], { error: LABEL_EXPECTED }),
  })
  .strict();
export type FeedbackLabel = z.infer<typeof FeedbackLabel>;

/** Labels per POST or NATS message at most, so one message stays far below the NATS payload limit. */
export const FEEDBACK_MAX_LABELS = 10_000;

/**
 * The labels of a request body or feedback message: an array of labels, `{"records": [...]}`, or (on NATS) one
 * label object. Every bad entry is reported as `[i].field: message`, all of them at once.
 */
export function parseFeedbackLabels(body: unknown): FeedbackLabel[] {
  let list: unknown = body;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    list = "records" in body ? (body as { records: unknown }).records : [body];
  }
  if (!Array.isArray(list)) {
    throw invalid(
      'expected a JSON array of {"request_id", "label"} objects (or {"records": [...]}), ' +
        `got ${list === null ? "null" : typeof list}`,
    );
  }
  if (list.length > FEEDBACK_MAX_LABELS) {
    throw invalid(`expected at most ${FEEDBACK_MAX_LABELS} labels in one request, got ${list.length}`);
  }
  const problems: string[] = [];
  const labels: FeedbackLabel[] = [];
  list.forEach((entry, i) => {
    const parsed = FeedbackLabel.safeParse(entry);
    if (parsed.success) labels.push(parsed.data);
    else {
      for (const issue of parsed.error.issues) {
        const field = issue.path.map(String).join(".");
        problems.push(`[${i}]${field ? `.${field}` : ""}: ${issue.message}`);
      }
    }
  });
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join("; ");
    throw invalid(
      `invalid labels: ${shown}${problems.length > 20 ? `; and ${problems.length - 20} more` : ""}`,
    );
  }
  return labels;
}

/**
 * The feedback stream `<C>_FEEDBACK` (subjects `<c>.feedback.>`) and the outcome stream `<C>_OUTCOMES`
 * (`<c>.outcome.>`), created by the coordinator when missing and never changed afterwards (operators' limits
 * stay). Limited by age and bytes, oldest dropped first.
 */
export const FEEDBACK_STREAM_LIMITS = {
  /** Labels are joined within seconds; a week lets a stopped cluster catch up. */
  maxAgeMs: 7 * 86_400_000,
  maxBytes: 256 * 1024 ** 2,
} as const;
export const OUTCOME_STREAM_LIMITS = {
  /** Accuracy windows reach back 24 h by request time; outcomes are kept a week for late readers. */
  maxAgeMs: 7 * 86_400_000,
  maxBytes: 256 * 1024 ** 2,
} as const;

/** How the join settles a label. */
export const FEEDBACK_RESULTS = ["joined", "unknown", "duplicate", "invalid"] as const;
export type FeedbackResult = (typeof FEEDBACK_RESULTS)[number];

/**
 * One label's outcome on the outcome stream. `joined`: compared with the captured prediction
 * (`<c>.outcome.<endpoint>.<served>.<ridToken>`, first label of a request only); otherwise on
 * `<c>.outcome.<endpoint>._<result>`: `unknown` (no capture of that request id), `duplicate` (the request was
 * labelled before), `invalid` (the request failed, or its label count differs from its prediction count).
 */
export const OutcomeRecord = z
  .object({
    result: z.enum(FEEDBACK_RESULTS),
    request_id: z.string(),
    endpoint_name: z.string(),
    served_model_name: z.string().nullable(),
    model_name: z.string().nullable(),
    model_version: z.number().int().nullable(),
    /** When the labelled request was received (epoch ms); null when it is unknown. */
    request_ms: z.number().nullable(),
    /** When the label reached the feedback stream (epoch ms). */
    label_ms: z.number(),
    /** The feedback stream sequence of the label: a redelivered label recognises its own outcome. */
    feedback_seq: z.number().int(),
    /** Labelled rows, rows whose prediction equals the label, rows where both are numbers, and their errors. */
    rows: z.number().int(),
    correct: z.number().int(),
    numeric_rows: z.number().int(),
    abs_err_sum: z.number(),
    sq_err_sum: z.number(),
    /** Why an `invalid` label could not be compared. */
    reason: z.string().optional(),
    /**
     * A shadow served model's outcome for the label: scored on its reply to the mirror of the request. It adds to
     * that served model's accuracy, never to the label counts (the label is counted once, by its primary outcome).
     */
    shadow: z.boolean().default(false),
  })
  .strict();
export type OutcomeRecord = z.infer<typeof OutcomeRecord>;

/** Windows of accuracy, by the time of the labelled requests. */
export const ACCURACY_WINDOWS = { "1h": 3_600_000, "24h": 86_400_000 } as const;
export type AccuracyWindowName = keyof typeof ACCURACY_WINDOWS;

export interface AccuracyWindow {
  labelled_requests: number;
  labelled_rows: number;
  /** Exact-match share of labelled rows (0..1); null with no labelled rows. */
  accuracy: number | null;
  /** Over rows where prediction and label are both numbers; null with none. */
  mae: number | null;
  rmse: number | null;
}

export interface ServedAccuracy {
  name: string;
  windows: Record<AccuracyWindowName, AccuracyWindow>;
}

/** Labels of one endpoint settled since the reader started (its outcomes of the last 24 h then, and after). */
export type FeedbackCounts = { received: number } & Record<FeedbackResult, number>;

/** `EndpointMetrics.accuracy`. */
export interface EndpointAccuracy {
  served_models: ServedAccuracy[];
  labels: FeedbackCounts;
}

/**
 * The prediction of each row in a captured reply body: MLflow `{"predictions": [...]}` (a scalar per row; an
 * object row's `label` field, else its single scalar field; the dict form likewise by column) or OIP v2
 * `{"outputs": [...]}` (the output named `label`, else the only one). Undefined when no per-row scalar is found.
 */
export function predictionsOf(response: string): LabelValue[] | undefined {
  let body: unknown;
  try {
    body = JSON.parse(response);
  } catch {
    return undefined;
  }
  if (body === null || typeof body !== "object") return undefined;
  const b = body as { predictions?: unknown; outputs?: unknown };
  if (Array.isArray(b.predictions)) return allScalars(b.predictions.map(rowValue));
  if (b.predictions !== null && typeof b.predictions === "object") {
    const column = pickField(b.predictions as Record<string, unknown>);
    return Array.isArray(column) ? allScalars(column) : undefined;
  }
  if (Array.isArray(b.outputs)) {
    const outputs = b.outputs as Array<{ name?: unknown; data?: unknown; shape?: unknown }>;
    const out = outputs.find((o) => o?.name === "label") ?? (outputs.length === 1 ? outputs[0] : undefined);
    const shape = Array.isArray(out?.shape) ? (out.shape as unknown[]) : [];
    // One value per row: shape [N] or [N, 1].
    if (!Array.isArray(out?.data) || shape.length > 2 || (shape.length === 2 && shape[1] !== 1))
      return undefined;
    return allScalars(out.data as unknown[]);
  }
  return undefined;
}

const isScalar = (v: unknown): v is LabelValue =>
  typeof v === "number" || typeof v === "string" || typeof v === "boolean";

function rowValue(row: unknown): unknown {
  if (Array.isArray(row)) return row.length === 1 ? row[0] : undefined;
  if (row !== null && typeof row === "object") return pickField(row as Record<string, unknown>);
  return row;
}

/** An object's `label` field, else its only scalar field. */
function pickField(o: Record<string, unknown>): unknown {
  if ("label" in o) return o.label;
  const keys = Object.keys(o);
  return keys.length === 1 ? o[keys[0]!] : undefined;
}

function allScalars(values: unknown[]): LabelValue[] | undefined {
  return values.every(isScalar) ? values : undefined;
}

/** Rows compared: exact matches, and absolute and squared errors of rows where both are numbers. */
export interface LabelScore {
  rows: number;
  correct: number;
  numeric_rows: number;
  abs_err_sum: number;
  sq_err_sum: number;
}

/**
 * Scores a label against the predictions of its request: one label per row (a scalar label for a one-row
 * request). Returns why it cannot be compared instead when the counts differ.
 */
export function scoreLabel(
  predictions: readonly LabelValue[],
  label: FeedbackLabel["label"],
): LabelScore | string {
  const labels = Array.isArray(label) ? label : [label];
  if (labels.length !== predictions.length) {
    return `the label has ${labels.length} row(s) and the request ${predictions.length} prediction(s)`;
  }
  const s: LabelScore = { rows: labels.length, correct: 0, numeric_rows: 0, abs_err_sum: 0, sq_err_sum: 0 };
  labels.forEach((l, i) => {
    const p = predictions[i];
    if (p === l) s.correct++;
    if (typeof p === "number" && typeof l === "number") {
      const e = Math.abs(p - l);
      s.numeric_rows++;
      s.abs_err_sum += e;
      s.sq_err_sum += e * e;
    }
  });
  return s;
}
