// The accuracy windows on an injected clock: outcomes count by the time of their REQUEST (a label hours late
// lands in its request's window), sums worked out by hand, `since` as the canary reads it, and label counts
// (once per label, whatever shadow outcomes it also scored).
import { AccuracyWindows } from "@switchyard/autoscaler";
import type { OutcomeRecord } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const HOUR = 3_600_000;

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
    w.add(joined("a", now - 10_000, 4, 3, []));
    w.add(joined("b", now - 10_000, 4, 1, []));
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
});
