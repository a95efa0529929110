// The flavor interface a worker thread loads a model through: one loader per `ModelVersion.flavor`. A flavor
// runs inside a worker thread, one model instance per thread, so it may block that thread but never another.

import type { Frame, Tensor } from "@switchyard/data";
import type { Params } from "@switchyard/formats";
import type { Flavor } from "@switchyard/protocol";
import type { WorkerInit } from "../task.js";

export interface LoadedModel {
  /**
   * Runs one batch: feeds in signature order (ONNX) or a frame (custom); outputs named as the model names them.
   * A thrown SwitchyardError keeps its code and message; anything else becomes INTERNAL_ERROR.
   */
  run(input: Tensor[] | Frame, params: Params): Promise<Tensor[]>;
  close?(): Promise<void>;
  /** False when the model must see one request's rows per call (a custom class's `static batching`). */
  batching?: boolean;
}

export type FlavorLoader = (init: WorkerInit) => Promise<LoadedModel>;

/** Thrown by a loader when the artifact is not a model of its flavor (becomes MALFORMED_MODEL). */
export class ModelLoadError extends Error {
  override name = "ModelLoadError";
}

export type FlavorTable = { readonly [F in Flavor]: () => Promise<FlavorLoader> };
