// Inference tables (Databricks' `auto_capture_config`): the config an endpoint carries, what routers learn of it
// with the live routes, the capture stream's limits, and the record one captured request becomes. No I/O here;
// the capture observer lives in @switchyard/client, the stream is created by the coordinator.
import { z } from "zod";
import type { ClusterNames } from "./cluster.js";
import { invalid } from "./errors.js";

/** A Unity Catalog name part: the table name `<catalog>.<schema>.<prefix>_payload` must stay three parts. */
const UC_NAME = /^[A-Za-z0-9_-]{1,255}$/;
const ucName = (what: string) =>
  z
    .string({ error: `expected a ${what} (a string)` })
    .regex(UC_NAME, { error: `expected a ${what} of letters, digits, '_' or '-' (no dots)` });

/**
 * `auto_capture_config` as users send it: Databricks' fields (`enabled` defaults to true, `table_name_prefix`
 * to the endpoint's name) plus our `sampling_rate`, the fraction of requests captured (default 1: all).
 */
export const AutoCaptureConfig = z
  .object({
    enabled: z.boolean({ error: "expected true or false" }).default(true),
    catalog_name: ucName("catalog name").optional(),
    schema_name: ucName("schema name").optional(),
    table_name_prefix: ucName("table name prefix").optional(),
    sampling_rate: z
      .number({ error: "expected a number from 0 to 1" })
      .min(0, { error: "expected a number from 0 to 1" })
      .max(1, { error: "expected a number from 0 to 1" })
      .default(1),
  })
  .strict()
  .superRefine((c, ctx) => {
    // As Databricks: an enabled inference table names its catalog and schema.
    if (!c.enabled) return;
    for (const field of ["catalog_name", "schema_name"] as const) {
      if (c[field] === undefined) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: "required when the inference table is enabled",
        });
      }
    }
  });
export type AutoCaptureConfig = z.output<typeof AutoCaptureConfig>;
export type AutoCaptureConfigInput = z.input<typeof AutoCaptureConfig>;

/** `<catalog>.<schema>.<prefix>_payload`, the prefix defaulting to the endpoint's name (as Databricks names it). */
export function payloadTableName(endpoint: string, c: AutoCaptureConfig): string {
  return `${c.catalog_name ?? ""}.${c.schema_name ?? ""}.${c.table_name_prefix ?? endpoint}_payload`;
}

/**
 * The capture an update leaves: the one it gives, or the current one when it gives none (as Databricks keeps an
 * inference table until it is disabled). As Databricks, an enabled table is not renamed: disable it first.
 */
export function updatedAutoCapture(
  endpoint: string,
  current: AutoCaptureConfig | undefined,
  given: AutoCaptureConfig | undefined,
): AutoCaptureConfig | undefined {
  if (!given) return current;
  const [from, to] = current ? [payloadTableName(endpoint, current), payloadTableName(endpoint, given)] : [];
  if (current?.enabled && given.enabled && from !== to) {
    throw invalid(
      `config.auto_capture_config: the inference table '${from}' is enabled and cannot become '${to}'; ` +
        "disable it first (enabled: false), then enable the new name",
    );
  }
  return given;
}

/** Databricks' output shape: the config with defaults filled in, and `state.payload_table`. */
export function autoCaptureView(endpoint: string, c: AutoCaptureConfig): Record<string, unknown> {
  return {
    ...(c.catalog_name !== undefined ? { catalog_name: c.catalog_name } : {}),
    ...(c.schema_name !== undefined ? { schema_name: c.schema_name } : {}),
    table_name_prefix: c.table_name_prefix ?? endpoint,
    enabled: c.enabled,
    sampling_rate: c.sampling_rate,
    state: {
      payload_table: {
        name: payloadTableName(endpoint, c),
        status: c.enabled ? "ACTIVE" : "DISABLED",
        status_message: c.enabled
          ? `capturing ${+(c.sampling_rate * 100).toFixed(4)}% of requests; read them with ` +
            `'switchyard capture export ${endpoint} --output <file.parquet|file.jsonl>'`
          : "inference table disabled",
      },
    },
  };
}

/**
 * What routers learn with an endpoint's live routes: where its captures go (`<subject_prefix>.<ridToken>`, one
 * subject per request) and which share of requests.
 */
