// Batch jobs as they are kept in KV `<cluster>_jobs` and carried on the `<CLUSTER>_BATCH` work queue: what a user
// submits (the same fields over the CLI, HTTP and the SDK), the plan of shards, each shard's task and result, and
// the schedules that submit jobs on a cron. Keys are built here, nowhere else.
import { z } from "zod";

export const TABLE_FORMATS = ["csv", "jsonl", "parquet"] as const;
export const TableFormat = z.enum(TABLE_FORMATS);
export type TableFormat = z.infer<typeof TableFormat>;

export const ON_ERROR = ["fail", "skip"] as const;

/** What a user submits: `switchyard batch submit`, `POST /api/2.0/switchyard/batch/jobs`, `submitBatch()`. */
export const BatchJobRequest = z
  .object({
    /** `models:/<name>/<version>`, `models:/<name>@<alias>` or `models:/<name>/latest`; resolved once, at submit. */
    model: z.string().min(1),
    /** A file, a directory of files, or a glob, read by the workers (under the cluster's data roots). */
    input: z.string().min(1),
    /** `dir/` (part files + manifest + `_SUCCESS`) or `file.<ext>` (one merged file + `<file>.manifest.json`). */
    output: z.string().min(1),
    input_format: TableFormat.optional(),
    output_format: TableFormat.optional(),
    /** Rows per shard (a Parquet shard is whole row groups up to about this many rows). */
    shard_rows: z.number().int().positive().max(10_000_000).default(100_000),
    on_error: z.enum(ON_ERROR).default("fail"),
    /** The model's feature columns, when the input has others (ids, timestamps). */
    columns: z.array(z.string().min(1)).min(1).optional(),
    /** Worker processes (default: as many as the cluster's thread budget allows, at most one per shard). */
    workers: z.number().int().positive().max(64).optional(),
    /** Run again only the shards a previous job did not finish, with its resolved model version. */
    resume: z.string().optional(),
  })
  .strict();
export type BatchJobRequest = z.input<typeof BatchJobRequest>;

export const JOB_STATES = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_JOB_STATES: ReadonlySet<JobState> = new Set(["SUCCEEDED", "FAILED", "CANCELED"]);

/** One shard of an input: a row range of one file (Parquet: whole row groups). */
export const Shard = z
  .object({
    index: z.number().int().nonnegative(),
    file: z.string(),
    /** First row of the shard within its file, and how many rows it has. */
    first_row: z.number().int().nonnegative(),
    rows: z.number().int().nonnegative(),
    /** Parquet: the row groups `[first, last]` the shard covers. */
    row_groups: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]).optional(),
    /**
     * CSV/JSONL whose rows are one line each: the bytes `[start, end)` of the shard's rows in the file, so a
     * worker reads only them instead of parsing every row before `first_row`.
     */
    bytes: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]).optional(),
  })
  .strict();
export type Shard = z.infer<typeof Shard>;

/** The task published on the work queue for one shard (subject `<c>.batch.task.<job>`). */
export const ShardTask = z
  .object({
    job_id: z.string(),
    shard: Shard,
    /** Where the part file goes: `<output dir or staging dir>/part-NNNNN.<ext>`. */
    part: z.string(),
  })
  .strict();
export type ShardTask = z.infer<typeof ShardTask>;

/** A shard's outcome, written by the worker that did it (key `job.<id>.shard.<index>`). */
export const ShardResult = z
  .object({
    index: z.number().int().nonnegative(),
    state: z.enum(["DONE", "FAILED"]),
    rows: z.number().int().nonnegative(),
    /** Rows sent to `_errors.jsonl` (on_error skip). */
    error_rows: z.number().int().nonnegative().default(0),
    part: z.string(),
    attempts: z.number().int().positive(),
    worker: z.string(),
    started_at: z.number().int(),
    finished_at: z.number().int(),
    /** Time inside the shard, ms: reading, scoring, writing. */
    timings: z.object({ read_ms: z.number(), score_ms: z.number(), write_ms: z.number() }).strict(),
    /** FAILED: the reason, naming the row and column when there is one. */
    error: z.string().optional(),
  })
  .strict();
export type ShardResult = z.infer<typeof ShardResult>;

/** The job record (key `job.<id>`): the request as resolved and planned, and its state. */
export const BatchJob = z
  .object({
    id: z.string(),
    kind: z.literal("batch"),
    request: z.object({}).passthrough(),
    model: z.object({ uri: z.string(), name: z.string(), version: z.number().int().positive() }).strict(),
    inputs: z.array(z.string()),
    input_format: TableFormat,
    output: z.string(),
    output_format: TableFormat,
    /** Whether `output` is one merged file (else a directory of parts). */
    single_file: z.boolean(),
    feature_columns: z.array(z.string()),
    on_error: z.enum(ON_ERROR),
    shards: z.number().int().nonnegative(),
    total_rows: z.number().int().nonnegative(),
    state: z.enum(JOB_STATES),
    message: z.string().default(""),
    /** The schedule that submitted it, if any. */
    schedule: z.string().optional(),
    resumed_from: z.string().optional(),
    created_at: z.number().int(),
    started_at: z.number().int().optional(),
    finished_at: z.number().int().optional(),
  })
  .strict();
export type BatchJob = z.infer<typeof BatchJob>;

/** A cron schedule that submits a batch job each tick (key `schedule.<name>`). */
export const BatchSchedule = z
  .object({
    name: z.string(),
    cron: z.string(),
    /** IANA time zone of the cron expression and of `{date}` (default UTC). */
    tz: z.string().default("UTC"),
    /** The job each tick submits; `{date}` in `input`/`output` becomes the tick's YYYY-MM-DD in `tz`. */
    job: z.object({}).passthrough(),
    created_at: z.number().int(),
    /** The last tick that was handled (fired or recorded as skipped), epoch ms. */
    last_tick: z.number().int().optional(),
    /** The last few runs: tick, and the job it fired or why it was skipped. */
    history: z
      .array(
        z
          .object({ tick: z.number().int(), job_id: z.string().optional(), skipped: z.string().optional() })
          .strict(),
      )
      .default([]),
  })
  .strict();
export type BatchSchedule = z.infer<typeof BatchSchedule>;

export const jobKeys = {
  job: (id: string) => `job.${id}`,
  shard: (id: string, index: number) => `job.${id}.shard.${index}`,
  shardsOf: (id: string) => `job.${id}.shard.*`,
  allJobs: "job.*",
  schedule: (name: string) => `schedule.${name}`,
  allSchedules: "schedule.*",
} as const;
