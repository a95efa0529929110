// The model runtime: one registered model version, its artifacts fetched to a cache directory (digests
// verified), loaded into a Piscina pool of worker threads. One worker hop per batch, typed-array buffers
// transferred both ways — or, for an ONNX model that computes in less than the hop costs, a run on the calling
// thread's own session (placement.ts decides from measured costs). Usable outside a replica (batch workers); it
// knows nothing about NATS requests.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { allocate, elementCount, Frame, type Payload, type Tensor, type TensorData } from "@switchyard/data";
import { type Params, toModelBatch } from "@switchyard/formats";
import { linkModelPackage } from "@switchyard/model/link";
import { type ModelVersion, type Signature, SwitchyardError, type TensorSpec } from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import { Piscina } from "piscina";
import { type LoadedModel, runFailure, timedRun } from "./flavors/mod.js";
import type { StartupMarks } from "./marks.js";
import { BatchPlacement, type BatchSite, type PlacementOptions } from "./placement.js";
import type { FrameData, RunResult, RunTask, WorkerInit, WorkerStartup } from "./task.js";
import { poolOptions, type WarmPool } from "./warm-pool.js";

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
  /** Records the load's steps: artifacts, threads_imported, model_loaded (the last thread's), warm. */
  marks?: StartupMarks;
  /** Threads already started (same worker file): used when it has `threads` threads, otherwise destroyed. */
  warmPool?: WarmPool;
  /** ONNX models: how batches move between the pool and the calling thread (`false`: always the pool). */
  placement?: Partial<PlacementOptions> | false;
  /** Called when batches move between the pool and the calling thread, with the figures that moved them. */
  onSiteChange?: (change: SiteChange) => void;
}

export interface SiteChange {
  site: BatchSite;
  /** Recent compute per batch and the hop's floor, µs, when the move was decided. */
  computeUs: number;
  hopUs: number;
  /** Set when the calling thread's session could not be opened (batches then stay in the pool). */
  error?: string;
}

/** Batches run so far on each site, and where the next one goes. */
export interface BatchSites {
  inline: number;
  pool: number;
  site: BatchSite;
}

export interface TimedOutputs {
  outputs: Tensor[];
  /** Model time inside the worker, µs. */
  computeUs: number;
}

export interface RunOptions {
  /** Custom models only: when this many ms pass, the task is aborted and its worker thread replaced
   * (DEADLINE_EXCEEDED), so a `predict` that never returns cannot hold a slot for ever. */
  timeoutMs?: number;
}

export class ModelRunner {
  private closed = false;
  /** ONNX models: where batches run (null: always the pool — custom models, or an inline session that failed). */
  private placement: BatchPlacement | null;
  /** The calling thread's session, opened the first time the placement asks for it. */
  private inline: LoadedModel | null = null;
  private inlineOpening = false;
  private readonly ran = { inline: 0, pool: 0 };
  /** Whether batches may hold rows of several requests (ONNX: a dynamic row dimension everywhere; custom: the
   * class's `static batching`, learnt at warm-up). */
  batches: boolean;
  /** Custom models take a Frame per batch; ONNX models take tensors. */
  readonly frames: boolean;

  private constructor(
    private readonly pool: Piscina<RunTask, unknown>,
    readonly version: ModelVersion,
    /** ONNX: always set. Custom: from signature.json, or null. */
    readonly signature: Signature | null,
    readonly threads: number,
    private readonly init: WorkerInit,
    private readonly onSiteChange: ((change: SiteChange) => void) | undefined,
    placement: BatchPlacement | null,
  ) {
    this.frames = version.flavor === "custom";
    this.batches = this.frames || batchable(signature);
    this.placement = placement;
  }

  /** Whether batches may run on the calling thread when that is cheaper than the hop (ONNX models). */
  get inlineCapable(): boolean {
    return this.placement !== null;
  }

  batchSites(): BatchSites {
    const site = this.inline && this.placement?.site === "inline" ? "inline" : "pool";
    return { ...this.ran, site };
  }

  /** Fetches, verifies and loads the version into `threads` workers, then runs one warm-up batch on each. */
  static async load(o: ModelRunnerOptions): Promise<ModelRunner> {
    try {
      return await ModelRunner.open(o);
    } catch (err) {
      // A warm pool not yet bound to the model stops here (once bound, it closed with the runner).
      await o.warmPool?.destroy();
      throw err;
    }
  }

