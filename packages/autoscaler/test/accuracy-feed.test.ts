// The outcome follower against a real nats-server: when its consume loop fails after it added outcomes, it resumes
// after the last one it added instead of replaying the day, so every outcome is counted exactly once.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { AccuracyFeed } from "@switchyard/autoscaler";
import { clusterNames, type OutcomeRecord } from "@switchyard/protocol";
import { eventually } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connect({ servers: inject("natsUrl") });
});
afterAll(async () => {
  await nc?.close();
});

function outcome(i: number, correct: number): OutcomeRecord {
  const now = Date.now();
  return {
    result: "joined",
    request_id: `r${i}`,
    endpoint_name: "ep",
    served_model_name: "a",
    model_name: "m",
    model_version: 1,
    request_ms: now,
    label_ms: now,
    feedback_seq: i,
    rows: 1,
    correct,
    numeric_rows: 0,
    abs_err_sum: 0,
    sq_err_sum: 0,
    shadow: false,
  };
}

describe("AccuracyFeed", () => {
  it("resumes after the last outcome it added when its loop fails, never counting one twice", async () => {
    const names = clusterNames(`t${Math.random().toString(36).slice(2, 10)}`);
    await (await jetstreamManager(nc)).streams.add({
      name: names.streams.outcomes,
      subjects: [names.subjects.allOutcomes],
    });
    const js = jetstream(nc);
    const publish = (i: number, correct: number) =>
      js.publish(names.subjects.outcome("ep", "a", `r${i}`), JSON.stringify(outcome(i, correct)));
    for (const [i, correct] of [1, 0, 1].entries()) await publish(i, correct);

    const feed = AccuracyFeed.start(nc, names);
    try {
      // The second outcome handed to the windows makes the loop throw (after the first was added).
      const add = feed.windows.add.bind(feed.windows);
      let calls = 0;
      vi.spyOn(feed.windows, "add").mockImplementation((o) => {
        if (++calls === 2) throw new Error("the consume loop fails");
        add(o);
      });
      const labels = () => feed.windows.endpoint("ep")?.labels.received;
      await eventually(
        async () => labels() === 3 || undefined,
        "the feed resumed with every outcome",
        30_000,
      );
      expect(feed.windows.since("ep", "a", 0)).toEqual({ labelled: 3, accuracy: 2 / 3 });
      // It keeps following: a new outcome counts once, and the earlier ones were not replayed meanwhile.
      await publish(3, 1);
      await eventually(async () => labels() === 4 || undefined, "the new outcome", 30_000);
      expect(calls).toBe(5);
      expect(feed.windows.since("ep", "a", 0)).toEqual({ labelled: 4, accuracy: 0.75 });
      expect(feed.windows.endpoint("ep")!.labels).toEqual({
        received: 4,
        joined: 4,
        unknown: 0,
        duplicate: 0,
        invalid: 0,
      });
    } finally {
      await feed.stop();
      await (await jetstreamManager(nc)).streams.delete(names.streams.outcomes);
    }
  });
});
