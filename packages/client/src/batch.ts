// Batch jobs from the SDK: `submitBatch`, `batchStatus`, `waitForBatch` — the management API's `batch.*`
// operations, the same bodies as `POST /api/2.0/switchyard/batch/jobs` and `switchyard batch submit`.
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type BatchJobRequest,
  type BatchJobView,
  type BatchSchedule,
  type ClusterNames,
  FINAL_JOB_STATES,
  SwitchyardError,
} from "@switchyard/protocol";
import { callApi } from "./management.js";

/** A schedule as the API returns it: the record plus its next tick (epoch ms). */
export type ScheduleView = BatchSchedule & { next_tick?: number };

export interface WaitOptions {
  /** Called with every status read while waiting (a progress bar, a log line). */
  onProgress?: (job: BatchJobView) => void;
  /** How often to read the status (default 500 ms). */
  intervalMs?: number;
  /** Give up after this long (default: never). */
  timeoutMs?: number;
}

export class BatchApi {
  constructor(
    private readonly nc: NatsConnection,
    readonly names: ClusterNames,
  ) {}

  submit(request: BatchJobRequest): Promise<BatchJobView> {
    return callApi(this.nc, this.names, "batch.submit", request) as Promise<BatchJobView>;
  }

  get(id: string): Promise<BatchJobView> {
    return callApi(this.nc, this.names, "batch.get", { id }) as Promise<BatchJobView>;
  }

  async list(): Promise<BatchJobView[]> {
    const reply = (await callApi(this.nc, this.names, "batch.list", {})) as { jobs?: BatchJobView[] };
    return reply.jobs ?? [];
  }

  cancel(id: string): Promise<BatchJobView> {
    return callApi(this.nc, this.names, "batch.cancel", { id }) as Promise<BatchJobView>;
  }

  /** Schedules: `{name, cron, tz?, job}` submits `job` each tick (`{date}` in input/output = the tick's date). */
  createSchedule(body: {
    name: string;
    cron: string;
    tz?: string;
    job: BatchJobRequest;
  }): Promise<ScheduleView> {
    return callApi(this.nc, this.names, "schedules.create", body) as Promise<ScheduleView>;
  }

  getSchedule(name: string): Promise<ScheduleView> {
    return callApi(this.nc, this.names, "schedules.get", { name }) as Promise<ScheduleView>;
  }

  async listSchedules(): Promise<ScheduleView[]> {
    const reply = (await callApi(this.nc, this.names, "schedules.list", {})) as {
      schedules?: ScheduleView[];
    };
    return reply.schedules ?? [];
  }

  async deleteSchedule(name: string): Promise<void> {
    await callApi(this.nc, this.names, "schedules.delete", { name });
  }

  /**
   * Reads the job's status until it ends (SUCCEEDED, FAILED or CANCELED) and returns its last status. A read that
   * fails with a retryable error (the cluster losing a server, a coordinator taking over) is read again: the job
   * runs on meanwhile.
   */
  async wait(id: string, opts: WaitOptions = {}): Promise<BatchJobView> {
    const end = opts.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.timeoutMs;
    for (;;) {
      const job = await this.get(id).catch((err: unknown) => {
        if (err instanceof SwitchyardError && err.retryable && Date.now() <= end) return undefined;
        throw err;
      });
      if (job) opts.onProgress?.(job);
      if (job && FINAL_JOB_STATES.has(job.state)) return job;
      if (Date.now() > end) {
        throw new SwitchyardError(
          "DEADLINE_EXCEEDED",
          `batch job '${id}' still ${job?.state ?? "unread"} after ${opts.timeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
    }
  }
}
