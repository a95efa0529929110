// Public API of the replica package: the replica actor, its process entry, the model runtime (reused by batch
// workers) and the batching policy with its one default config.
import { fileURLToPath } from "node:url";

export {
  type Admission,
  type BatchClock,
  type BatchConfig,
  Batcher,
  type BatchSink,
  type Pending,
  REPLICA_DEFAULTS,
} from "./batcher.js";
export { type FlavorLoader, type LoadedModel, ModelLoadError } from "./flavors/mod.js";
export { isLoadFailure, QUEUE_GROUP, REAL_CLOCK, Replica, type ReplicaOptions } from "./replica.js";
export {
  ModelRunner,
  type ModelRunnerOptions,
  type TimedOutputs,
  WORKER_FILE,
  warmUpFeeds,
} from "./runtime.js";
export {
  ReplicaStats,
  type ReplicaStatsSnapshot,
  TIME_BUCKETS_US,
  TimeHistogram,
  type TimeSummary,
} from "./stats.js";
export type { RunResult, RunTask, WorkerInit } from "./task.js";
export { type DecodedRequest, decodeRequest, type ReplyFamily } from "./wire.js";

/** Absolute path of the built process entry (`dist/main.js`) the node agent spawns with `node`. */
export const replicaEntry = fileURLToPath(
  import.meta.url.endsWith(".ts")
    ? new URL("../dist/main.js", import.meta.url)
    : new URL("./main.js", import.meta.url),
);
