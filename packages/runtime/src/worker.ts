// A Piscina worker thread: loads one model version through its flavor (once, at thread start, or in a warm pool
// once the model is named) and runs one batch per task. Output buffers are transferred back, not copied. Failures
// return as data, never throw.
import { Frame } from "@switchyard/data";
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { flavorLoader, type LoadedModel, ModelLoadError, runFailure, timedRun } from "./flavors/mod.js";
import { epochMs } from "./marks.js";
import type { RunResult, RunTask, WorkerData, WorkerInit, WorkerStartup } from "./task.js";
import { boundInit } from "./warm-pool.js";

const data = workerData as WorkerData;
let init: WorkerInit | undefined = "pending" in data ? undefined : data;
const startup: WorkerStartup = { importedAt: epochMs(), loadedAt: 0 };

// Loading starts when the thread starts (or, in a warm pool, once the model is named), so a pool's threads load
// in parallel before the first batch.
// A warm pool's thread loads onnxruntime (ONNX models need it; custom models may open sessions) before its module
// finishes loading: Piscina then parks an idle thread in a blocking wait, in which no import would progress.
if ("pending" in data) await flavorLoader("onnx").catch(() => undefined);

const loaded: Promise<LoadedModel | Error> = (async () => {
  if ("pending" in data) init = await boundInit(data.pending);
  const load = await flavorLoader(init!.flavor);
  const model = await load(init!);
  startup.loadedAt = epochMs();
  return model;
})().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));

export default async function runBatch(task: RunTask): Promise<unknown> {
  const model = await loaded;
  if (model instanceof Error) {
    const result: RunResult = {
      ok: false,
      code: "MALFORMED_MODEL",
      message:
        model instanceof ModelLoadError
          ? model.message
          : `models:/${init?.modelName}/${init?.modelVersion} could not be loaded: ${firstLine(model.message)}`,
    };
    return result;
  }
  const warm = task.warmUp ? { batching: model.batching !== false, startup } : {};
  if (task.warmUp && !task.feeds && !task.frame) {
    const result: RunResult = { ok: true, outputs: [], computeUs: 0, ...warm };
    return result;
  }
  let outputs: RunResult & { ok: true };
  try {
    const input = task.frame ? Frame.of(task.frame.columns, task.frame.length) : (task.feeds ?? []);
    const timed = await timedRun(model, input, task.params, init?.flavor === "onnx");
    outputs = { ok: true, ...timed, ...warm };
  } catch (err) {
    const result: RunResult = { ok: false, ...runFailure(err) };
    return result;
  }
  const buffers = new Set<ArrayBuffer>();
  for (const t of outputs.outputs) {
    if (!Array.isArray(t.data) && t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
  }
  return move({ [transferableSymbol]: [...buffers], [valueSymbol]: outputs } as never);
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? s;
