// What crosses the thread boundary between a replica (or batch worker) and its Piscina workers: plain
// structured-clone data, typed-array buffers transferred. Errors come back as data, so a rejected task means
// the worker itself failed (crashed or was torn down), which is retryable.

import type { FrameColumn, Tensor } from "@switchyard/data";
import type { Params } from "@switchyard/formats";
import type { ErrorCode, Flavor, Signature } from "@switchyard/protocol";

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
  /** The version's signature (custom models: from signature.json, or null). */
  signature: Signature | null;
}

/** `workerData` of a warm pool's threads (warm-pool.ts): a shared cell the model's WorkerInit is written to later. */
export interface PendingInit {
  pending: SharedArrayBuffer;
}

export type WorkerData = WorkerInit | PendingInit;

/** A Frame as it crosses threads (a Frame's private fields do not survive structured clone). */
export interface FrameData {
  columns: FrameColumn[];
  length: number;
}

/** One batch: tensors (ONNX) or a frame (custom models). `warmUp`: the first task of a thread, answered with its
 * start-up; without feeds or a frame it only waits until the thread has loaded the model. */
export interface RunTask {
  feeds?: Tensor[];
  frame?: FrameData;
  params: Params;
  warmUp?: boolean;
}

/** When a worker thread had imported its modules and when it had loaded the model (epoch ms). */
export interface WorkerStartup {
  importedAt: number;
  loadedAt: number;
}

export type RunResult =
  /** `batching` and `startup` answer a warm-up: whether this model may take rows of several requests in one
   * call, and the thread's start-up. */
  | { ok: true; outputs: Tensor[]; computeUs: number; batching?: boolean; startup?: WorkerStartup }
  | { ok: false; code: ErrorCode; message: string };
