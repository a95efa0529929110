// A Piscina worker thread: loads one model version through its flavor (once, at thread start) and runs one
// batch per task. Output buffers are transferred back, not copied. Failures return as data, never throw.
import { Frame } from "@switchyard/data";
// The error catalog alone: the protocol's zod schemas are not needed here and would cost every thread's start.
import { SwitchyardError } from "@switchyard/protocol/errors";
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { flavorLoader, type LoadedModel, ModelLoadError } from "./flavors/mod.js";
import { epochMs } from "./marks.js";
import type { RunResult, RunTask, WorkerInit, WorkerStartup } from "./task.js";

const init = workerData as WorkerInit;
const startup: WorkerStartup = { importedAt: epochMs(), loadedAt: 0 };

// Loading starts when the thread starts, so a pool's threads load in parallel before the first batch.
const loaded: Promise<LoadedModel | Error> = flavorLoader(init.flavor)
  .then((load) => load(init))
  .then((model) => {
    startup.loadedAt = epochMs();
    return model;
  })
  .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));

export default async function runBatch(task: RunTask): Promise<unknown> {
  const model = await loaded;
  if (model instanceof Error) {
    const result: RunResult = {
      ok: false,
      code: "MALFORMED_MODEL",
      message:
        model instanceof ModelLoadError
          ? model.message
          : `models:/${init.modelName}/${init.modelVersion} could not be loaded: ${firstLine(model.message)}`,
    };
    return result;
  }
  const warm = task.warmUp ? { batching: model.batching !== false, startup } : {};
  if (task.warmUp && !task.feeds && !task.frame) {
    const result: RunResult = { ok: true, outputs: [], computeUs: 0, ...warm };
    return result;
  }
  const started = performance.now();
  let outputs: RunResult & { ok: true };
  try {
    const input = task.frame ? Frame.of(task.frame.columns, task.frame.length) : (task.feeds ?? []);
    const out = await model.run(input, task.params);
    outputs = {
      ok: true,
      outputs: out,
      computeUs: Math.round((performance.now() - started) * 1000),
      ...warm,
    };
  } catch (err) {
    const result: RunResult =
      err instanceof SwitchyardError
        ? { ok: false, code: err.code, message: err.message }
        : {
            ok: false,
            code: "INTERNAL_ERROR",
            message: `inference failed: ${firstLine((err as Error)?.message ?? String(err))}`,
          };
    return result;
  }
  const buffers = new Set<ArrayBuffer>();
  for (const t of outputs.outputs) {
    if (!Array.isArray(t.data) && t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
  }
  return move({ [transferableSymbol]: [...buffers], [valueSymbol]: outputs } as never);
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? s;
