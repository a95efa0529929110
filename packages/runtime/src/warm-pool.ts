// Worker threads started before their model is known: each boots, imports the worker module and onnxruntime, then
// waits until bind() names the model version, which every thread — and any thread Piscina later starts in place of
// one that died — loads. So a replica's threads start while it connects, reads its version and fetches its
// artifacts, and a warm spare's threads are up before its assignment exists. It never runs a batch itself.
import { Piscina } from "piscina";
import type { RunTask, WorkerData, WorkerInit } from "./task.js";

/** The most a model's WorkerInit may take as JSON (address space reserved, memory used only as it grows). */
const MAX_INIT_BYTES = 16 * 2 ** 20;
/** The cell: Int32 [state (0 waiting, 1 bound), byte length], then the init as UTF-8 JSON. */
const HEADER_BYTES = 8;

type GrowableSharedArrayBuffer = SharedArrayBuffer & { grow(bytes: number): void };
const GrowableSharedArrayBuffer = SharedArrayBuffer as unknown as new (
  bytes: number,
  opts: { maxByteLength: number },
) => GrowableSharedArrayBuffer;
// ES2024 (in Node since 16), not yet in the TypeScript lib this repository targets.
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

/** The Piscina options of every model pool: `threads` workers, each with one task at a time, kept for ever. */
export function poolOptions(filename: string, workerData: WorkerData, threads: number) {
  return {
    filename,
    workerData,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    concurrentTasksPerWorker: 1,
    // Our own batcher holds the queue; Piscina's only bridges the instant between a slot freeing and a hop.
    maxQueue: Number.POSITIVE_INFINITY,
  };
}

export class WarmPool {
  private readonly cell = new GrowableSharedArrayBuffer(HEADER_BYTES, { maxByteLength: MAX_INIT_BYTES });
  private readonly pool: Piscina<RunTask, unknown>;
  private taken = false;

  /** Starts `threads` worker threads from `workerFile` (a WORKER_FILE or a module wrapping it). */
  constructor(
    readonly threads: number,
    readonly workerFile: string,
  ) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`threads must be a positive integer, got ${threads}`);
    }
    this.pool = new Piscina<RunTask, unknown>(poolOptions(workerFile, { pending: this.cell }, threads));
    // A thread that dies while waiting is replaced (minThreads); an error event must not crash the process.
    this.pool.on("error", () => {});
  }

  /**
   * Names the model every thread loads and hands the pool over (once); undefined when the init does not fit the
   * cell, and the caller starts a pool of its own.
   */
  bind(init: WorkerInit): Piscina<RunTask, unknown> | undefined {
    if (this.taken) throw new Error("this warm pool was already bound to a model");
    const bytes = new TextEncoder().encode(JSON.stringify(init));
    if (HEADER_BYTES + bytes.length > MAX_INIT_BYTES) return undefined;
    this.taken = true;
    this.cell.grow(HEADER_BYTES + bytes.length);
    new Uint8Array(this.cell, HEADER_BYTES, bytes.length).set(bytes);
    const state = new Int32Array(this.cell, 0, 2);
    state[1] = bytes.length;
    Atomics.store(state, 0, 1);
    Atomics.notify(state, 0);
    return this.pool;
  }

  /** Stops the threads of a pool no model was bound to. */
  async destroy(): Promise<void> {
    if (this.taken) return;
    this.taken = true;
    await this.pool.destroy();
  }
}

/** In a worker thread: the init bind() wrote into `cell`, once it is there. */
export async function boundInit(cell: SharedArrayBuffer): Promise<WorkerInit> {
  const state = new Int32Array(cell, 0, 2);
  while (Atomics.load(state, 0) === 0) {
    const waited = waitAsync(state, 0, 0);
    if (waited.async) await waited.value;
  }
  // A copy: TextDecoder does not read shared memory.
  const bytes = new Uint8Array(cell, HEADER_BYTES, state[1]!).slice();
  return JSON.parse(new TextDecoder().decode(bytes)) as WorkerInit;
}
