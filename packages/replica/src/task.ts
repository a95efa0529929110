// What crosses the thread boundary between a replica (or batch worker) and its Piscina workers: plain
// structured-clone data, typed-array buffers transferred. Errors come back as data, so a rejected task means
// the worker itself failed (crashed or was torn down), which is retryable.
import type { ErrorCode, Flavor, Params, Tensor } from "@switchyard/protocol";

/** `workerData` of every worker of one model's pool. */
export interface WorkerInit {
  flavor: Flavor;
  modelName: string;
  modelVersion: number;
  /** Directory holding the version's verified artifacts. */
  dir: string;
  /** Absolute path of the entry artifact (the ONNX file, or the custom model's bundle). */
  entry: string;
  /** Artifact path (as registered) → absolute local path. */
  files: Record<string, string>;
}

export interface RunTask {
  feeds: Tensor[];
  params: Params;
}

export type RunResult =
  | { ok: true; outputs: Tensor[]; computeUs: number }
  | { ok: false; code: ErrorCode; message: string };
