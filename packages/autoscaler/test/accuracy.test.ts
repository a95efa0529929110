// The accuracy windows on an injected clock: outcomes count by the time of their REQUEST (a label hours late
// lands in its request's window), sums worked out by hand, `since` as the canary reads it, and label counts
// (once per label, whatever shadow outcomes it also scored); outcomes summed per 10 s bucket of request time, so
// memory follows time, not traffic; names published without a join lumped under "*" beyond a bound.
import { AccuracyWindows, BUCKET_MS, OVERFLOW_ENDPOINT } from "@switchyard/autoscaler";
import type { OutcomeRecord } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const HOUR = 3_600_000;

type Held = { endpoints: Map<string, { served: Map<string, Map<number, unknown>> }> };
/** How many buckets the windows hold in memory, over every endpoint and served model. */
const held = (w: AccuracyWindows) => {
  let n = 0;
  for (const e of (w as unknown as Held).endpoints.values()) {
    for (const buckets of e.served.values()) n += buckets.size;
  }
  return n;
};

function other(endpoint: string, result: "unknown" | "duplicate" | "invalid"): OutcomeRecord {
  return {
    ...joined("a", 0, 0, 0, []),
    endpoint_name: endpoint,
    result,
    served_model_name: null,
    request_ms: null,
  };
}

function joined(
  served: string,
  requestMs: number,
  rows: number,
  correct: number,
  errs: number[],
): OutcomeRecord {
  return {
    result: "joined",
    request_id: `r-${requestMs}-${served}`,
    endpoint_name: "ep",
    served_model_name: served,
    model_name: "m",
    model_version: 1,
    request_ms: requestMs,
    label_ms: requestMs,
    feedback_seq: 1,
    rows,
    correct,
    numeric_rows: errs.length,
    abs_err_sum: errs.reduce((s, e) => s + Math.abs(e), 0),
    sq_err_sum: errs.reduce((s, e) => s + e * e, 0),
    shadow: false,
  };
}

