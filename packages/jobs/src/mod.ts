// @switchyard/jobs: batch workers' and stream scorers' work on tables. Today: the table layer every batch job
// reads and writes through, on DuckDB (`@duckdb/node-api`); no CSV or Parquet codec of our own.
//
// The coordinator, before any shard runs:
//   inspect(inputs, format?, options?) → TableInfo    files (a file, a directory's files, a glob), columns with
//                                                     dtypes, rows per file, Parquet row groups, CSV/JSONL row index
//   planShards(info, shardRows) → Shard[]             pure: row ranges (with byte ranges when indexed), or
//                                                     whole Parquet row groups
// A batch worker, per shard task:
//   scoreShard(job, score, options?) → ShardOutcome   reads only the shard, calls `score(frame)` per batch,
//                                                     writes input columns + predictions to the part by
//                                                     write-then-rename; bad rows fail it or come back (skip)
// The coordinator, for a single-file output:
//   mergeParts(parts, outFile, format, options?)      parts in order into one file, write-then-rename
// Records (stream sink parts, capture exports): JsonlWriter / writeJsonl / writeParquet / jsonlToParquet.
// `switchyard capture export`: exportCapture(options) → an endpoint's captured requests as one JSONL or Parquet
// file, read from the capture stream (ordered consumer), write-then-rename.
//
// Each call opens its own in-memory DuckDB within `options` (threads, default 1; memoryMb, default 256;
// scratchDir) and closes it before returning. Memory is bounded by that limit, one batch, and a constant
// (Node and DuckDB's buffers), whatever the file size.
//
// A stream scorer, per event (pure, no I/O; the scorer supplies the events' times and stream sequences):
//   eventTimeMs(value, field) → epoch ms              ISO-8601 or epoch ms, else PoisonEventError (→ .dlq)
//   new WindowState(spec).apply(event, seq)           window features, or late (→ .late), or replayed;
//     .snapshot() / WindowState.restore(spec, json)   plain JSON with the sequence it reflects
// A stream scorer's source and sink beside NATS:
//   new LandingLoader(options).start() / .stop()     a landing directory's complete files → one message per row
//                                                     on the job's landing subject, each file once (KV ledger)
//   await DirSink.open(options)                       a Sink writing rolling part files, committed with a KV
//                                                     ledger before the inputs are acked (exactly once)

// Batch jobs: the coordinator's file side, the data-root check, and the worker (its process entry is the
// package export `@switchyard/jobs/batch-worker`).
export { batchFiles, featureColumnsOf } from "./batch/files.js";
export { BatchWorker, errorsPathOf } from "./batch/worker.js";
export { type CaptureExport, type CaptureExportOptions, exportCapture } from "./capture/export.js";
export { underDataRoots } from "./paths.js";
// Stream jobs: the features spec, event time, and the keyed window state with its watermark.
export { DirSink, type DirSinkOptions, SinkLedger } from "./stream/dir-sink.js";
export { decodeEvent, type InputPlan, modelInput, planInputs, resultFields, rowOf } from "./stream/events.js";
export { eventTimeMs, PoisonEventError } from "./stream/features.js";
export {
  isIgnoredName,
  LANDING_DEFAULTS,
  LandingFile,
  LandingLoader,
  type LandingLoaderOptions,
} from "./stream/landing.js";
export { type WindowEvent, type WindowOutcome, WindowSnapshot, WindowState } from "./stream/windows.js";
export { ENGINE_DEFAULTS, type EngineOptions } from "./tables/engine.js";
export { formatOfPath } from "./tables/formats.js";
export { inspect, type TableColumn, type TableFile, type TableInfo } from "./tables/inspect.js";
export type { RowIndex } from "./tables/lines.js";
export { mergeParts } from "./tables/parts.js";
export {
  columnsOfRecords,
  JsonlWriter,
  jsonlToParquet,
  type RecordColumn,
  writeJsonl,
  writeParquet,
} from "./tables/records.js";
export {
  type BadRow,
  type Scorer,
  SHARD_DEFAULTS,
  type ShardJob,
  type ShardOutcome,
  scoreShard,
} from "./tables/score-shard.js";
export { planShards } from "./tables/shards.js";
