// @switchyard/runtime: one registered model version, loaded and run — artifacts fetched and verified, a Piscina
// pool of worker threads each holding the model (ONNX sessions or a custom model's class), one thread hop per
// batch, or for cheap ONNX models a run on the calling thread. Replicas, batch workers, stream scorers and
// in-process scripts all run models through this; it knows nothing about NATS requests.
export { type ChildProcessSpec, isLoadFailure, type LaunchBase, runChild } from "./child.js";
export { type FlavorLoader, type LoadedModel, ModelLoadError } from "./flavors/mod.js";
export { preloadOnnxRuntime } from "./flavors/preload.js";
export { epochMs, StartupMarks } from "./marks.js";
export { BatchPlacement, type BatchSite, PLACEMENT_DEFAULTS, type PlacementOptions } from "./placement.js";
export {
  type BatchSites,
  ModelRunner,
  type ModelRunnerOptions,
  type RunOptions,
  type SiteChange,
  type TimedOutputs,
  WORKER_FILE,
  warmUpFeeds,
} from "./runner.js";
export type { RunResult, RunTask, WorkerData, WorkerInit, WorkerStartup } from "./task.js";
export { WarmPool } from "./warm-pool.js";
