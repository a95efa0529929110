// A batch worker: one process of a running batch job. It loads the job's resolved model version once, then pulls
// the job's shard tasks from the work queue one at a time: score the shard into its part file (written then
// renamed, so a redelivered shard rewrites the same part), record the shard's result in KV, and only then ack
// (double ack: the ack is confirmed). A worker killed mid-shard leaves the task unacked; it is redelivered after
// the ack wait and redone. A shard that fails on its last delivery is recorded FAILED and terminated.
import { rm, writeFile } from "node:fs/promises";
import { type Consumer, type JsMsg, jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { readValue } from "@switchyard/nats";
import {
  BATCH_MAX_DELIVER,
  BatchJob,
  type BatchWorkerSpec,
  type ClusterNames,
  jobKeys,
  type ShardResult,
  ShardTask,
  SwitchyardError,
} from "@switchyard/protocol";
import type { ModelRunner } from "@switchyard/runtime";
import type { Logger } from "pino";
import { writeThenRename } from "../tables/parts.js";
import type { BadRow, Scorer, ShardJob, ShardOutcome } from "../tables/score-shard.js";

/** What the worker needs of the table layer: score one shard into its part file (tables/score-shard.ts). */
export type ShardScorer = (job: ShardJob, score: Scorer) => Promise<ShardOutcome>;

/** How long one pull waits for a task before looking again. */
const PULL_WAIT_MS = 5_000;

export interface BatchWorkerOptions {
  nc: NatsConnection;
  names: ClusterNames;
  jobs: KV;
  spec: BatchWorkerSpec;
  runner: ModelRunner;
  scorer: ShardScorer;
  log: Logger;
}

export class BatchWorker {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private progressMs = 10_000;

  constructor(private readonly o: BatchWorkerOptions) {}

  async start(): Promise<void> {
    const job = await this.job();
    const consumer = await jetstream(this.o.nc).consumers.get(this.o.names.streams.batch, `job_${job.id}`);
    // Report progress on a shard at a third of the consumer's ack wait, so a long shard is never redelivered.
    this.progressMs = Math.max(
      100,
      ((await consumer.info(true)).config.ack_wait ?? 30_000_000_000) / 3 / 1_000_000,
    );
    this.loop = this.run(job, consumer);
  }

  /** Finishes the shard in hand (or gives it back), then stops pulling. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async job(): Promise<BatchJob> {
    const found = await readValue(this.o.jobs, jobKeys.job(this.o.spec.job_id), BatchJob, "batch job");
    if (!found)
      throw new SwitchyardError(
        "RESOURCE_DOES_NOT_EXIST",
        `batch job '${this.o.spec.job_id}' does not exist`,
      );
    return found.value;
  }

  private async run(job: BatchJob, consumer: Consumer): Promise<void> {
    while (!this.stopped) {
      try {
        const msgs = await consumer.fetch({ max_messages: 1, expires: PULL_WAIT_MS });
        for await (const msg of msgs) {
          await this.handle(job, msg);
          if (this.stopped) break;
        }
      } catch (err) {
        if (this.stopped) break;
        // The consumer is deleted when the job ends (done, failed or canceled): nothing is left for this worker,
        // which waits quietly for placement to stop it. Anything else is worth a warning, and a retry.
        const ended = /consumer (deleted|not found)|no responders/i.test(String(err));
        if (ended) this.o.log.debug({ err: String(err) }, "job ended; waiting to be stopped");
        else this.o.log.warn({ err: String(err) }, "pulling shard tasks failed");
        await new Promise((r) => setTimeout(r, ended ? 5_000 : 1_000));
      }
    }
  }

  private async handle(job: BatchJob, msg: JsMsg): Promise<void> {
    const parsed = ShardTask.safeParse(msg.json());
    if (!parsed.success) {
      this.o.log.error({ err: parsed.error.message }, "malformed shard task terminated");
      msg.term("malformed shard task");
      return;
    }
    const task = parsed.data;
    const attempts = msg.info.deliveryCount;
    const started = Date.now();
    const progress = setInterval(() => msg.working(), this.progressMs);
    const log = this.o.log.child({ jobId: job.id, shard: task.shard.index, attempt: attempts });
    try {
      const outcome = await this.o.scorer(
        {
          shard: task.shard,
          format: job.input_format,
          features: job.feature_columns,
          onError: job.on_error,
          part: task.part,
          outputFormat: job.output_format,
        },
        (features) => this.o.runner.predict(features),
      );
      await writeShardErrors(task.part, task.shard.file, outcome.badRows);
      await this.result(job, {
        index: task.shard.index,
        state: "DONE",
        rows: outcome.rows,
        error_rows: outcome.badRows.length,
        part: task.part,
        attempts,
        worker: this.o.spec.worker_id,
        started_at: started,
        finished_at: Date.now(),
        timings: outcome.timings,
      });
      await msg.ackAck();
      log.info({ rows: outcome.rows, ms: Date.now() - started }, "shard done");
    } catch (err) {
      const reason = (err as Error).message ?? String(err);
      const last = attempts >= BATCH_MAX_DELIVER;
      log.warn({ reason, last }, "shard failed");
      if (last || (err instanceof SwitchyardError && !err.retryable && err.code !== "INTERNAL_ERROR")) {
        await this.result(job, {
          index: task.shard.index,
          state: "FAILED",
          rows: 0,
          error_rows: 0,
          part: task.part,
          attempts,
          worker: this.o.spec.worker_id,
          started_at: started,
          finished_at: Date.now(),
          timings: { read_ms: 0, score_ms: 0, write_ms: 0 },
          error: reason,
        });
        msg.term(reason.slice(0, 200));
      } else {
        msg.nak(1_000);
      }
    } finally {
      clearInterval(progress);
    }
  }

  private async result(job: BatchJob, r: ShardResult): Promise<void> {
    await this.o.jobs.put(jobKeys.shard(job.id, r.index), JSON.stringify(r));
  }
}

/** Where a shard's skipped rows go: next to its part, merged into `_errors.jsonl` when the job finishes. */
export const errorsPathOf = (part: string) => `${part}.errors.jsonl`;

/**
 * Writes (or, with none, removes) a shard's skipped rows — file, 1-based row, column, reason, the row — written
 * then renamed, so a redone shard replaces them.
 */
async function writeShardErrors(part: string, file: string, rows: BadRow[]): Promise<void> {
  const path = errorsPathOf(part);
  if (rows.length === 0) {
    await rm(path, { force: true });
    return;
  }
  const lines = rows.map(
    (r) =>
      `${JSON.stringify({ file, row: r.row, column: r.column, reason: r.reason, values: JSON.parse(r.raw) })}\n`,
  );
  await writeThenRename(path, (tmp) => writeFile(tmp, lines.join("")));
}
