// The model runtime: one registered model version, its artifacts fetched to a cache directory (digests
// verified), loaded into a Piscina pool of worker threads. One worker hop per batch, typed-array buffers
// transferred both ways. Usable outside a replica (batch workers); it knows nothing about NATS requests.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  allocate,
  elementCount,
  type ModelVersion,
  modelInputs,
  type Params,
  type Payload,
  type Signature,
  SwitchyardError,
  type Tensor,
  type TensorData,
  type TensorSpec,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import { Piscina } from "piscina";
import type { RunResult, RunTask, WorkerInit } from "./task.js";

/**
 * The worker module, always the compiled JavaScript next to this module in `dist/` (worker threads cannot run
 * TypeScript). When this module itself runs from `src/` (vitest runs package sources) it points at the built
 * `dist/worker.js`, so tests need `npx tsc -b packages/replica` first (`npm test` builds).
 */
export const WORKER_FILE = fileURLToPath(
  import.meta.url.endsWith(".ts")
    ? new URL("../dist/worker.js", import.meta.url)
    : new URL("./worker.js", import.meta.url),
);

export interface ModelRunnerOptions {
  registry: Registry;
  version: ModelVersion;
  /** Artifacts are cached under `<cacheDir>/<model name>/<version>/`. */
  cacheDir: string;
  /** Worker threads, each holding one model instance with one ORT thread. */
  threads: number;
  /** Another worker module wrapping `dist/worker.js` (test fixtures that crash or stall). */
  workerFile?: string;
}

export interface TimedOutputs {
  outputs: Tensor[];
  /** Model time inside the worker, µs. */
  computeUs: number;
}

export class ModelRunner {
  private closed = false;

  private constructor(
    private readonly pool: Piscina<RunTask, unknown>,
    readonly version: ModelVersion,
    readonly signature: Signature,
    readonly threads: number,
  ) {}

  /** Fetches, verifies and loads the version into `threads` workers, then runs one warm-up batch on each. */
  static async load(o: ModelRunnerOptions): Promise<ModelRunner> {
    if (!Number.isInteger(o.threads) || o.threads < 1) {
      throw new RangeError(`options.threads must be a positive integer, got ${o.threads}`);
    }
    const v = o.version;
    const uri = `models:/${v.name}/${v.version}`;
    if (!v.signature) {
      throw new SwitchyardError("MALFORMED_MODEL", `${uri} has no signature; a served model needs one`);
    }
    const dir = join(o.cacheDir, v.name, String(v.version));
    const files = await o.registry.fetchArtifacts(v, dir);
    const entry = files[v.entry];
    if (!entry) throw new SwitchyardError("MALFORMED_MODEL", `${uri} has no artifact '${v.entry}'`);
    const workerFile = o.workerFile ?? WORKER_FILE;
    if (!existsSync(workerFile)) {
      throw new Error(
        `replica worker ${workerFile} is missing: build the package (npx tsc -b packages/replica)`,
      );
    }
    const init: WorkerInit = {
      flavor: v.flavor,
      modelName: v.name,
      modelVersion: v.version,
      dir,
      entry,
      files,
    };
    const pool = new Piscina<RunTask, unknown>({
      filename: workerFile,
      workerData: init,
      minThreads: o.threads,
      maxThreads: o.threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      // Our own batcher holds the queue; Piscina's only bridges the instant between a slot freeing and a hop.
      maxQueue: Number.POSITIVE_INFINITY,
    });
    // A worker that dies is replaced by Piscina (minThreads); an error event must not crash the process.
    pool.on("error", () => {});
    const runner = new ModelRunner(pool, v, v.signature, o.threads);
    try {
      // One warm-up per thread, concurrently: each lands on its own idle worker, so every thread has loaded.
      await Promise.all(Array.from({ length: o.threads }, () => runner.warmUp()));
    } catch (err) {
      await runner.close();
      throw err;
    }
    return runner;
  }

  /** One inference on zeros of the signature's shapes (symbolic dimensions = 1). */
  async warmUp(): Promise<void> {
    await this.run(warmUpFeeds(this.signature));
  }

  /** Runs one batch: feeds in signature order, cast to the signature's dtypes. Their buffers are transferred
   * to the worker when they own them whole (and are then unusable here); otherwise copied. */
  async run(feeds: Tensor[], params: Params = {}): Promise<Tensor[]> {
    return (await this.runTimed(feeds, params)).outputs;
  }

  async runTimed(feeds: Tensor[], params: Params = {}): Promise<TimedOutputs> {
    if (this.closed) throw new SwitchyardError("TEMPORARILY_UNAVAILABLE", "the model runtime is closed");
    const transferList: ArrayBuffer[] = [];
    const sent = feeds.map((f) => transferable(f, transferList));
    let result: RunResult;
    try {
      result = (await this.pool.run({ feeds: sent, params }, { transferList })) as RunResult;
    } catch (err) {
      // The worker died mid-batch (Piscina replaces it) or the pool is shutting down: safe to retry.
      throw new SwitchyardError(
        "TEMPORARILY_UNAVAILABLE",
        `worker thread failed while running the batch: ${firstLine((err as Error)?.message ?? String(err))}`,
        { cause: err },
      );
    }
    if (!result.ok) throw new SwitchyardError(result.code, result.message);
    return { outputs: result.outputs, computeUs: result.computeUs };
  }

  /** In-process convenience: a request payload (Frame or tensors) → the model's outputs. */
  async predict(payload: Payload, params: Params = {}): Promise<Tensor[]> {
    return this.run(modelInputs(payload, this.signature), params);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}

/** Zeros for every input; symbolic or unknown dimensions are 1. */
export function warmUpFeeds(signature: Signature): Tensor[] {
  return signature.inputs.map((spec: TensorSpec) => {
    const shape = (spec.shape ?? [1]).map((d) => (typeof d === "number" && d >= 0 ? d : 1));
    return { name: spec.name, dtype: spec.dtype, shape, data: allocate(spec.dtype, elementCount(shape)) };
  });
}

/** `t` with data whose buffer may be transferred: its own whole buffer, or a copy. */
function transferable(t: Tensor, transferList: ArrayBuffer[]): Tensor {
  const d = t.data;
  if (Array.isArray(d)) return t;
  let data: TensorData = d;
  const whole = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.buffer instanceof ArrayBuffer;
  if (!whole || transferList.includes(d.buffer as ArrayBuffer)) data = d.slice();
  transferList.push(data.buffer as ArrayBuffer);
  return data === d ? t : { name: t.name, dtype: t.dtype, shape: t.shape, data };
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? s;
