// Cron schedules of batch jobs, as pure policy: which tick of a schedule is due at an injected `now`, which were
// missed, the record after claiming them, and the job a tick submits. It never reads the clock or touches NATS.
//
// A schedule's cursor is its `last_tick` (the last tick handled), or its `created_at` before the first: a new
// schedule's first tick is the first one after its creation, never a past one. Each tick after the cursor is
// exactly one of: not yet (in the future), due (at most TICK_GRACE_MS old: fire it), or missed (older: no
// coordinator ran a pass in time — recorded as skipped, never fired, so an outage is not replayed in a burst).
import {
  assertResourceName,
  BatchJobRequest,
  BatchSchedule,
  invalid,
  parseModelUri,
  SwitchyardError,
} from "@switchyard/protocol";
import { Cron } from "croner";

/** How late a pass may find a tick and still fire it: well above the leader's loop period (2 s), below a minute. */
export const TICK_GRACE_MS = 60_000;
/** History entries a schedule keeps (oldest dropped first). */
export const SCHEDULE_HISTORY = 20;
/** What replaces `{date}` in a job's input and output: the tick's YYYY-MM-DD in the schedule's zone. */
export const DATE_PLACEHOLDER = "{date}";

export type HistoryEntry = BatchSchedule["history"][number];

/** The IANA time zone `tz`, or INVALID_PARAMETER_VALUE naming the field. */
export function checkZone(tz: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return tz;
  } catch {
    throw invalid(`tz '${tz}' is not an IANA time zone (e.g. 'UTC', 'Europe/Madrid')`);
  }
}

/**
 * The parsed cron expression of a schedule in its zone: five fields (minute hour day-of-month month
 * day-of-week, or a nickname such as `@daily`); seconds are refused, a tick a minute is the finest. In a
 * daylight-saving gap a fixed-time tick (`30 2 * * *`) fires at the first time after the gap, and a local
 * time that occurs twice fires once (croner's rules). INVALID_PARAMETER_VALUE names the field.
 */
export function cronOf(cron: string, tz: string): Cron {
  checkZone(tz);
  const fields = cron.trim() ? cron.trim().split(/\s+/).length : 0;
  if (fields !== 5 && !cron.trim().startsWith("@")) {
    throw invalid(
      `cron '${cron}' is invalid: expected five fields (minute hour day-of-month month day-of-week), got ${fields}`,
    );
  }
  let parsed: Cron;
  try {
    parsed = new Cron(cron, { timezone: tz, mode: "5-part", paused: true });
  } catch (err) {
    const reason = String((err as Error).message ?? err).replace(/^CronPattern: /, "");
    throw invalid(`cron '${cron}' is invalid: ${reason}`);
  }
  if (!parsed.nextRun(new Date(0))) throw invalid(`cron '${cron}' never fires`);
  return parsed;
}

/** The first tick of `cron` strictly after `after` (epoch ms), or null when there is none. */
export function tickAfter(cron: Cron, after: number): number | null {
  return cron.nextRun(new Date(after))?.getTime() ?? null;
}

/** What a pass at `now` does with a schedule. */
export interface TickPlan {
  /** The tick to fire now (the earliest not older than TICK_GRACE_MS). */
  due?: number;
  /** Ticks older than the grace window, to record as one skipped entry. */
  missed?: { count: number; first: number; last: number };
  /** The first tick after `now` (what `schedule list` shows as the next run). */
  next: number | null;
}

/**
 * The ticks after the schedule's cursor up to `now`, sorted into missed ones and the one due. At most one
 * tick is due per pass; with one-minute ticks and a 60 s window a second can only be due at the exact
 * boundary, and the next pass fires it.
 */
export function planTicks(schedule: BatchSchedule, now: number): TickPlan {
  const cron = cronOf(schedule.cron, schedule.tz);
  const plan: TickPlan = { next: tickAfter(cron, now) };
  for (let t = tickAfter(cron, cursorOf(schedule)); t !== null && t <= now; t = tickAfter(cron, t)) {
    if (now - t <= TICK_GRACE_MS) {
      plan.due = t;
      break;
    }
    plan.missed = plan.missed
      ? { ...plan.missed, count: plan.missed.count + 1, last: t }
      : { count: 1, first: t, last: t };
  }
  return plan;
}

const cursorOf = (s: BatchSchedule) => s.last_tick ?? s.created_at;

/** Why missed ticks were skipped, as their history entry says. */
export const MISSED_REASON = "missed: no coordinator ran a pass within the grace window";

/**
 * The record after claiming what `planTicks` found at `now`: missed ticks as one skipped entry, the due tick
 * as an entry with no outcome yet, `last_tick` moved past both; plus the tick to fire and what was missed.
 * Null when there is nothing to claim (no tick due or missed, e.g. another coordinator claimed it first).
 */
