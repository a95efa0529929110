// The schedule policy with an injected clock: next ticks in UTC and in Europe/Madrid across both DST changes,
// `{date}` in the schedule's zone, a due tick claimed once, ticks missed in an outage recorded as one skipped
// entry and never fired, and every validation error naming its field. Expected instants are worked out by hand
// from the zone's offsets (Madrid: UTC+1 in winter, UTC+2 from 2025-03-30 01:00Z to 2025-10-26 01:00Z).
import {
  claimTicks,
  cronOf,
  MISSED_REASON,
  newSchedule,
  planTicks,
  recordOutcome,
  SCHEDULE_HISTORY,
  TICK_GRACE_MS,
  tickAfter,
  tickDate,
  tickRequest,
} from "@switchyard/coordinator";
import { type BatchSchedule, SwitchyardError } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const at = (iso: string) => Date.parse(iso);
const job = { model: "models:/fraud@champion", input: "in/{date}.parquet", output: "scored/{date}/" };

function schedule(cron: string, createdAt: string, extra: Partial<BatchSchedule> = {}): BatchSchedule {
  return { ...newSchedule({ name: "nightly", cron, job }, at(createdAt)), ...extra };
}

/** The `n` ticks after `from`, as ISO strings. */
function ticks(cron: string, tz: string, from: string, n: number): string[] {
  const c = cronOf(cron, tz);
  const out: string[] = [];
  for (let t = at(from); out.length < n; ) {
    t = tickAfter(c, t)!;
    out.push(new Date(t).toISOString());
  }
  return out;
}

function invalidMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe("INVALID_PARAMETER_VALUE");
    return (err as Error).message;
  }
  throw new Error("expected an INVALID_PARAMETER_VALUE error");
}

describe("next tick", () => {
  it("in UTC, strictly after the instant given", () => {
    expect(ticks("0 2 * * *", "UTC", "2025-03-29T02:00:00Z", 3)).toEqual([
      "2025-03-30T02:00:00.000Z",
      "2025-03-31T02:00:00.000Z",
      "2025-04-01T02:00:00.000Z",
    ]);
    expect(planTicks(schedule("0 2 * * *", "2025-03-29T00:00:00Z"), at("2025-03-29T10:00:00Z")).next).toBe(
      at("2025-03-30T02:00:00Z"),
    );
  });

  it("in Europe/Madrid, at the same wall-clock time across both DST changes", () => {
    // 09:00 local is 08:00Z in winter and 07:00Z in summer.
    expect(ticks("0 9 * * *", "Europe/Madrid", "2025-03-28T12:00:00Z", 3)).toEqual([
      "2025-03-29T08:00:00.000Z",
      "2025-03-30T07:00:00.000Z",
      "2025-03-31T07:00:00.000Z",
    ]);
    expect(ticks("0 9 * * *", "Europe/Madrid", "2025-10-25T00:00:00Z", 2)).toEqual([
      "2025-10-25T07:00:00.000Z",
      "2025-10-26T08:00:00.000Z",
    ]);
    // 02:30 does not exist on 2025-03-30 (02:00 → 03:00): the tick is the first time after the gap, 03:00
    // CEST; on 2025-10-26 02:30 occurs twice and fires once, at the first (CEST) occurrence.
    expect(ticks("30 2 * * *", "Europe/Madrid", "2025-03-29T00:00:00Z", 3)).toEqual([
      "2025-03-29T01:30:00.000Z",
      "2025-03-30T01:00:00.000Z",
      "2025-03-31T00:30:00.000Z",
    ]);
    expect(ticks("30 2 * * *", "Europe/Madrid", "2025-10-25T00:00:00Z", 3)).toEqual([
      "2025-10-25T00:30:00.000Z",
      "2025-10-26T00:30:00.000Z",
      "2025-10-27T01:30:00.000Z",
    ]);
  });
});

describe("{date}", () => {
  it("is the tick's date in the schedule's zone, not UTC's", () => {
    // 00:30 in Madrid on 15 June is 22:30Z on 14 June.
    const tick = ticks("30 0 * * *", "Europe/Madrid", "2025-06-14T12:00:00Z", 1)[0]!;
    expect(tick).toBe("2025-06-14T22:30:00.000Z");
    expect(tickDate(at(tick), "Europe/Madrid")).toBe("2025-06-15");
    expect(tickDate(at(tick), "UTC")).toBe("2025-06-14");
    const madrid = schedule("30 0 * * *", "2025-06-14T12:00:00Z", { tz: "Europe/Madrid" });
    expect(tickRequest(madrid, at(tick))).toEqual({
      model: "models:/fraud@champion",
      input: "in/2025-06-15.parquet",
      output: "scored/2025-06-15/",
      shard_rows: 100_000,
      on_error: "fail",
    });
    expect(tickRequest({ ...madrid, tz: "UTC" }, at(tick))).toMatchObject({
      input: "in/2025-06-14.parquet",
      output: "scored/2025-06-14/",
    });
  });
});

