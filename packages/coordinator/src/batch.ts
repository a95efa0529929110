// Batch jobs in the control plane: submit (resolve the model once, plan shards, publish one task per shard on the
// work queue, then record the job), read, list and cancel — served by every coordinator — and, on the leader's
// pass, progress: a job whose shards are all done is finalized (manifest, merged file or `_SUCCESS`), a job
// with a failed shard fails naming it, and every running job asks placement for its workers. Files are never
// touched here: `BatchFiles` (from @switchyard/jobs) reads inputs and writes the finished output.
import { randomBytes } from "node:crypto";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  casUpdate,
  ensureStream,
  listKeys,
  type ReplicationSetting,
  readAll,
  readValue,
} from "@switchyard/nats";
import {
  BATCH_ACK_WAIT_MS,
  BATCH_MAX_DELIVER,
  BatchJob,
  BatchJobRequest,
  type BatchJobView,
  type ClusterNames,
  type Dtype,
  FINAL_JOB_STATES,
  invalid,
  jobKeys,
  notFound,
  type Shard,
  ShardResult,
  type ShardTask,
  type Signature,
  SwitchyardError,
  type TableFormat,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { Logger } from "pino";
import type { z } from "zod";

/** A job still PENDING this long after it was created lost its submitter midway. */
export const SUBMIT_GRACE_MS = 60_000;

/** What planning a job's files yields: checked paths, the model's feature columns, and the shards. */
export interface PlannedFiles {
  inputs: string[];
  input_format: TableFormat;
  output: string;
  output_format: TableFormat;
  single_file: boolean;
  feature_columns: Array<{ name: string; dtype: Dtype }>;
  shards: Shard[];
  total_rows: number;
  /** Where shard `index`'s part file goes. */
  part(index: number): string;
}

/** The file side of batch jobs, as the coordinator needs it (implemented by @switchyard/jobs). */
export interface BatchFiles {
  plan(request: z.output<typeof BatchJobRequest>, signature: Signature | null): Promise<PlannedFiles>;
  /** Writes the finished output: manifest, merged file (single_file) and `_SUCCESS`; removes staging. */
  finalize(job: BatchJob, results: ShardResult[]): Promise<void>;
}

export interface BatchJobsOptions {
  nc: NatsConnection;
  names: ClusterNames;
  jobs: KV;
  registry: Registry;
  files: BatchFiles;
  log: Logger;
  now?: () => number;
  /** A shard not acked within this is redelivered (default BATCH_ACK_WAIT_MS); workers ping at a third of it. */
  ackWaitMs?: number;
  /** The replica count of the work-queue stream (default: one, an existing stream as it is). */
  replication?: ReplicationSetting;
}

const newJobId = () => `b${randomBytes(6).toString("hex")}`;
const consumerName = (jobId: string) => `job_${jobId}`;

export class BatchJobs {
  private jsm: JetStreamManager | undefined;
  private readonly now: () => number;

  constructor(private readonly o: BatchJobsOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Creates the batch work-queue stream if missing (work-queue retention: an acked task is gone). */
  async start(): Promise<void> {
    this.jsm = await jetstreamManager(this.o.nc);
    await ensureStream(
      this.jsm,
      {
        name: this.o.names.streams.batch,
        subjects: [this.o.names.subjects.allBatchTasks],
        retention: RetentionPolicy.Workqueue,
      },
      this.o.replication,
    );
  }

  async submit(body: unknown, opts: { schedule?: string } = {}): Promise<BatchJobView> {
    const parsed = BatchJobRequest.safeParse(body);
    if (!parsed.success) {
      throw invalid(parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
    }
    const req = parsed.data;
    const previous = req.resume ? await this.get(req.resume) : undefined;
    if (previous) {
      // Its finished parts are reused as they are: the job must be over, and read and write the same files.
      if (!FINAL_JOB_STATES.has(previous.state)) {
        throw new SwitchyardError(
          "RESOURCE_CONFLICT",
          `resume: batch job '${previous.id}' is still ${previous.state}; cancel it first`,
        );
      }
      const was = previous.request as { input?: unknown; output?: unknown };
      if (was.input !== req.input || was.output !== req.output) {
        throw invalid(
          `resume: a resumed job reads and writes what batch job '${previous.id}' did ` +
            `(input '${String(was.input)}', output '${String(was.output)}')`,
        );
      }
    }
    const version = previous
      ? await this.o.registry.getVersion(previous.model.name, previous.model.version)
      : await this.o.registry.resolve(req.model);
    const planned = await this.o.files.plan(req, version.signature);
    const done = previous ? await this.doneShards(previous) : new Set<number>();
    const id = newJobId();
    const job: BatchJob = {
      id,
      kind: "batch",
      request: { ...req },
      model: { uri: req.model, name: version.name, version: version.version },
      inputs: planned.inputs,
      input_format: planned.input_format,
      output: planned.output,
      output_format: planned.output_format,
      single_file: planned.single_file,
      feature_columns: planned.feature_columns,
      on_error: req.on_error,
      shards: planned.shards.length,
      total_rows: planned.total_rows,
      // PENDING until every task is on the queue: a coordinator that dies midway leaves a PENDING job, which the
      // leader fails after SUBMIT_GRACE_MS (its tasks are dropped), never a RUNNING job missing shards.
      state: "PENDING",
      message: "",
      ...(opts.schedule ? { schedule: opts.schedule } : {}),
      ...(previous ? { resumed_from: previous.id } : {}),
      created_at: this.now(),
      started_at: this.now(),
    };
    // Shards the resumed job finished keep their part files and results: copied, not redone.
    for (const index of done) {
      const r = await readValue(this.o.jobs, jobKeys.shard(previous!.id, index), ShardResult, "shard result");
      if (r) await this.o.jobs.put(jobKeys.shard(id, index), JSON.stringify(r.value));
    }
    await this.o.jobs.create(jobKeys.job(id), JSON.stringify(job));
    const subject = this.o.names.subjects.batchTasks(id);
    await this.jsm!.consumers.add(this.o.names.streams.batch, {
      durable_name: consumerName(id),
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: (this.o.ackWaitMs ?? BATCH_ACK_WAIT_MS) * 1_000_000,
      max_deliver: BATCH_MAX_DELIVER,
    });
    const js = jetstream(this.o.nc);
    for (const shard of planned.shards) {
      if (done.has(shard.index)) continue;
      const task: ShardTask = { job_id: id, shard, part: planned.part(shard.index) };
      await js.publish(subject, JSON.stringify(task), { msgID: `${id}:${shard.index}` });
    }
    await casUpdate(
      this.o.jobs,
      jobKeys.job(id),
      BatchJob,
      (cur): BatchJob => {
        if (!cur) throw notFound(`batch job '${id}' does not exist`);
        return cur.state === "PENDING" ? { ...cur, state: "RUNNING" } : cur;
      },
      { what: `batch job '${id}'` },
    );
    if (planned.shards.length === done.size) await this.finish({ ...job, state: "RUNNING" });
    this.o.log.info(
      {
        jobId: id,
        model: `${version.name}/${version.version}`,
        shards: planned.shards.length,
        rows: planned.total_rows,
      },
      "batch job submitted",
    );
    return this.view((await this.get(id)) ?? job);
  }

  async get(id: string): Promise<BatchJob> {
    const found = await readValue(this.o.jobs, jobKeys.job(id), BatchJob, `batch job '${id}'`);
    if (!found) throw notFound(`batch job '${id}' does not exist`);
    return found.value;
  }

  async getView(id: string): Promise<BatchJobView> {
    return this.view(await this.get(id));
  }

  async list(): Promise<{ jobs: BatchJobView[] }> {
    const all = await readAll(this.o.jobs, jobKeys.allJobs, BatchJob, "batch job", { invalid: "skip" });
    const jobs = all.map((r) => r.value).sort((a, b) => b.created_at - a.created_at);
    return { jobs: await Promise.all(jobs.map((j) => this.view(j))) };
  }

  async cancel(id: string): Promise<BatchJobView> {
    const { value } = await casUpdate(
      this.o.jobs,
      jobKeys.job(id),
      BatchJob,
      (cur): BatchJob => {
        if (!cur) throw notFound(`batch job '${id}' does not exist`);
        if (FINAL_JOB_STATES.has(cur.state)) {
          throw new SwitchyardError("RESOURCE_CONFLICT", `batch job '${id}' already ended (${cur.state})`);
        }
        return { ...cur, state: "CANCELED", message: "canceled", finished_at: this.now() };
      },
      { what: `batch job '${id}'` },
    );
    await this.dropTasks(id);
    this.o.log.info({ jobId: id }, "batch job canceled");
    return this.view(value);
  }

  /** Running jobs and their wanted worker count (the leader places them beside replicas). */
  async running(): Promise<BatchJob[]> {
    const all = await readAll(this.o.jobs, jobKeys.allJobs, BatchJob, "batch job", { invalid: "skip" });
    return all.map((r) => r.value).filter((j) => j.state === "RUNNING");
  }

  /** Shards of a running job not yet recorded done or failed (keys only: the results are not read). */
  async shardsLeft(job: BatchJob): Promise<number> {
    return job.shards - (await listKeys(this.o.jobs, jobKeys.shardsOf(job.id))).length;
  }

  /** The leader's pass over running jobs: finish the complete ones, fail the ones with a failed shard. */
  async pass(): Promise<void> {
    const all = await readAll(this.o.jobs, jobKeys.allJobs, BatchJob, "batch job", { invalid: "skip" });
    for (const { value: job } of all) {
      if (job.state === "PENDING" && this.now() - job.created_at > SUBMIT_GRACE_MS) {
        await this.end(
          job,
          "FAILED",
          "the submit was interrupted before every shard was queued; submit again",
        );
      }
    }
    for (const job of await this.running()) {
      try {
        const results = await this.results(job.id);
        const failed = results.find((r) => r.state === "FAILED");
        if (failed && job.on_error === "fail") {
          await this.end(job, "FAILED", `shard ${failed.index} failed: ${failed.error ?? "no reason given"}`);
        } else if (results.length === job.shards) {
          await this.finish(job);
        }
      } catch (err) {
        this.o.log.error({ err, jobId: job.id }, "batch job step failed");
      }
    }
  }

  private async finish(job: BatchJob): Promise<void> {
    const results = (await this.results(job.id)).sort((a, b) => a.index - b.index);
    try {
      await this.o.files.finalize(job, results);
    } catch (err) {
      await this.end(job, "FAILED", `writing the output failed: ${(err as Error).message}`);
      return;
    }
    const failed = results.filter((r) => r.state === "FAILED").length;
    await this.end(job, "SUCCEEDED", failed ? `${failed} shard(s) failed and were skipped` : "");
  }

  private async end(job: BatchJob, state: "SUCCEEDED" | "FAILED", message: string): Promise<void> {
    await casUpdate(
      this.o.jobs,
      jobKeys.job(job.id),
      BatchJob,
      (cur): BatchJob => {
        if (!cur) throw notFound(`batch job '${job.id}' does not exist`);
        // A cancel that landed first wins.
        if (FINAL_JOB_STATES.has(cur.state)) return cur;
        return { ...cur, state, message, finished_at: this.now() };
      },
      { what: `batch job '${job.id}'` },
    );
    await this.dropTasks(job.id);
    this.o.log.info({ jobId: job.id, state, message }, "batch job ended");
  }

  /** Removes the job's consumer and any task left on the queue (a canceled or failed job stops here). */
  private async dropTasks(id: string): Promise<void> {
    await this.jsm!.consumers.delete(this.o.names.streams.batch, consumerName(id)).catch(() => undefined);
    await this.jsm!.streams.purge(this.o.names.streams.batch, {
      filter: this.o.names.subjects.batchTasks(id),
    }).catch(() => undefined);
  }

  private async results(id: string): Promise<ShardResult[]> {
    const all = await readAll(this.o.jobs, jobKeys.shardsOf(id), ShardResult, "shard result", {
      invalid: "skip",
    });
    return all.map((r) => r.value);
  }

  private async doneShards(job: BatchJob): Promise<Set<number>> {
    return new Set((await this.results(job.id)).filter((r) => r.state === "DONE").map((r) => r.index));
  }

  private async view(job: BatchJob): Promise<BatchJobView> {
    const results = await this.results(job.id);
    const done = results.filter((r) => r.state === "DONE");
    return {
      ...job,
      progress: {
        shards_done: done.length,
        shards_failed: results.length - done.length,
        rows_done: done.reduce((a, r) => a + r.rows, 0),
        error_rows: results.reduce((a, r) => a + r.error_rows, 0),
      },
    };
  }
}
