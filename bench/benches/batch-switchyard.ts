// The cluster contenders of the batch bench: a Switchyard batch job with N workers, run the way users run it —
// one `switchyard up` (a coordinator and one node agent with a thread budget of 2), the model registered with
// the CLI, the job submitted with the SDK. Timed from the submit call to the job's SUCCEEDED (the merged output,
// its manifest and the job record written); the `up` start and the registration are not in it, worker process
// start and model load are.
import { readFileSync } from "node:fs";
import { SwitchyardClient } from "@switchyard/client";
import { BatchJobRequest, type BatchJobView, type ShardResult } from "@switchyard/protocol";
import { redact, registerModel, type SwitchyardCluster, startSwitchyard } from "../lib/switchyard.js";
import { type SampledProcess, TreeSampler } from "../lib/tree-sampler.js";
import { fmt } from "../types.js";
import type { BatchCell, BatchContender, CellRun } from "./batch.js";

/** The node agent's thread budget: the machine the targets were set for has 2 cores. */
export const NODE_THREADS = 2;
/** Rows per shard when the request names none: the product's default, which the full run keeps. */
export const DEFAULT_SHARD_ROWS = BatchJobRequest.parse({ model: "m", input: "i", output: "o" }).shard_rows;
/** A batch worker's command line (the agent runs `node …/@switchyard/jobs/dist/batch/main.js`). */
const isBatchWorker = (cmdline: string) => /\bbatch\/main\.js\b/.test(cmdline);

/** One `switchyard up` for every cluster cell, started on first use, with each model registered once. */
export class BatchCluster {
  #up: Promise<{ sy: SwitchyardCluster; client: SwitchyardClient }> | undefined;
  readonly #models = new Map<string, Promise<string>>();

  /** Started with this log (the first cell's), with the bench's files under its data roots (see batch.ts). */
  private start(log: (m: string) => void) {
    this.#up ??= (async () => {
      const sy = await startSwitchyard(log, { nodeThreads: NODE_THREADS });
      try {
        const client = await SwitchyardClient.connect({
          servers: sy.file.natsUrl,
          cluster: sy.file.cluster,
          name: "switchyard-bench-batch",
        });
        return { sy, client };
      } catch (err) {
        await sy.stop();
        throw new Error(`connecting to ${redact(sy.file.natsUrl)}: ${(err as Error).message}`);
      }
    })();
    return this.#up;
  }

  /** `models:/bench-<key>/<version>` of the cell's model, registered with `switchyard models register`. */
  private modelUri(sy: SwitchyardCluster, cell: BatchCell): Promise<string> {
    let uri = this.#models.get(cell.modelFile);
    if (!uri) {
      const name = `bench-${cell.model.toLowerCase()}`;
      uri = registerModel(sy, name, cell.modelFile).then((v) => `models:/${name}/${v}`);
      this.#models.set(cell.modelFile, uri);
    }
    return uri;
  }

  /** Starts the cluster (once) and registers the cell's model (once per model). */
  async prepare(cell: BatchCell): Promise<void> {
    const { sy } = await this.start(cell.log);
    await this.modelUri(sy, cell);
  }

  async close(): Promise<void> {
    const up = await this.#up?.catch(() => undefined);
    this.#up = undefined;
    this.#models.clear();
    if (!up) return;
    await up.client.close();
    await up.sy.stop();
  }

  /** Submits the cell's job, waits for its end, and returns its figures (see `switchyardBatch`). */
  async run(cell: BatchCell, workers: number): Promise<CellRun> {
    const { shardRows } = cell;
    const { sy, client } = await this.start(cell.log);
    const model = await this.modelUri(sy, cell);
    const output = `${cell.outDir}/scored.${cell.format}`;
    const request: BatchJobRequest = {
      model,
      input: cell.input,
      output,
      columns: cell.features,
      workers,
      ...(shardRows === undefined ? {} : { shard_rows: shardRows }),
    };
    const sampler = new TreeSampler(sy.pid, isBatchWorker);
    let end: BatchJobView;
    let submitted: number;
    let accepted: number;
    let processes: SampledProcess[];
    let cpuS: number;
    try {
      submitted = Date.now();
      const job = await client.submitBatch(request);
      accepted = Date.now();
      end = await client.waitForBatch(job.id, { intervalMs: 100, timeoutMs: 60 * 60_000 });
      if (end.state !== "SUCCEEDED") throw new Error(`job ${end.id} ${end.state}: ${end.message}`);
    } finally {
      // The job's workers idle from here until placement stops them (the next cell's sampler ignores them).
      ({ picked: processes, cpuS } = sampler.stop());
    }
    if (processes.length === 0)
      throw new Error(`no batch worker process (${isBatchWorker}) seen under ${sy.pid}`);

    const manifest = JSON.parse(readFileSync(`${output}.manifest.json`, "utf8")) as { shards: ShardResult[] };
    const breakdown = timeBreakdown(submitted, end.finished_at!, manifest.shards);
    const redone = manifest.shards.filter((s) => s.attempts > 1).map((s) => s.index);
    const since = (t: number) => `${fmt((t - submitted) / 1000, 2)} s`;
    cell.log(
      `  job ${end.id}: ${end.shards} shards of ≤ ${shardRows ?? DEFAULT_SHARD_ROWS} rows` +
        `${redone.length ? `, shards ${redone} redelivered` : ""}; submit call returned at ${since(accepted)}, ` +
        `worker processes seen at ${processes.map((p) => since(p.seenAt)).join(", ")}, first shard started at ` +
        `${since(Math.min(...manifest.shards.map((s) => s.started_at)))}`,
    );
    for (const w of breakdown.workers) {
      cell.log(
        `  worker ${w.id}: ${w.shards} shards, busy ${fmt(w.busyMs / 1000, 2)} s (read ${fmt(w.readMs / 1000, 2)}, ` +
          `score ${fmt(w.scoreMs / 1000, 2)}, write ${fmt(w.writeMs / 1000, 2)}), in shards ${fmt(w.wallMs / 1000, 2)} s, ` +
          `first shard at ${since(w.firstStart)}, last done at ${since(w.lastEnd)}`,
      );
    }
    cell.log(
      `  worker processes: ${processes.map((p) => `pid ${p.pid} ${fmt(p.cpuS, 1)} CPU s, peak RSS ${fmt(p.peakRssMiB, 0)} MiB`).join("; ")}`,
    );
    return {
      rows: end.progress.rows_done,
      totalS: (end.finished_at! - submitted) / 1000,
      phases: breakdown.phases,
      cpuS,
      peakRssMiB: processes.map((p) => p.peakRssMiB),
      output,
    };
  }
}