describe("claiming ticks", () => {
  it("fires a due tick once, within the grace window", () => {
    const s = schedule("0 * * * *", "2025-06-14T10:20:00Z");
    expect(claimTicks(s, at("2025-06-14T10:59:59Z"))).toBeNull();
    const claim = claimTicks(s, at("2025-06-14T11:00:05Z"));
    expect(claim).toEqual({
      fire: at("2025-06-14T11:00:00Z"),
      record: {
        ...s,
        last_tick: at("2025-06-14T11:00:00Z"),
        history: [{ tick: at("2025-06-14T11:00:00Z") }],
      },
    });
    // Claimed: no later pass, by this coordinator or another, finds it due again.
    expect(claimTicks(claim!.record, at("2025-06-14T11:00:06Z"))).toBeNull();
    expect(claimTicks(claim!.record, at("2025-06-14T11:00:59Z"))).toBeNull();
    // The grace window's edge: 60 s late still fires, one millisecond more is missed.
    expect(claimTicks(s, at("2025-06-14T11:00:00Z") + TICK_GRACE_MS)?.fire).toBe(at("2025-06-14T11:00:00Z"));
    expect(claimTicks(s, at("2025-06-14T11:00:00Z") + TICK_GRACE_MS + 1)).toEqual({
      missed: { count: 1, first: at("2025-06-14T11:00:00Z"), last: at("2025-06-14T11:00:00Z") },
      record: {
        ...s,
        last_tick: at("2025-06-14T11:00:00Z"),
        history: [{ tick: at("2025-06-14T11:00:00Z"), skipped: MISSED_REASON }],
      },
    });
  });

  it("never fires a tick from before the schedule was created", () => {
    const s = schedule("0 2 * * *", "2025-06-14T02:00:30Z");
    expect(planTicks(s, at("2025-06-14T02:00:40Z"))).toEqual({ next: at("2025-06-15T02:00:00Z") });
    expect(claimTicks(s, at("2025-06-14T02:00:40Z"))).toBeNull();
  });

  it("records the ticks of a 3-hour outage as one skipped entry and fires only the next one after it", () => {
    const s = schedule("0 * * * *", "2025-06-14T09:30:00Z", {
      last_tick: at("2025-06-14T10:00:00Z"),
      history: [{ tick: at("2025-06-14T10:00:00Z"), job_id: "j10" }],
    });
    // Back at 13:30: 11:00, 12:00 and 13:00 were missed; none is fired.
    const back = claimTicks(s, at("2025-06-14T13:30:00Z"));
    expect(back).toEqual({
      missed: { count: 3, first: at("2025-06-14T11:00:00Z"), last: at("2025-06-14T13:00:00Z") },
      record: {
        ...s,
        last_tick: at("2025-06-14T13:00:00Z"),
        history: [
          { tick: at("2025-06-14T10:00:00Z"), job_id: "j10" },
          {
            tick: at("2025-06-14T11:00:00Z"),
            skipped: MISSED_REASON,
            through: at("2025-06-14T13:00:00Z"),
            count: 3,
          },
        ],
      },
    });
    expect(claimTicks(back!.record, at("2025-06-14T13:59:00Z"))).toBeNull();
    const next = claimTicks(back!.record, at("2025-06-14T14:00:02Z"));
    expect(next?.fire).toBe(at("2025-06-14T14:00:00Z"));
    expect(next?.missed).toBeUndefined();

    // Back just after a tick: the older ones are skipped and that one still fires.
    const justAfter = claimTicks(s, at("2025-06-14T13:00:20Z"));
    expect(justAfter?.fire).toBe(at("2025-06-14T13:00:00Z"));
    expect(justAfter?.record.history.slice(1)).toEqual([
      {
        tick: at("2025-06-14T11:00:00Z"),
        skipped: MISSED_REASON,
        through: at("2025-06-14T12:00:00Z"),
        count: 2,
      },
      { tick: at("2025-06-14T13:00:00Z") },
    ]);
  });

  it("keeps the last SCHEDULE_HISTORY entries, and completes a claimed tick with its outcome", () => {
    let s = schedule("0 * * * *", "2025-06-14T00:30:00Z");
    const fired: number[] = [];
    for (let h = 1; h <= SCHEDULE_HISTORY + 5; h++) {
      const claim = claimTicks(s, at("2025-06-14T00:00:10Z") + h * 3_600_000)!;
      fired.push(claim.fire!);
      s = recordOutcome(claim.record, claim.fire!, { job_id: `j${h}` });
    }
    expect(new Set(fired).size).toBe(SCHEDULE_HISTORY + 5);
    expect(s.history).toHaveLength(SCHEDULE_HISTORY);
    expect(s.history[0]).toEqual({ tick: at("2025-06-14T06:00:00Z"), job_id: "j6" });
    expect(s.history.at(-1)).toEqual({ tick: at("2025-06-15T01:00:00Z"), job_id: "j25" });

    const failed = claimTicks(s, at("2025-06-15T02:00:01Z"))!;
    expect(
      recordOutcome(failed.record, failed.fire!, { error: "model 'fraud' does not exist" }).history.at(-1),
    ).toEqual({
      tick: at("2025-06-15T02:00:00Z"),
      skipped: "submit failed: model 'fraud' does not exist",
    });
  });
});

