// Request data → what one loaded model version runs: feeds in signature order (ONNX) or the Frame a custom
// model's `predict` gets. Replicas and in-process scripts both come through here, so a body scores the same.
import type { Frame, Payload, Tensor } from "@switchyard/data";
import { type Signature, SwitchyardError } from "@switchyard/protocol";
import { customModelFrame } from "./columns.js";
import { modelInputs, numericRowsInput } from "./feeds.js";
import { type Params, parseRequestBody } from "./request.js";

/** What fitting data needs to know of a loaded model (a runtime `ModelRunner` is one). */
export interface ModelShape {
  /** ONNX: always set. Custom: from signature.json, or null. */
  readonly signature: Signature | null;
  /** Custom models take a Frame; ONNX models take tensors. */
  readonly frames: boolean;
}

/** One batch for a model: feeds (ONNX) or a Frame (custom models). */
export type ModelBatch = Tensor[] | Frame;

/** A Payload fitted to `model`; data that does not fit → INVALID_PARAMETER_VALUE naming the column or input. */
export function toModelBatch(input: Payload, model: ModelShape): ModelBatch {
  if (model.frames) return customModelFrame(input, model.signature);
  if (!model.signature) throw new SwitchyardError("INTERNAL_ERROR", "the model has no signature");
  return modelInputs(input, model.signature);
}

/**
 * A decoded MLflow JSON body → one batch for `model` and the body's params. Plain numeric rows for a model
 * with one 2-D float input take the fast path (same result, no Frame in between).
 */
export function bodyToModelBatch(body: unknown, model: ModelShape): { batch: ModelBatch; params: Params } {
  const rows = !model.frames && model.signature ? numericRowsInput(body, model.signature) : undefined;
  if (rows) return { batch: rows.feeds, params: rows.params };
  const req = parseRequestBody(body);
  return { batch: toModelBatch(req.input, model), params: req.params };
}