export function claimTicks(
  schedule: BatchSchedule,
  now: number,
): { record: BatchSchedule; fire?: number; missed?: TickPlan["missed"] } | null {
  const { due, missed } = planTicks(schedule, now);
  if (due === undefined && !missed) return null;
  const added: HistoryEntry[] = [];
  if (missed) {
    added.push({
      tick: missed.first,
      skipped: MISSED_REASON,
      ...(missed.count > 1 ? { through: missed.last, count: missed.count } : {}),
    });
  }
  if (due !== undefined) added.push({ tick: due });
  const record: BatchSchedule = {
    ...schedule,
    last_tick: due ?? missed!.last,
    history: [...schedule.history, ...added].slice(-SCHEDULE_HISTORY),
  };
  return { record, ...(due === undefined ? {} : { fire: due }), ...(missed ? { missed } : {}) };
}

/** What became of a claimed tick: the job it submitted, or why the submit failed. */
export type TickOutcome = { job_id: string } | { error: string };

/** The record with `tick`'s history entry completed by its outcome (unchanged if the entry is gone). */
export function recordOutcome(schedule: BatchSchedule, tick: number, outcome: TickOutcome): BatchSchedule {
  const result =
    "job_id" in outcome ? { job_id: outcome.job_id } : { skipped: `submit failed: ${outcome.error}` };
  return {
    ...schedule,
    history: schedule.history.map((h) =>
      h.tick === tick && !h.job_id && !h.skipped ? { ...h, ...result } : h,
    ),
  };
}

/** The tick's calendar date in `tz`, YYYY-MM-DD. */
export function tickDate(tick: number, tz: string): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(new Date(tick));
  const part = (type: string) => parts.find((p) => p.type === type)?.value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** The job a tick submits: the schedule's job with `{date}` in `input` and `output` set to the tick's date. */
export function tickRequest(schedule: BatchSchedule, tick: number): BatchJobRequest {
  const parsed = BatchJobRequest.safeParse(schedule.job);
  if (!parsed.success) {
    throw invalid(`schedule '${schedule.name}' has an invalid job: ${parsed.error.message}`);
  }
  const date = tickDate(tick, schedule.tz);
  return {
    ...parsed.data,
    input: parsed.data.input.replaceAll(DATE_PLACEHOLDER, date),
    output: parsed.data.output.replaceAll(DATE_PLACEHOLDER, date),
  };
}

/** The body of `schedules.create`: the fields of a schedule a user sets. */
export interface ScheduleRequest {
  name: string;
  cron: string;
  /** Default UTC. */
  tz?: string;
  job: BatchJobRequest;
}

const REQUEST_FIELDS = new Set(["name", "cron", "tz", "job"]);

/**
 * A new schedule record from a `schedules.create` body, created at `now`; every problem at once
 * (INVALID_PARAMETER_VALUE), each naming its field. A job that resumes another is refused: a schedule
 * submits new jobs.
 */
export function newSchedule(body: Record<string, unknown>, now: number): BatchSchedule {
  const problems: string[] = [];
  /** Runs a check that throws INVALID_PARAMETER_VALUE; its message, after `prefix`, is one problem. */
  const check = (fn: () => unknown, prefix = "") => {
    try {
      fn();
      return true;
    } catch (err) {
      if (!(err instanceof SwitchyardError)) throw err;
      problems.push(prefix + err.message);
      return false;
    }
  };
  for (const key of Object.keys(body)) {
    if (!REQUEST_FIELDS.has(key)) problems.push(`${key}: unknown field (expected name, cron, tz, job)`);
  }
  const { name, cron, tz = "UTC", job } = body;
  if (typeof name !== "string") problems.push("name: expected a string");
  else check(() => assertResourceName(name, "name"));
  const zone = typeof tz === "string" && check(() => checkZone(tz)) ? tz : "UTC";
  if (typeof tz !== "string") problems.push("tz: expected a string (an IANA time zone)");
  if (typeof cron !== "string") problems.push("cron: expected a string (a five-field cron expression)");
  else check(() => cronOf(cron, zone));
  if (typeof job !== "object" || job === null || Array.isArray(job)) {
    problems.push("job: expected an object (a batch job request)");
  } else {
    const parsed = BatchJobRequest.safeParse(job);
    if (!parsed.success) {
      for (const i of parsed.error.issues)
        problems.push(`${["job", ...i.path.map(String)].join(".")}: ${i.message}`);
    }
    const { model, resume } = job as Record<string, unknown>;
    if (typeof model === "string" && model) check(() => parseModelUri(model), "job.model: ");
    if (resume !== undefined) {
      problems.push("job.resume: a schedule cannot resume a job; each tick submits a new one");
    }
  }
  if (problems.length) {
    throw invalid(
      `invalid schedule (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${problems.join("; ")}`,
    );
  }
  return BatchSchedule.parse({ name, cron, tz, job, created_at: now, history: [] });
}

/** A schedule as the management API returns it: the record and its next tick after `now`. */
export type ScheduleView = BatchSchedule & { next_tick: number | null };

export function scheduleView(schedule: BatchSchedule, now: number): ScheduleView {
  return { ...schedule, next_tick: tickAfter(cronOf(schedule.cron, schedule.tz), now) };
}