describe("validation", () => {
  it("refuses bad cron expressions and zones, naming the field", () => {
    expect(invalidMessage(() => cronOf("0 2 * *", "UTC"))).toBe(
      "cron '0 2 * *' is invalid: expected five fields (minute hour day-of-month month day-of-week), got 4",
    );
    expect(invalidMessage(() => cronOf("0 0 2 * * *", "UTC"))).toBe(
      "cron '0 0 2 * * *' is invalid: expected five fields (minute hour day-of-month month day-of-week), got 6",
    );
    expect(invalidMessage(() => cronOf("61 * * * *", "UTC"))).toBe(
      "cron '61 * * * *' is invalid: Invalid value for minute: 61",
    );
    expect(invalidMessage(() => cronOf("0 0 30 2 *", "UTC"))).toBe("cron '0 0 30 2 *' never fires");
    expect(invalidMessage(() => cronOf("0 2 * * *", "Mars/Olympus"))).toBe(
      "tz 'Mars/Olympus' is not an IANA time zone (e.g. 'UTC', 'Europe/Madrid')",
    );
    expect(tickAfter(cronOf("@daily", "UTC"), at("2025-06-14T12:00:00Z"))).toBe(at("2025-06-15T00:00:00Z"));
  });

  it("lists every problem of a new schedule at once", () => {
    const message = invalidMessage(() =>
      newSchedule(
        {
          name: "night ly",
          cron: "* *",
          tz: "Mars/Olympus",
          job: { model: "fraud", input: "in.csv", resume: "abc" },
          every: "day",
        },
        0,
      ),
    );
    expect(message).toBe(
      "invalid schedule (7 problems): " +
        "every: unknown field (expected name, cron, tz, job); " +
        "name 'night ly' is invalid: expected 1-63 characters of letters, digits, '_' or '-'; " +
        "tz 'Mars/Olympus' is not an IANA time zone (e.g. 'UTC', 'Europe/Madrid'); " +
        "cron '* *' is invalid: expected five fields (minute hour day-of-month month day-of-week), got 2; " +
        "job.output: Invalid input: expected string, received undefined; " +
        "job.model: model URI 'fraud' is malformed: expected models:/<name>/<version>, models:/<name>@<alias> or models:/<name>/latest; " +
        "job.resume: a schedule cannot resume a job; each tick submits a new one",
    );
    expect(invalidMessage(() => newSchedule({ name: "n", cron: "0 2 * * *" }, 0))).toBe(
      "invalid schedule (1 problem): job: expected an object (a batch job request)",
    );
  });

  it("makes a record in UTC unless told otherwise", () => {
    expect(newSchedule({ name: "nightly", cron: "0 2 * * *", job }, 1_000)).toEqual({
      name: "nightly",
      cron: "0 2 * * *",
      tz: "UTC",
      job,
      created_at: 1_000,
      history: [],
    });
    expect(newSchedule({ name: "nightly", cron: "0 2 * * *", tz: "Europe/Madrid", job }, 1_000).tz).toBe(
      "Europe/Madrid",
    );
  });
});
