// `@switchyard/client/local`: a registered model loaded into this process for scripts — the notes'
// `mlflow.pyfunc.load_model(uri)` + `model.predict(df)`. Its own entry because it loads onnxruntime and worker
// threads, which the SDK's other users (the bridge) must never pay for. Data is fitted exactly as a replica fits
// a request (formats' model-batch.ts), so `predictRaw` answers what an endpoint serving the version answers.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  describeValue,
  Frame,
  splitTensor,
  type Tensor,
  type TensorData,
  type TypedArray,
} from "@switchyard/data";
import {
  bodyToModelBatch,
  isPerRowScalar,
  type ModelBatch,
  outputFrame,
  type Params,
  predictionsBody,
  toModelBatch,
} from "@switchyard/formats";
import { connectNats, type NatsOptions } from "@switchyard/nats";
import {
  clusterNames,
  invalid,
  type ModelVersion,
  parseModelUri,
  SwitchyardError,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { ModelRunner } from "@switchyard/runtime";
import type { MlflowBody, MlflowResponse } from "./client.js";

export interface LoadModelOptions {
  /** Where the registry is: connection options, or an open connection (which stays open). */
  nats: NatsOptions | NatsConnection;
  /** Cluster name (default `sy`). */
  cluster?: string;
  /** Where artifacts are fetched and verified; default a fresh directory under `os.tmpdir()`, removed by
   * `close()`. A directory of your own is kept, and a later load of the same version reuses its files. */
  cacheDir?: string;
  /** Worker threads holding the model, each with one ORT thread; concurrent `predict` calls use them. */
  threads?: number;
}

export const LOAD_MODEL_DEFAULTS = { threads: 1 } as const;

const OPTION_NAMES = ["nats", "cluster", "cacheDir", "threads"] as const;

/** A Frame, records as pandas writes them (`[{f1: 1, f2: 2}, …]`), or an MLflow body (`{dataframe_split: …}`). */
export type ModelInput = Frame | readonly Record<string, unknown>[] | MlflowBody;

/** One output's predictions: its N values (an `[N]` or `[N, 1]` output), or N rows (views of one array). */
export type OutputValues = TensorData | TensorData[];

/** One output → its values; several outputs → a Frame with a column per output (see `LocalModel.predict`). */
export type Predictions = OutputValues | Frame;

/**
 * Resolves `uri` (`models:/name/3`, `models:/name@alias`, `models:/name/latest`) once, fetches and verifies the
 * version's artifacts and loads it into `threads` worker threads. A connection it opened itself is closed as soon
 * as the model is loaded: predicting needs no cluster. Unknown model, version or alias → RESOURCE_DOES_NOT_EXIST.
 */
export async function loadModel(uri: string, options: LoadModelOptions): Promise<LocalModel> {
  const o = checkOptions(options);
  const ref = parseModelUri(uri);
  const given = isConnection(o.nats) ? o.nats : undefined;
  const nc = given ?? (await connectNats({ name: "switchyard-load-model", ...(o.nats as NatsOptions) }));
  let ownedDir: string | null = null;
  try {
    if (!o.cacheDir) ownedDir = await mkdtemp(join(tmpdir(), "switchyard-model-"));
    const cacheDir = o.cacheDir ?? ownedDir!;
    const registry = await Registry.open(nc, { cluster: o.cluster });
    const version = await registry.resolve(ref);
    const runner = await ModelRunner.load({ registry, version, cacheDir, threads: o.threads });
    return new LocalModel(runner, ownedDir);
  } catch (err) {
    if (ownedDir) await rm(ownedDir, { recursive: true, force: true });
    throw err;
  } finally {
    if (!given) await nc.close();
  }
}

export class LocalModel {
  /** The version the URI resolved to at load (name, version, flavor, signature); later alias moves do not
   * change it. */
  readonly version: ModelVersion;
  private closing: Promise<void> | null = null;

  /** @internal Use `loadModel`. */
  constructor(
    private readonly runner: ModelRunner,
    private readonly ownedCacheDir: string | null,
  ) {
    this.version = runner.version;
  }

  /**
   * Scores `input` in one batch. One output: its N predictions — a typed array or string array for an `[N]` or
   * `[N, 1]` output, else N rows (`[N, k]` → N views of k values). Several outputs: a Frame with one column per
   * output in the model's order; an output of k values per row becomes k columns `name[0]` … `name[k-1]`.
   * `params` are the model's parameters (an MLflow body may carry them instead, not both).
   */
  async predict(input: ModelInput, params?: Params): Promise<Predictions> {
    return predictionsOf(await this.predictTensors(input, params));
  }

  /** The model's outputs as it returned them: one tensor per output (name, dtype, shape, flat data). */
  async predictTensors(input: ModelInput, params?: Params): Promise<Tensor[]> {
    const { batch, params: p } = this.fit(input, params);
    return this.runner.run(batch, p);
  }

  /** The MLflow reply `{"predictions": …}`, as an endpoint serving this version answers the same input. */
  async predictRaw(input: ModelInput, params?: Params): Promise<MlflowResponse> {
    return predictionsBody(await this.predictTensors(input, params));
  }

  /** Stops the worker threads and removes the temporary cache directory. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.runner.close();
      if (this.ownedCacheDir) await rm(this.ownedCacheDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  private fit(input: ModelInput, params: Params | undefined): { batch: ModelBatch; params: Params } {
    if (input instanceof Frame) {
      return { batch: unshared(toModelBatch(input, this.runner), input), params: params ?? {} };
    }
    if (Array.isArray(input)) {
      const frame = Frame.fromRecords(input, "records");
      return { batch: toModelBatch(frame, this.runner), params: params ?? {} };
    }
    if (typeof input !== "object" || input === null) {
      throw invalid(
        `predict takes a Frame, an array of records or an MLflow body ({"dataframe_split": …}), got ${describeValue(input)}`,
      );
    }
    const body = input as MlflowBody;
    if (params === undefined) return bodyToModelBatch(body, this.runner);
    if (body.params !== undefined && body.params !== null) {
      throw invalid("params are given twice: in the body and as predict's argument; pass them in one place");
    }
    return bodyToModelBatch({ ...body, params }, this.runner);
  }
}

/**
 * The runner moves a batch's buffers to its worker thread, which empties them here. Arrays still shared with the
 * caller's frame (a column the fitting kept as it was) are copied first, so the caller's columns stay readable.
 */
function unshared(batch: ModelBatch, caller: Frame): ModelBatch {
  const callers = new Set<ArrayBufferLike>();
  for (const c of caller.entries()) if (!Array.isArray(c.data)) callers.add(c.data.buffer);
  if (callers.size === 0) return batch;
  const own = <T extends TypedArray | unknown[]>(d: T): T =>
    Array.isArray(d) || !callers.has(d.buffer) ? d : (d.slice() as T);
  if (batch instanceof Frame) {
    return Frame.of(
      batch.entries().map((c) => ({ ...c, data: own(c.data) })),
      batch.length,
    );
  }
  return batch.map((t) => ({ ...t, data: own(t.data) }));
}

function checkOptions(
  options: LoadModelOptions,
): Required<Pick<LoadModelOptions, "nats" | "threads">> & Pick<LoadModelOptions, "cluster" | "cacheDir"> {
  if (typeof options !== "object" || options === null) {
    throw invalid("loadModel needs options with at least `nats` (connection options or a NatsConnection)");
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      throw invalid(
        `options.${key} is not an option of loadModel; the options are ${OPTION_NAMES.join(", ")}`,
      );
    }
  }
  if (typeof options.nats !== "object" || options.nats === null) {
    throw invalid("options.nats is required: connection options ({servers, …}) or a NatsConnection");
  }
  const threads = options.threads ?? LOAD_MODEL_DEFAULTS.threads;
  if (!Number.isInteger(threads) || threads < 1) {
    throw invalid(`options.threads must be a positive integer, got ${String(options.threads)}`);
  }
  if (options.cacheDir !== undefined && (typeof options.cacheDir !== "string" || options.cacheDir === "")) {
    throw invalid("options.cacheDir must be a directory path");
  }
  clusterNames(options.cluster); // a bad cluster name fails before connecting
  return { ...options, threads };
}

const isConnection = (nats: NatsOptions | NatsConnection): nats is NatsConnection =>
  typeof (nats as NatsConnection).request === "function";

/** The model's outputs → what a script wants (see `LocalModel.predict`). */
export function predictionsOf(outputs: readonly Tensor[]): Predictions {
  const only = outputs[0];
  if (outputs.length === 1 && only) {
    if (isPerRowScalar(only)) return only.data;
    return splitTensor(only, new Array<number>(only.shape[0] ?? 0).fill(1)).map((row) => row.data);
  }
  const rows = only?.shape[0] ?? 0;
  for (const t of outputs) {
    if (t.shape[0] !== rows) {
      throw new SwitchyardError(
        "INTERNAL_ERROR",
        `the model's outputs have different row counts (${outputs.map((o) => `${o.name}: [${o.shape.join(", ")}]`).join(", ")}); ` +
          "predictTensors() returns them as they are",
      );
    }
  }
  return outputFrame(outputs, rows);
}
