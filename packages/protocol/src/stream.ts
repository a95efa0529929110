// Streaming jobs as they are kept in KV `<cluster>_jobs`: what a user creates (the same fields over the CLI,
// HTTP and the SDK), the job record, its scorers' reports, and the status the management API returns. Keys are
// built here, nowhere else.
import { z } from "zod";
import { TableFormat } from "./batch.js";
import { FeatureSpec } from "./features.js";

/**
 * One config for every stream job. A scorer holding a message this long without acking it loses it to
 * redelivery; the sink's duplicate window must outlast that redelivery, so it is a multiple of it (see
 * `requiredDuplicateWindowMs`).
 */
export const STREAM_DEFAULTS = {
  batch: 256,
  max_wait_ms: 50,
  parallelism: 1,
  ack_wait_ms: 30_000,
  /** Messages a job's scorers may hold unacked at once (a windowed job holds a checkpoint's worth). */
  max_ack_pending: 20_000,
  /** How often a windowed job or a directory sink commits (state or part file, then the acks). */
  commit_ms: 1_000,
  /** A landing file is read once its size and mtime have not changed for this long. */
  quiet_ms: 2_000,
} as const;

/**
 * The duplicate window a sink stream needs: a result published just before its scorer died is published again
 * when its input is redelivered, at most ack_wait later, plus the time to get to it again. Four ack waits leaves
 * the job three ack waits (90 s by default) of downtime — every scorer, or NATS itself — during which a
 * republished result is still recognized.
 */
export const requiredDuplicateWindowMs = (ackWaitMs: number) => 4 * ackWaitMs;

export const STREAM_STATES = ["RUNNING", "STOPPED"] as const;
export type StreamState = (typeof STREAM_STATES)[number];
export const DELIVERY = ["exactly-once", "at-least-once"] as const;
export type Delivery = (typeof DELIVERY)[number];
export const SINK_FORMATS = ["parquet", "jsonl"] as const;

/** A stream job's name: one subject token, one KV key segment, part of a consumer name. */
export const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const fieldList = z.array(z.string().min(1)).min(1);

/** What a user creates: `switchyard stream create`, `POST /api/2.0/switchyard/streams`, `streams.create()`. */
export const StreamJobRequest = z
  .object({
    name: z.string().regex(STREAM_NAME, "expected 1-64 letters, digits, '_' or '-'"),
    /** `models:/<name>/<version>` or `models:/<name>@<alias>` (followed: the job switches when it moves). */
    model: z.string().min(1).optional(),
    /** A serving endpoint: events are scored through the realtime path, traffic split and all. */
    endpoint: z.string().min(1).optional(),
    source_stream: z.string().min(1).optional(),
    source_subject: z.string().min(1).optional(),
    start: z.enum(["earliest", "new"]).optional(),
    /** A landing directory (under the cluster's data roots): files are read once each, rows in file order. */
    source_dir: z.string().min(1).optional(),
    format: TableFormat.optional(),
    sink_subject: z.string().min(1).optional(),
    sink_dir: z.string().min(1).optional(),
    sink_format: z.enum(SINK_FORMATS).optional(),
    /** Field(s) copied into each result; with windows, the key the windows are kept per. */
    key: fieldList.optional(),
    event_time: z.string().min(1).optional(),
    /** The model's input fields in order, for a model with one unnamed 2-D input. */
    columns: fieldList.optional(),
    features: FeatureSpec.optional(),
    batch: z.number().int().positive().max(10_000).default(STREAM_DEFAULTS.batch),
    max_wait_ms: z.number().int().positive().max(60_000).default(STREAM_DEFAULTS.max_wait_ms),
    parallelism: z.number().int().positive().max(64).default(STREAM_DEFAULTS.parallelism),
    delivery: z.enum(DELIVERY).default("exactly-once"),
  })
  .strict()
  .superRefine((r, ctx) => {
    const oneOf = (fields: Array<keyof typeof r>, what: string) => {
      const given = fields.filter((f) => r[f] !== undefined);
      if (given.length !== 1) {
        ctx.addIssue({
          code: "custom",
          path: [fields[0] as string],
          message: `expected exactly one of ${fields.join(", ")} (${what}), got ${given.length ? given.join(" and ") : "none"}`,
        });
      }
    };
    oneOf(["model", "endpoint"], "what scores the events");
    oneOf(["source_stream", "source_dir"], "where the events come from");
    oneOf(["sink_subject", "sink_dir"], "where the results go");
    const only = (field: keyof typeof r, needs: keyof typeof r) => {
      if (r[field] !== undefined && r[needs] === undefined) {
        ctx.addIssue({ code: "custom", path: [field as string], message: `only applies with ${needs}` });
      }
    };
    only("source_subject", "source_stream");
    only("start", "source_stream");
    only("format", "source_dir");
    only("sink_format", "sink_dir");
    if (r.sink_subject !== undefined && !/^[^\s*>]+$/.test(r.sink_subject)) {
      ctx.addIssue({
        code: "custom",
        path: ["sink_subject"],
        message: "expected a subject without wildcards or spaces",
      });
    }
    const f = r.features;
    if (f) {
      if (r.key && (r.key.length !== 1 || r.key[0] !== f.key)) {
        ctx.addIssue({ code: "custom", path: ["key"], message: `the features spec keys by "${f.key}"` });
      }
      if (r.event_time !== undefined && r.event_time !== f.event_time) {
        ctx.addIssue({
          code: "custom",
          path: ["event_time"],
          message: `the features spec reads event time from "${f.event_time}"`,
        });
      }
      // Keyed window state needs every event of a key at one scorer: a windowed job runs one.
      if (f.windows.length > 0 && r.parallelism !== 1) {
        ctx.addIssue({
          code: "custom",
          path: ["parallelism"],
          message: "a job with windows runs one scorer (its keyed state is in one place); expected 1",
        });
      }
    }
  });
