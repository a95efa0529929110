// The shell around the schedule policy: once per leader pass, read every schedule from the jobs bucket, claim
// its due and missed ticks on the record with compare-and-set, then submit the due tick's job. It keeps no
// state between passes (a new leader starts from KV) and never retries a tick it claimed.
import type { KV } from "@nats-io/kv";
import { casUpdate, readAll } from "@switchyard/nats";
import { type BatchJobRequest, BatchSchedule, jobKeys } from "@switchyard/protocol";
import type { Logger } from "pino";
import { claimTicks, recordOutcome, type TickOutcome, tickRequest } from "./schedules.js";

/** Submits a tick's batch job (the batch submit path); `origin` is for the job record's `schedule` field. */
export type SubmitBatch = (
  request: BatchJobRequest,
  origin: { schedule: string; tick: number },
) => Promise<{ job_id: string }>;

export interface ScheduleRunnerOptions {
  /** The `<cluster>_jobs` bucket. */
  jobs: KV;
  submit: SubmitBatch;
  log: Logger;
  /** The clock (epoch ms); injected by tests. */
  now?: () => number;
}

/** Thrown inside a compare-and-set to leave the record as it is. */
class Unchanged extends Error {}

export class ScheduleRunner {
  private readonly now: () => number;

  constructor(private readonly o: ScheduleRunnerOptions) {
    this.now = o.now ?? Date.now;
  }

  /** One pass over every schedule; one schedule's failure is logged and never stops the others. */
  async pass(): Promise<void> {
    const now = this.now();
    const all = await readAll(this.o.jobs, jobKeys.allSchedules, BatchSchedule, "batch schedule", {
      invalid: "skip",
      onSkip: (key, problem) => this.o.log.warn({ key, problem }, "unreadable schedule left alone"),
    });
    await Promise.all(
      all.map(({ value }) =>
        this.run(value, now).catch((err: unknown) =>
          this.o.log.error({ err, schedule: value.name }, "schedule pass failed"),
        ),
      ),
    );
  }

  /**
   * Claim, then submit. The claim (a compare-and-set moving `last_tick` past the tick) is what makes a tick
   * fire once: two coordinators that both think they lead during a lease handover both read the schedule, but
   * only one write succeeds, and the other re-plans on the new record and finds nothing due. Submitting first
   * and recording after could submit twice. The price is on the other side: a submit that fails after the
   * claim is not retried — a failure (a timeout, say) does not prove no job was created, and a second job for
   * one tick is worse than none — so the tick's entry records why instead. If this process dies between claim
   * and outcome, the entry stays with neither a job id nor a reason.
   */
  private async run(seen: BatchSchedule, now: number): Promise<void> {
    if (!claimTicks(seen, now)) return; // the common case: nothing due, no write
    const key = jobKeys.schedule(seen.name);
    const what = `schedule '${seen.name}'`;
    let claim: NonNullable<ReturnType<typeof claimTicks>> | undefined;
    try {
      await casUpdate(
        this.o.jobs,
        key,
        BatchSchedule,
        (current) => {
          claim = (current && claimTicks(current, now)) ?? undefined;
          if (!claim) throw new Unchanged();
          return claim.record;
        },
        { what },
      );
    } catch (err) {
      if (err instanceof Unchanged) return; // deleted, or another coordinator claimed it first
      throw err;
    }
    const { record: claimed, fire: tick, missed } = claim!;
    const log = this.o.log.child({ schedule: seen.name });
    if (missed) log.warn(missed, "ticks missed while no coordinator ran: recorded as skipped");
    if (tick === undefined) return;
    let outcome: TickOutcome;
    try {
      const { job_id } = await this.o.submit(tickRequest(claimed, tick), { schedule: seen.name, tick });
      outcome = { job_id };
      log.info({ tick, jobId: job_id }, "schedule fired");
    } catch (err) {
      outcome = { error: String((err as Error)?.message ?? err) };
      log.error({ err, tick }, "scheduled job not submitted");
    }
    await casUpdate(
      this.o.jobs,
      key,
      BatchSchedule,
      (current) => {
        if (!current) throw new Unchanged();
        return recordOutcome(current, tick, outcome);
      },
      { what },
    ).catch((err: unknown) => {
      if (!(err instanceof Unchanged)) throw err; // deleted while it submitted: nothing to record on
    });
  }
}