describe("AccuracyWindows", () => {
  it("counts a late label in the window of its request, not of its arrival", () => {
    let now = 100 * HOUR;
    const w = new AccuracyWindows({ now: () => now });
    // A request 30 minutes ago, labelled now; one 3 hours ago, labelled now (late): only in 24h.
    w.add({ ...joined("a", now - HOUR / 2, 2, 1, [0, 2]), label_ms: now });
    w.add({ ...joined("a", now - 3 * HOUR, 1, 1, [0]), label_ms: now });
    const a = w.endpoint("ep")!;
    const win = a.served_models[0]!.windows;
    expect(win["1h"]).toEqual({
      labelled_requests: 1,
      labelled_rows: 2,
      accuracy: 0.5,
      mae: 1,
      rmse: Math.sqrt(2),
    });
    expect(win["24h"].labelled_requests).toBe(2);
    expect(win["24h"].labelled_rows).toBe(3);
    expect(win["24h"].accuracy).toBeCloseTo(2 / 3, 12);
    expect(win["24h"].mae).toBeCloseTo(2 / 3, 12);
    expect(win["24h"].rmse).toBeCloseTo(Math.sqrt(4 / 3), 12);
    // A day later both requests are out of every window.
    now += 25 * HOUR;
    expect(w.endpoint("ep")!.served_models).toEqual([]);
  });

  it("answers since() per served model, undefined with no labelled rows, and counts labels by result", () => {
    const now = 50 * HOUR;
    const w = new AccuracyWindows({ now: () => now });
    w.add(joined("a", now - 15_000, 4, 3, []));
    w.add(joined("b", now - 15_000, 4, 1, []));
    w.add(joined("b", now - 1_000, 2, 2, []));
    w.add({ ...joined("b", now, 0, 0, []), result: "duplicate", served_model_name: null, request_ms: null });
    w.add({ ...joined("b", now, 0, 0, []), result: "unknown", served_model_name: null, request_ms: null });
    expect(w.since("ep", "a", now - 20_000)).toEqual({ labelled: 4, accuracy: 0.75 });
    expect(w.since("ep", "b", now - 20_000)).toEqual({ labelled: 6, accuracy: 0.5 });
    expect(w.since("ep", "b", now - 5_000)).toEqual({ labelled: 2, accuracy: 1 });
    expect(w.since("ep", "a", now - 5_000)).toBeUndefined();
    expect(w.since("other", "a", 0)).toBeUndefined();
    const a = w.endpoint("ep")!;
    expect(a.labels).toEqual({ received: 5, joined: 3, unknown: 1, duplicate: 1, invalid: 0 });
    // No numeric rows: MAE and RMSE are null, not 0.
    expect(a.served_models[0]!.windows["1h"].mae).toBeNull();
    expect(a.served_models[0]!.windows["1h"].rmse).toBeNull();
  });

  it("scores a shadow served model's outcomes without counting its label twice", () => {
    const now = 10 * HOUR;
    const w = new AccuracyWindows({ now: () => now });
    // One label, joined to the primary (a) and to the shadow (c) that got the request's mirror.
    w.add(joined("a", now - 1_000, 3, 3, []));
    w.add({ ...joined("c", now - 990, 3, 1, []), shadow: true });
    expect(w.since("ep", "c", now - HOUR)).toEqual({ labelled: 3, accuracy: 1 / 3 });
    const e = w.endpoint("ep")!;
    expect(e.served_models.map((s) => s.name)).toEqual(["a", "c"]);
    expect(e.labels).toEqual({ received: 1, joined: 1, unknown: 0, duplicate: 0, invalid: 0 });
  });

  it("sums outcomes per bucket: memory follows time, not the number of labels", () => {
    let now = 1_000 * BUCKET_MS;
    const w = new AccuracyWindows({ now: () => now });
    // 10,000 labels of requests within one bucket, every other one correct, error 1 each: one bucket held.
    const start = now - 2 * HOUR;
    for (let i = 0; i < 10_000; i++) w.add(joined("a", start + (i % BUCKET_MS), 1, i % 2, [1]));
    expect(held(w)).toBe(1);
    expect(w.endpoint("ep")!.served_models[0]!.windows["24h"]).toEqual({
      labelled_requests: 10_000,
      labelled_rows: 10_000,
      accuracy: 0.5,
      mae: 1,
      rmse: 1,
    });
    // One label per second for an hour: one bucket per 10 s.
    for (let t = 0; t < HOUR; t += 1_000) w.add(joined("a", now - HOUR + t, 1, 1, []));
    expect(held(w)).toBe(HOUR / BUCKET_MS + 1);
    // Buckets past 24 h are dropped as the clock moves on, and a label of such an old request is not kept.
    now += 25 * HOUR;
    w.add(joined("a", now - 24 * HOUR - BUCKET_MS, 1, 1, []));
    expect(held(w)).toBe(0);
    expect(w.endpoint("ep")!.served_models).toEqual([]);
  });

  it("counts since() from the start of the bucket holding it: exact at a bucket boundary", () => {
    const now = 500 * BUCKET_MS;
    const w = new AccuracyWindows({ now: () => now });
    const edge = now - 10 * BUCKET_MS;
    w.add(joined("a", edge - 1, 1, 0, []));
    w.add(joined("a", edge, 2, 2, []));
    w.add(joined("a", edge + BUCKET_MS / 2, 1, 1, []));
    // From a bucket's start: the request one millisecond before is out, the one at the edge in.
    expect(w.since("ep", "a", edge)).toEqual({ labelled: 3, accuracy: 1 });
    // From inside a bucket: the whole bucket counts (the granularity the README states).
    expect(w.since("ep", "a", edge + BUCKET_MS / 2)).toEqual({ labelled: 3, accuracy: 1 });
    expect(w.since("ep", "a", edge + BUCKET_MS)).toBeUndefined();
    expect(w.since("ep", "a", edge - 1)).toEqual({ labelled: 4, accuracy: 0.75 });
  });

  it("lumps endpoint names without a joined outcome under '*' beyond the bound, never endpoints that joined", () => {
    const now = 10 * HOUR;
    const w = new AccuracyWindows({ now: () => now, maxUnjoinedEndpoints: 2 });
    w.add(other("x1", "unknown"));
    w.add(other("x2", "invalid"));
    w.add(other("x3", "unknown"));
    w.add(other("x4", "unknown"));
    w.add(other("x1", "unknown"));
    expect(w.endpointNames()).toEqual([OVERFLOW_ENDPOINT, "x1", "x2"]);
    expect(w.endpoint(OVERFLOW_ENDPOINT)!.labels).toEqual({
      received: 2,
      joined: 0,
      unknown: 2,
      duplicate: 0,
      invalid: 0,
    });
    expect(w.endpoint("x1")!.labels.unknown).toBe(2);
    expect(w.endpoint("x3")).toBeUndefined();
    // An endpoint with a joined outcome exists (its request was captured): tracked under its name, whatever the bound.
    w.add(joined("a", now - 1_000, 1, 1, []));
    w.add(other("ep", "duplicate"));
    expect(w.endpoint("ep")!.labels).toEqual({
      received: 2,
      joined: 1,
      unknown: 0,
      duplicate: 1,
      invalid: 0,
    });
    // x1 joins: it no longer takes one of the two places, so a new name gets it.
    w.add({ ...joined("a", now - 1_000, 1, 1, []), endpoint_name: "x1" });
    w.add(other("x5", "unknown"));
    expect(w.endpointNames()).toEqual([OVERFLOW_ENDPOINT, "ep", "x1", "x2", "x5"]);
    expect(w.endpoint("x1")!.labels).toEqual({
      received: 3,
      joined: 1,
      unknown: 2,
      duplicate: 0,
      invalid: 0,
    });
  });
});