/**
 * A contender: the cell scored by a batch job with `workers` workers, into one file like the baseline's, held to
 * `target` × the baseline's rows/s.
 */
export function switchyardBatch(cluster: BatchCluster, workers: number, target: number): BatchContender {
  return {
    name: `Switchyard batch, ${workers} worker${workers === 1 ? "" : "s"}`,
    target,
    prepare: (cell) => cluster.prepare(cell),
    run: (cell) => cluster.run(cell, workers),
    close: () => cluster.close(),
  };
}

interface WorkerTime {
  id: string;
  shards: number;
  readMs: number;
  scoreMs: number;
  writeMs: number;
  /** read + score + write. */
  busyMs: number;
  /** Σ (finished_at − started_at) of its shards: busy plus what a shard costs around them (errors file, KV). */
  wallMs: number;
  firstStart: number;
  lastEnd: number;
}

/**
 * Where the time of a job went, in seconds, from its shard results. setup: submit → the first shard starts
 * (planning, placing workers, process start, model load). read/score/write: the busiest worker's sums (the
 * critical path; another worker ran beside it). finish: the last shard done → SUCCEEDED (the leader sees it,
 * merges the parts, writes the manifest). coordination: the rest — between a worker's shards (task pull,
 * result in KV, ack), inside a shard outside its three phases, and any wait of the busiest worker.
 */
export function timeBreakdown(submitted: number, finished: number, shards: readonly ShardResult[]) {
  const workers = new Map<string, WorkerTime>();
  for (const s of shards) {
    const w = workers.get(s.worker) ?? {
      id: s.worker,
      shards: 0,
      readMs: 0,
      scoreMs: 0,
      writeMs: 0,
      busyMs: 0,
      wallMs: 0,
      firstStart: s.started_at,
      lastEnd: s.finished_at,
    };
    w.shards++;
    w.readMs += s.timings.read_ms;
    w.scoreMs += s.timings.score_ms;
    w.writeMs += s.timings.write_ms;
    w.busyMs += s.timings.read_ms + s.timings.score_ms + s.timings.write_ms;
    w.wallMs += s.finished_at - s.started_at;
    w.firstStart = Math.min(w.firstStart, s.started_at);
    w.lastEnd = Math.max(w.lastEnd, s.finished_at);
    workers.set(s.worker, w);
  }
  const all = [...workers.values()];
  const busiest = all.reduce((a, b) => (b.busyMs > a.busyMs ? b : a));
  const setupMs = Math.min(...shards.map((s) => s.started_at)) - submitted;
  const finishMs = finished - Math.max(...shards.map((s) => s.finished_at));
  const totalMs = finished - submitted;
  return {
    workers: all,
    phases: {
      setup: setupMs / 1000,
      read: busiest.readMs / 1000,
      score: busiest.scoreMs / 1000,
      write: busiest.writeMs / 1000,
      finish: finishMs / 1000,
      coordination: (totalMs - setupMs - finishMs - busiest.busyMs) / 1000,
    },
  };
}
