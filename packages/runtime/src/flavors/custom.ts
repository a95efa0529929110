// The `custom` flavor: a user's bundled class, one instance per worker thread. It imports the bundle (which
// resolves @switchyard/model to the cluster's own copy through the link runtime.ts made), runs `load(context)`,
// and turns each `predict` result into output tensors. User code never runs outside this worker thread.
import { pathToFileURL } from "node:url";
import {
  dtypeOfArray,
  Frame,
  type FrameColumn,
  inferColumn,
  isTypedArray,
  type Tensor,
} from "@switchyard/data";
import type { Params } from "@switchyard/formats";
import type { ModelContext, OnnxFeed, OnnxSession, OnnxSessionOptions } from "@switchyard/model";
import { SwitchyardError } from "@switchyard/protocol/errors";
import ort from "onnxruntime-node";
import type { WorkerInit } from "../task.js";
import { type LoadedModel, ModelLoadError } from "./flavor.js";
import { fromOrt } from "./ort.js";

/** Artifacts under this directory are ours (the bundle), not the user's files. */
const INTERNAL_DIR = "__switchyard__/";

interface UserModel {
  load?(context: ModelContext): unknown;
  predict(input: Frame, params?: Params): unknown;
}

export async function loadCustom(init: WorkerInit): Promise<LoadedModel> {
  const uri = `models:/${init.modelName}/${init.modelVersion}`;
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(init.entry).href)) as { default?: unknown };
  } catch (err) {
    throw new ModelLoadError(`${uri}: importing its bundle failed: ${messageOf(err)}`);
  }
  const Model = mod.default;
  if (typeof Model !== "function") {
    throw new ModelLoadError(`${uri}: the bundle's default export is not a class with a predict method`);
  }
  let model: UserModel;
  try {
    model = new (Model as new () => UserModel)();
  } catch (err) {
    throw new ModelLoadError(`${uri}: constructing the model threw: ${messageOf(err)}`);
  }
  if (typeof model.predict !== "function")
    throw new ModelLoadError(`${uri}: the model has no predict method`);

  const sessions: ort.InferenceSession[] = [];
  const artifacts: Record<string, string> = {};
  for (const [path, abs] of Object.entries(init.files))
    if (!path.startsWith(INTERNAL_DIR)) artifacts[path] = abs;
  const context: ModelContext = {
    artifacts: Object.freeze(artifacts),
    signature: init.signature,
    async onnx(relativePath: string, options: OnnxSessionOptions = {}): Promise<OnnxSession> {
      const rel = String(relativePath).replaceAll("\\", "/").replace(/^\.\//, "");
      const file = artifacts[rel];
      if (!file) {
        throw new Error(
          `no artifact '${relativePath}'; the artifacts are: ${Object.keys(artifacts).join(", ")}`,
        );
      }
      const session = await ort.InferenceSession.create(file, {
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        executionMode: "sequential",
        graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
      });
      sessions.push(session);
      return wrapSession(session);
    },
  };
  if (typeof model.load === "function") {
    try {
      await model.load(context);
    } catch (err) {
      throw new ModelLoadError(`${uri}: load() failed: ${messageOf(err)}`);
    }
  }
  const outputName = init.signature?.outputs.length === 1 ? init.signature.outputs[0]!.name : "predictions";

  return {
    async run(input: Tensor[] | Frame, params: Params): Promise<Tensor[]> {
      if (!(input instanceof Frame))
        throw new SwitchyardError("INTERNAL_ERROR", "a custom model takes a frame");
      let result: unknown;
      try {
        result = await model.predict(input, params);
      } catch (err) {
        // The model's own message, never its stack.
        throw new SwitchyardError("BAD_REQUEST", messageOf(err));
      }
      return predictionsToTensors(result, input.length, uri, outputName);
    },
    batching: (Model as { batching?: unknown }).batching !== false,
    async close() {
      await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
    },
  };
}

function wrapSession(session: ort.InferenceSession): OnnxSession {
  return {
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    async run(feeds: Readonly<Record<string, OnnxFeed>>): Promise<Record<string, Tensor>> {
      const input: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) {
        if ("shape" in f && "dtype" in f) {
          input[name] = new ort.Tensor(f.dtype as ort.Tensor.Type, f.data as ort.Tensor.DataType, f.shape);
        } else {
          const dims = [...f.dims];
          input[name] = f.type
            ? new ort.Tensor(f.type as ort.Tensor.Type, f.data as ort.Tensor.DataType, dims)
            : new ort.Tensor(f.data as Float32Array, dims);
        }
      }
      const out = await session.run(input);
      const tensors: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(out)) tensors[name] = fromOrt(name, t);
      return tensors;
    },
    release: () => session.release(),
  };
}

const looksLikeFrame = (v: unknown): v is Frame =>
  v instanceof Frame ||
  (typeof v === "object" &&
    v !== null &&
    typeof (v as Frame).entries === "function" &&
    typeof (v as Frame).schemaKey === "function");

/** A `predict` result → one `[N]` tensor per output; anything else, or N ≠ the input's rows → INTERNAL_ERROR. */
export function predictionsToTensors(
  result: unknown,
  rows: number,
  uri: string,
  outputName: string,
): Tensor[] {
  const wrong = (what: string) => new SwitchyardError("INTERNAL_ERROR", `${uri}: predict() returned ${what}`);
  const count = (n: number) => {
    if (n !== rows) throw wrong(`${n} values for ${rows} input rows; it must return one per row`);
  };
  let columns: FrameColumn[];
  if (looksLikeFrame(result)) {
    count(result.length);
    columns = result.entries();
    if (columns.length === 0) throw wrong("a frame without columns");
  } else if (isTypedArray(result)) {
    count(result.length);
    columns = [{ name: outputName, kind: dtypeOfArray(result), data: result }];
  } else if (Array.isArray(result)) {
    count(result.length);
    try {
      columns = [inferColumn(outputName, result.length, (i) => result[i])];
    } catch (err) {
      throw wrong(`values that are not one column: ${messageOf(err)}`);
    }
  } else {
    throw wrong(`${result === null ? "null" : typeof result}; expected an array, a typed array or a Frame`);
  }
  return columns.map((c) => ({ name: c.name, dtype: c.kind, shape: [rows], data: c.data as Tensor["data"] }));
}

function messageOf(err: unknown): string {
  const m = err instanceof Error ? err.message : typeof err === "string" ? err : String(err);
  // A message that embeds a stack (some libraries do) is cut before its first frame.
  return m.split(/\n\s+at /, 1)[0] ?? m;
}
