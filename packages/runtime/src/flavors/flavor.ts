// The flavor interface a worker thread loads a model through: one loader per `ModelVersion.flavor`. A flavor
// runs inside a worker thread, one model instance per thread, so it may block that thread but never another.

import type { Frame, Tensor } from "@switchyard/data";
import type { Params } from "@switchyard/formats";
import type { ErrorCode, Flavor } from "@switchyard/protocol";
// The error catalog alone: the protocol's zod schemas would cost every worker thread's start.
import { SwitchyardError } from "@switchyard/protocol/errors";
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

/**
 * Runs one batch and measures the model's own time, µs. With `sessionStart`, for ONNX sessions: onnxruntime-node
 * runs a session in a setImmediate callback, and an immediate queued just before it marks when that starts, so the
 * time the event loop spends elsewhere in between (other I/O on a replica's thread, the turn of a worker's loop) is
 * not counted as the model's. Without it (custom code, which may await anything), the wall time of the call.
 */
export async function timedRun(
  model: LoadedModel,
  input: Tensor[] | Frame,
  params: Params,
  sessionStart: boolean,
): Promise<{ outputs: Tensor[]; computeUs: number }> {
  let startedMs: number | undefined;
  if (sessionStart) {
    setImmediate(() => {
      startedMs = performance.now();
    });
  }
  const calledMs = performance.now();
  const running = model.run(input, params);
  // The synchronous part of the call (building ORT's tensors) is the model's too.
  const syncMs = performance.now() - calledMs;
  const outputs = await running;
  const endMs = performance.now();
  const ms = sessionStart && startedMs !== undefined ? syncMs + endMs - startedMs : endMs - calledMs;
  return { outputs, computeUs: Math.round(ms * 1000) };
}

/** A failed `LoadedModel.run` as the caller sees it: a SwitchyardError's own code and message, anything else
 * INTERNAL_ERROR with the first line of its message. */
export function runFailure(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof SwitchyardError) return { code: err.code, message: err.message };
  const why = (err as Error)?.message ?? String(err);
  return { code: "INTERNAL_ERROR", message: `inference failed: ${why.split("\n", 1)[0] ?? why}` };
}

export type FlavorTable = { readonly [F in Flavor]: () => Promise<FlavorLoader> };