export const RoutesCapture = z.preprocess(
  // Routes stored before one subject per request name the endpoint's one subject: the same string as the prefix.
  (v) => {
    if (v === null || typeof v !== "object" || !("subject" in v) || "subject_prefix" in v) return v;
    const { subject, ...rest } = v as { subject: unknown };
    return { ...rest, subject_prefix: subject };
  },
  z.object({ subject_prefix: z.string(), sampling_rate: z.number().min(0).max(1) }).strict(),
);
export type RoutesCapture = z.infer<typeof RoutesCapture>;

/** The capture a config asks routers for; undefined when it captures nothing (absent or disabled). */
export function routesCaptureOf(
  names: ClusterNames,
  endpoint: string,
  c: AutoCaptureConfig | undefined,
): RoutesCapture | undefined {
  if (!c?.enabled) return undefined;
  return { subject_prefix: names.subjects.capturePrefix(endpoint), sampling_rate: c.sampling_rate };
}

/**
 * The capture stream `<C>_CAPTURE` (subjects `<c>.capture.>`), created by the coordinator when missing and never
 * changed afterwards, so limits an operator sets (`nats stream edit`) stay. File storage; limited by age and by
 * bytes, discarding the oldest captures: a full stream never refuses a new one.
 */
export const CAPTURE_STREAM_LIMITS = {
  /** Captures older than this are removed (7 days). */
  maxAgeMs: 7 * 86_400_000,
  /** Past this many bytes the oldest captures are removed (1 GiB). */
  maxBytes: 1024 ** 3,
} as const;

/**
 * One captured request, as published (JSON) on `<c>.capture.<endpoint>.<ridToken>` and exported, one row each. Column names
 * follow Databricks' payload table where they fit (`request_id` is its `databricks_request_id`; the
 * `request_metadata` map is flattened into `endpoint_name`, `served_model_name`, `model_name`, `model_version`).
 * Every value is a scalar or a string, so an export is a batch input as it is.
 */
export const CaptureRecord = z
  .object({
    /** The request's id (`x-request-id`, the client's own when it sent one). */
    request_id: z.string(),
    /** The `client_request_id` field of a JSON request body, as Databricks reads it; null without one. */
    client_request_id: z.string().nullable(),
    /** UTC day of `timestamp_ms`, `YYYY-MM-DD`. */
    date: z.string(),
    /** When the router received the request, epoch ms. */
    timestamp_ms: z.number().int(),
    /** The HTTP status the client got: 200, or the one the error code maps to. */
    status_code: z.number().int(),
    /** The catalog error code of a failed request; null on success. */
    error_code: z.string().nullable(),
    /** The endpoint's sampling rate when the request was captured. */
    sampling_fraction: z.number(),
    /** From receiving the request to its reply, in ms (µs precision). */
    execution_time_ms: z.number(),
    /** The request body as text (JSON or CSV; msgpack bodies as JSON); null when too large to capture. */
    request: z.string().nullable(),
    /** The reply body as text (an error's `{"error_code","message"}` too); null when too large or none. */
    response: z.string().nullable(),
    endpoint_name: z.string(),
    /** Null when the request failed before a served model was chosen. */
    served_model_name: z.string().nullable(),
    model_name: z.string().nullable(),
    model_version: z.number().int().nullable(),
    /**
     * Whether this is a shadow served model's reply to a mirror of the request (on the primary's subject plus
     * `.<served>`), not the reply the caller got. Records stored before shadows were captured read as false.
     */
    shadow: z.boolean().default(false),
  })
  .strict();
export type CaptureRecord = z.infer<typeof CaptureRecord>;

/** The export's columns, in order, with the types a Parquet export gives them. */
export const CAPTURE_COLUMNS: ReadonlyArray<{ name: keyof CaptureRecord; type: string }> = [
  { name: "request_id", type: "VARCHAR" },
  { name: "client_request_id", type: "VARCHAR" },
  { name: "date", type: "DATE" },
  { name: "timestamp_ms", type: "BIGINT" },
  { name: "status_code", type: "INTEGER" },
  { name: "error_code", type: "VARCHAR" },
  { name: "sampling_fraction", type: "DOUBLE" },
  { name: "execution_time_ms", type: "DOUBLE" },
  { name: "request", type: "VARCHAR" },
  { name: "response", type: "VARCHAR" },
  { name: "endpoint_name", type: "VARCHAR" },
  { name: "served_model_name", type: "VARCHAR" },
  { name: "model_name", type: "VARCHAR" },
  { name: "model_version", type: "BIGINT" },
  { name: "shadow", type: "BOOLEAN" },
];