export type StreamJobRequest = z.input<typeof StreamJobRequest>;
export type StreamJobSpec = z.output<typeof StreamJobRequest>;

/** The job record (key `stream.<name>`): the request, where it reads and writes, and its state. */
export const StreamJob = z
  .object({
    name: z.string(),
    kind: z.literal("stream"),
    request: z.object({}).passthrough(),
    /** The JetStream stream and durable consumer the scorers share (a landing directory's own stream). */
    source: z.object({ stream: z.string(), subject: z.string(), consumer: z.string() }).strict(),
    /** Subject sink: the stream capturing `subject`, `.dlq` and `.late`. Directory sink: dir and format. */
    sink: z.union([
      z.object({ kind: z.literal("subject"), subject: z.string(), stream: z.string() }).strict(),
      z.object({ kind: z.literal("dir"), dir: z.string(), format: z.enum(SINK_FORMATS) }).strict(),
    ]),
    ack_wait_ms: z.number().int().positive(),
    state: z.enum(STREAM_STATES),
    message: z.string().default(""),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .strict();
export type StreamJob = z.infer<typeof StreamJob>;

/** A latency histogram: counts per bucket of `LATENCY_BOUNDS_MS` (the last bucket is everything above). */
export const LATENCY_BOUNDS_MS = [
  1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000, 3_000, 5_000,
  10_000, 30_000, 60_000,
] as const;

/** What each scorer reports about once a second (key `stream.<name>.scorer.<worker>`). */
export const ScorerReport = z
  .object({
    worker_id: z.string(),
    job: z.string(),
    /** Results published since the scorer started (results, late and dead-lettered). */
    events: z.number().int().nonnegative(),
    /** Over the last ten seconds. */
    events_per_s: z.number().nonnegative(),
    /** End to end (source publish → result published), over the last minute; LATENCY_BOUNDS_MS buckets. */
    latency_counts: z.array(z.number().int().nonnegative()),
    model: z.object({ name: z.string(), version: z.number().int().positive() }).strict().nullable(),
    updated_at: z.number().int(),
  })
  .strict();
export type ScorerReport = z.infer<typeof ScorerReport>;

/** A job as the management API returns it: the record plus what its consumer and scorers say now. */
export interface StreamJobView extends StreamJob {
  status: {
    /** Messages the job has not acked yet: not delivered, plus delivered and unacked. */
    lag: number;
    events_per_s: number;
    latency_ms: { p50: number | null; p99: number | null };
    /** Results, dead-lettered and late events written so far (read from the sink). */
    results: number;
    dlq: number;
    late: number;
    delivery: Delivery;
    /** The model version the scorers use now (null before any reports, and for endpoint jobs). */
    model: { name: string; version: number } | null;
    scorers: Array<{ worker_id: string; node_id: string; state: string; message: string }>;
  };
}

export const streamKeys = {
  job: (name: string) => `stream.${name}`,
  allJobs: "stream.*",
  scorer: (name: string, workerId: string) => `stream.${name}.scorer.${workerId}`,
  scorersOf: (name: string) => `stream.${name}.scorer.*`,
  /** The window state of a windowed job, with the sequences it reflects. */
  windows: (name: string) => `stream.${name}.windows`,
  /** A directory sink's ledger: committed sequences, part count and counts. */
  sinkLedger: (name: string) => `stream.${name}.sink`,
  /** A landing directory's ledger: one entry per file (by content digest). */
  file: (name: string, digest: string) => `stream.${name}.file.${digest}`,
  filesOf: (name: string) => `stream.${name}.file.*`,
  /** Everything of one job (deleted with it). */
  everything: (name: string) => `stream.${name}.>`,
} as const;

/** Headers a landing-directory event carries on the job's own source stream. */
export const LANDING_HEADERS = { file: "Sy-File", digest: "Sy-File-Digest", row: "Sy-Row" } as const;
