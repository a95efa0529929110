// Schedule runners against a real nats-server: two runners on the same jobs bucket (two coordinators that both
// think they lead) pass concurrently over every tick with an injected clock, and each tick is submitted
// exactly once; runners started after an outage record the missed ticks once, as skipped, and submit none; a
// failed submit is recorded and not retried; a leading Coordinator given `submitBatch` fires on its own loop.
import { randomBytes } from "node:crypto";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  Coordinator,
  MISSED_REASON,
  newSchedule,
  ScheduleRunner,
  type SubmitBatch,
} from "@switchyard/coordinator";
import { connectNats, openBucket, readValue } from "@switchyard/nats";
import { type BatchJobRequest, BatchSchedule, clusterNames, jobKeys } from "@switchyard/protocol";
import { eventually } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const log = pino({ level: "silent" });
const at = (iso: string) => Date.parse(iso);
const job = { model: "models:/fraud@champion", input: "in/{date}.parquet", output: "scored/{date}/" };
let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "schedule-runner-test" });
});
afterAll(async () => {
  await nc?.close();
});

/** A fresh cluster's jobs bucket holding one schedule created at `createdAt`. */
async function withSchedule(
  cron: string,
  createdAt: number,
  tz = "UTC",
): Promise<{ jobs: KV; cluster: string }> {
  const cluster = `t${randomBytes(5).toString("hex")}`;
  const jobs = await openBucket(nc, clusterNames(cluster), "jobs");
  const record = newSchedule({ name: "nightly", cron, tz, job }, createdAt);
  await jobs.create(jobKeys.schedule("nightly"), JSON.stringify(record));
  return { jobs, cluster };
}

async function stored(jobs: KV): Promise<BatchSchedule> {
  const found = await readValue(jobs, jobKeys.schedule("nightly"), BatchSchedule, "schedule");
  return found!.value;
}

interface Submitted {
  runner: string;
  request: BatchJobRequest;
  schedule: string;
  tick: number;
}

/** A submit callback that records what it was asked and answers a job id; it yields first, as a real one does. */
function countingSubmit(runner: string, submitted: Submitted[]): SubmitBatch {
  return async (request, origin) => {
    await new Promise((r) => setImmediate(r));
    submitted.push({ runner, request, ...origin });
    return { job_id: `job-${origin.tick}` };
  };
}

describe("schedule runners", () => {
  it("submit each tick exactly once when two run concurrently", async () => {
    const { jobs } = await withSchedule("* * * * *", at("2025-06-14T22:00:30Z"), "Europe/Madrid");
    let now = 0;
    const submitted: Submitted[] = [];
    const runners = ["a", "b"].map(
      (id) => new ScheduleRunner({ jobs, submit: countingSubmit(id, submitted), log, now: () => now }),
    );
    // Every 5 s for five minutes, both runners pass at the same instant: every tick is seen by both,
    // 12 times each, within its grace window.
    for (let t = at("2025-06-14T22:00:30Z"); t <= at("2025-06-14T22:05:30Z"); t += 5_000) {
      now = t;
      await Promise.all(runners.map((r) => r.pass()));
    }
    const ticks = ["22:01", "22:02", "22:03", "22:04", "22:05"].map((hm) => at(`2025-06-14T${hm}:00Z`));
    expect(submitted.map((s) => s.tick)).toEqual(ticks);
    // 00:01 in Madrid on 15 June: the jobs' paths carry Madrid's date.
    for (const s of submitted) {
      expect(s).toMatchObject({
        schedule: "nightly",
        request: { input: "in/2025-06-15.parquet", output: "scored/2025-06-15/" },
      });
    }
    const record = await stored(jobs);
    expect(record.last_tick).toBe(ticks.at(-1));
    expect(record.history).toEqual(ticks.map((tick) => ({ tick, job_id: `job-${tick}` })));
  });

  it("started after an outage, record the missed ticks once as skipped and submit none of them", async () => {
    const { jobs } = await withSchedule("0 * * * *", at("2025-06-14T10:10:00Z"));
    let now = at("2025-06-14T13:30:00Z");
    const submitted: Submitted[] = [];
    const runners = ["a", "b"].map(
      (id) => new ScheduleRunner({ jobs, submit: countingSubmit(id, submitted), log, now: () => now }),
    );
    await Promise.all(runners.map((r) => r.pass()));
    expect(submitted).toEqual([]);
    const skipped = {
      tick: at("2025-06-14T11:00:00Z"),
      skipped: MISSED_REASON,
      through: at("2025-06-14T13:00:00Z"),
      count: 3,
    };
    expect(await stored(jobs)).toMatchObject({ last_tick: at("2025-06-14T13:00:00Z"), history: [skipped] });

    now = at("2025-06-14T14:00:03Z");
    await Promise.all(runners.map((r) => r.pass()));
    expect(submitted.map((s) => s.tick)).toEqual([at("2025-06-14T14:00:00Z")]);
    expect((await stored(jobs)).history).toEqual([
      skipped,
      { tick: at("2025-06-14T14:00:00Z"), job_id: `job-${at("2025-06-14T14:00:00Z")}` },
    ]);
  });

  it("record a failed submit on its tick and never retry it", async () => {
    const { jobs } = await withSchedule("0 2 * * *", at("2025-06-14T12:00:00Z"));
    let now = at("2025-06-15T02:00:01Z");
    let calls = 0;
    const runner = new ScheduleRunner({
      jobs,
      submit: async () => {
        calls++;
        throw new Error("input 'in/2025-06-15.parquet' does not exist");
      },
      log,
      now: () => now,
    });
    await runner.pass();
    now = at("2025-06-15T02:00:30Z");
    await runner.pass();
    expect(calls).toBe(1);
    expect((await stored(jobs)).history).toEqual([
      {
        tick: at("2025-06-15T02:00:00Z"),
        skipped: "submit failed: input 'in/2025-06-15.parquet' does not exist",
      },
    ]);
  });
});

describe("a coordinator with submitBatch", () => {
  it("fires the due tick from its leader loop, on the real clock", async () => {
    // Created 90 s ago with a tick every minute: at any pass, the latest minute boundary is under 60 s old
    // (due) and any earlier one after creation is missed.
    const { jobs, cluster } = await withSchedule("* * * * *", Date.now() - 90_000);
    const submitted: Submitted[] = [];
    const coordinator = new Coordinator({
      nc,
      cluster,
      logger: log,
      tickMs: 100,
      submitBatch: countingSubmit("coordinator", submitted),
    });
    await coordinator.start();
    try {
      const record = await eventually(async () => {
        const r = await stored(jobs);
        return r.history.some((h) => h.job_id) ? r : undefined;
      }, "a fired tick recorded with its job id");
      // A minute boundary may pass while the test runs, so more than one tick may fire: each once.
      const ticks = submitted.map((s) => s.tick);
      expect(new Set(ticks).size).toBe(ticks.length);
      for (const t of ticks) expect(t % 60_000).toBe(0);
      for (const h of record.history.filter((e) => e.job_id)) {
        expect(h.job_id).toBe(`job-${h.tick}`);
        expect(ticks).toContain(h.tick);
      }
    } finally {
      await coordinator.stop();
    }
  });
});