  private static async open(o: ModelRunnerOptions): Promise<ModelRunner> {
    if (!Number.isInteger(o.threads) || o.threads < 1) {
      throw new RangeError(`options.threads must be a positive integer, got ${o.threads}`);
    }
    const v = o.version;
    // Custom models run user code: only a worker thread can be replaced when it hangs past a deadline.
    const placement = v.flavor === "onnx" && o.placement !== false ? new BatchPlacement(o.placement) : null;
    const uri = `models:/${v.name}/${v.version}`;
    if (!v.signature && v.flavor !== "custom") {
      throw new SwitchyardError("MALFORMED_MODEL", `${uri} has no signature; a served model needs one`);
    }
    const dir = join(o.cacheDir, v.name, String(v.version));
    const files = await o.registry.fetchArtifacts(v, dir);
    const entry = files[v.entry];
    if (!entry) throw new SwitchyardError("MALFORMED_MODEL", `${uri} has no artifact '${v.entry}'`);
    // The bundle imports @switchyard/model; resolve it to this installation's copy (one Frame class).
    if (v.flavor === "custom") await linkModelPackage(dir);
    o.marks?.mark("artifacts");
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
      signature: v.signature,
    };
    const warm = o.warmPool;
    const fits = warm?.threads === o.threads && warm.workerFile === workerFile;
    const bound = fits ? warm.bind(init) : undefined;
    // A warm pool not taken (other threads, or an init too large for its cell) would idle on beside ours.
    if (warm && !bound) void warm.destroy().catch(() => {});
    const pool = bound ?? new Piscina<RunTask, unknown>(poolOptions(workerFile, init, o.threads));
    // A worker that dies is replaced by Piscina (minThreads); an error event must not crash the process.
    pool.on("error", () => {});
    const runner = new ModelRunner(pool, v, v.signature, o.threads, init, o.onSiteChange, placement);
    try {
      // One warm-up per thread, concurrently: each lands on its own idle worker, so every thread has loaded.
      const threads = await Promise.all(Array.from({ length: o.threads }, () => runner.warmUp()));
      if (o.marks) {
        o.marks.mark("threads_imported", Math.max(...threads.map((t) => t.importedAt)));
        o.marks.mark("model_loaded", Math.max(...threads.map((t) => t.loadedAt)));
        o.marks.mark("warm");
      }
    } catch (err) {
      await runner.close();
      throw err;
    }
    return runner;
  }

  /** ONNX: one inference on zeros of the signature's shapes (symbolic dimensions = 1). Custom: waits until a
   * worker has loaded the model (its load failure is the error) and learns whether it batches. Returns the
   * start-up of the thread it ran on. */
  async warmUp(): Promise<WorkerStartup> {
    const task: RunTask = this.frames
      ? { warmUp: true, params: {} }
      : { warmUp: true, feeds: warmUpFeeds(this.signature!), params: {} };
    const result = await this.hop(task, []);
    if (!result.ok) throw new SwitchyardError(result.code, result.message);
    if (result.batching === false) this.batches = false;
    return result.startup!;
  }

  /** Runs one batch: feeds in signature order, cast to the signature's dtypes. In the pool their buffers are
   * transferred to the worker when they own them whole (and are then unusable here), otherwise copied; an inline
   * run reads them in place. */
  async run(input: Tensor[] | Frame, params: Params = {}, opts: RunOptions = {}): Promise<Tensor[]> {
    return (await this.runTimed(input, params, opts)).outputs;
  }

  /** Runs one batch: tensors for an ONNX model, a Frame for a custom model. */
  async runTimed(input: Tensor[] | Frame, params: Params = {}, opts: RunOptions = {}): Promise<TimedOutputs> {
    if (input instanceof Frame !== this.frames) {
      throw new SwitchyardError(
        "INTERNAL_ERROR",
        `models:/${this.version.name}/${this.version.version} takes ${this.frames ? "a frame" : "tensors"}`,
      );
    }
    const placement = this.placement;
    if (!placement || input instanceof Frame) return this.runInPool(input, params, opts);
    if (placement.next(performance.now()) === "inline") {
      if (this.inline) return this.runInline(this.inline, input, params);
      this.openInline();
    }
    const startedMs = performance.now();
    const timed = await this.runInPool(input, params, opts);
    const endMs = performance.now();
    this.moved(
      placement.record("pool", timed.computeUs, (endMs - startedMs) * 1000 - timed.computeUs, endMs),
    );
    return timed;
  }

  private async runInPool(input: Tensor[] | Frame, params: Params, opts: RunOptions): Promise<TimedOutputs> {
    const transferList: ArrayBuffer[] = [];
    const task: RunTask =
      input instanceof Frame
        ? { frame: transferableFrame(input, transferList), params }
        : { feeds: input.map((f) => transferable(f, transferList)), params };
    const result = await this.hop(task, transferList, this.frames ? opts.timeoutMs : undefined);
    if (!result.ok) throw new SwitchyardError(result.code, result.message);
    this.ran.pool++;
    return { outputs: result.outputs, computeUs: result.computeUs };
  }

  /** One batch on the calling thread's session (its compute excludes the event loop's other work: timedRun). */
  private async runInline(model: LoadedModel, feeds: Tensor[], params: Params): Promise<TimedOutputs> {
    if (this.closed) throw closedError();
    let timed: TimedOutputs;
    try {
      timed = await timedRun(model, feeds, params, true);
    } catch (err) {
      if (this.closed) throw closedError();
      const failure = runFailure(err);
      throw new SwitchyardError(failure.code, failure.message);
    }
    this.ran.inline++;
    this.moved(this.placement?.record("inline", timed.computeUs, null, performance.now()) ?? null);
    return timed;
  }

  /** Opens the calling thread's session (once, in the background: batches go to the pool meanwhile), with one
   * intra-op thread and no spinning, and warms it. If it cannot be opened, batches stay in the pool. */
  private openInline(): void {
    if (this.inlineOpening || this.closed) return;
    this.inlineOpening = true;
    void (async () => {
      const { loadOnnx } = await import("./flavors/onnx.js");
      const model = await loadOnnx(this.init, { spinning: false });
      await model.run(warmUpFeeds(this.signature!), {});
      if (this.closed) {
        await model.close?.();
        return;
      }
      this.inline = model;
    })().catch((err: unknown) => {
      this.placement = null;
      this.onSiteChange?.({
        site: "pool",
        computeUs: Number.NaN,
        hopUs: Number.NaN,
        error: `the inline session could not be opened: ${firstLine((err as Error)?.message ?? String(err))}`,
      });
    });
  }

  /** Reports a move the placement decided (`site` null: none). */
  private moved(site: BatchSite | null): void {
    if (site === null || !this.onSiteChange || !this.placement) return;
    const { computeUs, hopUs } = this.placement.costs();
    this.onSiteChange({ site, computeUs: Math.round(computeUs), hopUs: Math.round(hopUs) });
  }

  private async hop(task: RunTask, transferList: ArrayBuffer[], timeoutMs?: number): Promise<RunResult> {
    if (this.closed) throw closedError();
    const uri = `models:/${this.version.name}/${this.version.version}`;
    const abort = timeoutMs !== undefined ? new AbortController() : undefined;
    // Piscina terminates the worker running an aborted task and starts a fresh one (minThreads).
    const timer = abort ? setTimeout(() => abort.abort(), Math.max(0, timeoutMs!)) : undefined;
    try {
      return (await this.pool.run(task, {
        transferList,
        ...(abort ? { signal: abort.signal } : {}),
      })) as RunResult;
    } catch (err) {
      if (abort?.signal.aborted) {
        throw new SwitchyardError(
          "DEADLINE_EXCEEDED",
          `${uri}: predict() did not return before the request's deadline; its worker thread was replaced`,
        );
      }
      const why = firstLine((err as Error)?.message ?? String(err));
      if (this.frames && !this.closed) {
        // A custom model's thread died under its own code (process.exit, an uncaught async throw): the same
        // input would kill the next one too, so this is not worth a retry.
        throw new SwitchyardError(
          "INTERNAL_ERROR",
          `${uri}: the worker thread running the model died (${why}); it was replaced`,
          { cause: err },
        );
      }
      // The worker died mid-batch (Piscina replaces it) or the pool is shutting down: safe to retry.
      throw new SwitchyardError(
        "TEMPORARILY_UNAVAILABLE",
        `worker thread failed while running the batch: ${why}`,
        {
          cause: err,
        },
      );
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** In-process convenience: a request payload (Frame or tensors) → the model's outputs. */
  async predict(payload: Payload, params: Params = {}): Promise<Tensor[]> {
    return this.run(toModelBatch(payload, this), params);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const inline = this.inline;
    this.inline = null;
    await Promise.all([this.pool.destroy(), inline?.close?.()]);
  }
}

/** Zeros for every input; symbolic or unknown dimensions are 1. */
export function warmUpFeeds(signature: Signature): Tensor[] {
  return signature.inputs.map((spec: TensorSpec) => {
    const shape = (spec.shape ?? [1]).map((d) => (typeof d === "number" && d >= 0 ? d : 1));
    return { name: spec.name, dtype: spec.dtype, shape, data: allocate(spec.dtype, elementCount(shape)) };
  });
}

/** A model batches when every input and output has a dynamic first dimension. */
function batchable(sig: Signature | null): boolean {
  if (!sig) return false;
  const dynamic = (s: { shape: (number | string)[] | null }) =>
    s.shape === null ||
    (s.shape.length > 0 && (typeof s.shape[0] === "string" || (s.shape[0] as number) < 0));
  return sig.inputs.every(dynamic) && sig.outputs.every(dynamic);
}

/** A frame's columns for the worker, typed columns transferred like tensors. */
function transferableFrame(frame: Frame, transferList: ArrayBuffer[]): FrameData {
  const columns = frame.entries().map((c) => {
    if (Array.isArray(c.data)) return c;
    const t = transferable(
      { name: c.name, dtype: c.kind, shape: [c.data.length], data: c.data },
      transferList,
    );
    return { name: c.name, kind: c.kind, data: t.data as typeof c.data };
  });
  return { columns, length: frame.length };
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

const closedError = () => new SwitchyardError("TEMPORARILY_UNAVAILABLE", "the model runtime is closed");
