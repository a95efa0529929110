// @switchyard/model: what a custom model's author imports. The class contract (`SwitchyardModel`), the context
// `load` receives, and the data types Frame/Tensor. A bundle resolves this package at load time to the cluster's
// own copy, so it must stay tiny and runtime-free: it loads @switchyard/data and nothing else (no NATS client,
// no zod, no esbuild — a test checks the module graph). Node-side linking lives apart in `./link`.
import type { Frame, Tensor, TypedArray } from "@switchyard/data";
import type { Signature } from "@switchyard/protocol";

export {
  type ColumnData,
  type ColumnInput,
  Frame,
  type FrameColumn,
  type Tensor,
  type TensorData,
  type TypedArray,
  tensor,
} from "@switchyard/data";
export type { Dtype, Signature, TensorSpec } from "@switchyard/protocol";

/** A feed of `OnnxSession.run`: one of our Tensors, or a typed array (or strings) with its dimensions — an
 * onnxruntime `Tensor` is one too. */
export type OnnxFeed =
  | Tensor
  | { data: TypedArray | readonly string[]; dims: readonly number[]; type?: string };

export interface OnnxSessionOptions {
  /** onnxruntime's graph optimisation level (default "all"). Sessions always use one intra-op thread. */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
}

/** An onnxruntime session opened by `ModelContext.onnx`, with one intra-op thread. */
export interface OnnxSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the graph; feeds are cast to nothing, so give each input its own dtype (float32 for most models). */
  run(feeds: Readonly<Record<string, OnnxFeed>>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

/** What `load` receives, once per worker thread. */
export interface ModelContext {
  /** Every file of the registered directory: relative path ('/'-separated) → absolute local path. */
  readonly artifacts: Readonly<Record<string, string>>;
  /** The signature given in `signature.json`, converted to dtypes; null without one. */
  readonly signature: Signature | null;
  /** Opens an ONNX artifact by its relative path; keep the session in `load` and use it in `predict`. */
  onnx(relativePath: string, options?: OnnxSessionOptions): Promise<OnnxSession>;
}

/** One value per input row: a list or typed array, or a Frame of named outputs (one row per input row). */
export type Predictions = readonly (string | number | boolean | bigint | null)[] | TypedArray | Frame;

/** The default export of a custom model's entry module is a class implementing this. */
export interface SwitchyardModel {
  load?(context: ModelContext): void | Promise<void>;
  /** `input` has one row per request row (rows of several requests when batching is on). */
  predict(input: Frame, params?: Record<string, unknown>): Predictions | Promise<Predictions>;
}

/** The class itself: `static batching = false` makes the replica call `predict` with one request at a time. */
export interface SwitchyardModelClass {
  new (): SwitchyardModel;
  readonly batching?: boolean;
}
