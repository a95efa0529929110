// The `onnx` flavor: one onnxruntime-node InferenceSession per worker thread with one intra-op and one
// inter-op thread, so a replica's ORT threads equal its pool size (DESIGN.md "Threads and processes"). The runner
// may also open one on its own thread for cheap models (placement.ts), which must never spin: it shares the
// event loop.
import type { Frame, Tensor } from "@switchyard/data";
import type { Params } from "@switchyard/formats";
import { SwitchyardError } from "@switchyard/protocol/errors";
import ort from "onnxruntime-node";
import type { WorkerInit } from "../task.js";
import { type LoadedModel, ModelLoadError } from "./flavor.js";
import { fromOrt } from "./ort.js";

/** ORT's session config keys: no busy-waiting of ORT's own threads between runs. */
const NO_SPINNING = { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } };

export async function loadOnnx(init: WorkerInit, o: { spinning?: boolean } = {}): Promise<LoadedModel> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.entry, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      ...(o.spinning === false ? { extra: NO_SPINNING } : {}),
    });
  } catch (err) {
    throw new ModelLoadError(`not a loadable ONNX model: ${firstLine((err as Error).message)}`);
  }
  const outputNames = session.outputNames;
  return {
    async run(feeds: Tensor[] | Frame, _params: Params): Promise<Tensor[]> {
      if (!Array.isArray(feeds)) throw new SwitchyardError("INTERNAL_ERROR", "an ONNX model takes tensors");
      const input: Record<string, ort.Tensor> = {};
      for (const f of feeds) {
        input[f.name] = new ort.Tensor(f.dtype as ort.Tensor.Type, f.data as ort.Tensor.DataType, f.shape);
      }
      const out = await session.run(input);
      const tensors: Tensor[] = [];
      for (const name of outputNames) tensors.push(fromOrt(name, out[name]!));
      return tensors;
    },
    close: () => session.release(),
  };
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? s;
