// The scaling policy, driven step by step with an injected clock: spikes, lulls, oscillation, bounds, capacity,
// scale to zero and back; the bounds Databricks' workload sizes map to; the load window over replica snapshots;
// batch workers and stream scorers.
import type { ReplicaStatsSnapshot } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import {
  batchWorkers,
  ConcurrencyWindow,
  decideScale,
  initialReplicas,
  replicaBounds,
  resumeScale,
  SCALE_DEFAULTS,
  type ScaleObservation,
  type ScaleSettings,
  type ScaleState,
  streamScorers,
  wakeScale,
} from "../src/mod.js";

const S: ScaleSettings = {
  targetConcurrency: 4,
  upStabilizationMs: 0,
  downStabilizationMs: 30_000,
  scaleToZeroAfterMs: 30 * 60_000,
};

/** Runs the policy once a second from `from` for `seconds`, with the load `at(t)` gives; returns every state. */
function run(
  settings: ScaleSettings,
  start: ScaleState | undefined,
  from: number,
  seconds: number,
  at: (t: number) => Partial<ScaleObservation>,
): ScaleState[] {
  const out: ScaleState[] = [];
  let state = start;
  for (let i = 0; i < seconds; i++) {
    const now = from + i * 1_000;
    state = decideScale(settings, state, {
      now,
      bounds: { min: 1, max: 4 },
      capacity: 100,
      concurrency: 0,
      requests: 0,
      held: 0,
      ...at(now),
    });
    out.push(state);
  }
  return out;
}
const desired = (states: ScaleState[]) => states.map((s) => s.decision.desired);
const last = <T>(xs: T[]) => xs[xs.length - 1]!;

describe("replica bounds from provisioned concurrency", () => {
  const served = { scale_to_zero_enabled: false } as const;
  it("maps Databricks' workload sizes at 4 requests per replica", () => {
    expect(replicaBounds({ ...served, workload_size: "Small" })).toMatchObject({ min: 1, max: 1 });
    expect(replicaBounds({ ...served, workload_size: "Medium" })).toMatchObject({ min: 2, max: 4 });
    expect(replicaBounds({ ...served, workload_size: "Large" })).toMatchObject({ min: 4, max: 16 });
    expect(initialReplicas(replicaBounds({ ...served, workload_size: "Medium" }))).toBe(2);
  });

  it("lowers the minimum to zero with scale_to_zero_enabled, starting at one replica", () => {
    const b = replicaBounds({ workload_size: "Small", scale_to_zero_enabled: true });
    expect(b).toEqual({ min: 0, max: 1, minConcurrency: 0, maxConcurrency: 4 });
    expect(initialReplicas(b)).toBe(1);
  });

  it("takes min/max_provisioned_concurrency over the workload size", () => {
    const b = replicaBounds({
      ...served,
      workload_size: "Small",
      min_provisioned_concurrency: 4,
      max_provisioned_concurrency: 16,
    });
    expect(b).toMatchObject({ min: 1, max: 4 });
    expect(
      replicaBounds({ ...served, workload_size: "Large", max_provisioned_concurrency: 6 }),
    ).toMatchObject({
      min: 4,
      max: 4,
    });
    expect(
      replicaBounds({ ...served, workload_size: "Small", max_provisioned_concurrency: 0 }),
    ).toMatchObject({
      min: 1,
      max: 1,
    });
  });
});

describe("the scaling policy", () => {
  it("scales a spike up at once, to ceil(concurrency / target)", () => {
    const states = run(S, undefined, 0, 3, (t) => ({ concurrency: t >= 1_000 ? 11.5 : 0.5, requests: 10 }));
    expect(desired(states)).toEqual([1, 3, 3]);
    expect(states[1]!.decision).toMatchObject({ wanted: 3, limited_by: null });
    expect(states[1]!.decision.reason).toBe(
      "load 11.5 concurrent requests, target 4 per replica → 3 replicas",
    );
  });

  it("counts an exact multiple of the target as that many replicas", () => {
    expect(desired(run(S, undefined, 0, 1, () => ({ concurrency: 8.0000001 })))).toEqual([2]);
  });

  it("holds through a lull shorter than the down window, then scales down to the highest recent need", () => {
    const states = run(S, undefined, 0, 80, (t) => ({
      concurrency: t < 10_000 ? 16 : t < 20_000 ? 6 : 1,
      requests: 5,
    }));
    const d = desired(states);
    expect(d.slice(0, 10).every((x) => x === 4)).toBe(true);
    // 6 concurrent wants 2, but 16 was seen within 30 s: still 4 until t = 40 s.
    expect(d[39]).toBe(4);
    expect(states[20]!.decision.reason).toBe(
      "load 1 concurrent request, target 4 per replica wants 1: holding 4 replicas for the 30 s down-stabilisation window",
    );
    expect(d[40]).toBe(2);
    expect(d[50]).toBe(1);
    expect(last(d)).toBe(1);
  });

  it("does not thrash on load that comes and goes faster than the down window", () => {
    const states = run(S, undefined, 0, 120, (t) => ({
      concurrency: Math.floor(t / 5_000) % 2 === 0 ? 15 : 0.2,
      requests: 3,
    }));
    const d = desired(states);
    expect(d[0]).toBe(4);
    expect(new Set(d)).toEqual(new Set([4]));
  });

  it("with an up window, scales up only to what the load asked for throughout it", () => {
    const slow = { ...S, upStabilizationMs: 3_000 };
    const d = desired(
      run(slow, undefined, 0, 8, (t) => ({ concurrency: t === 2_000 ? 16 : t >= 4_000 ? 12 : 0 })),
    );
    // The one-second spike at t=2 s never lasts the 3 s window; the step at t=4 s does, from t=7 s.
    expect(d).toEqual([1, 1, 1, 1, 1, 1, 1, 3]);
  });

  it("stays within [min, max] and says which bound held it", () => {
    const high = last(run(S, undefined, 0, 2, () => ({ concurrency: 40, requests: 40 })));
    expect(high.decision).toMatchObject({ desired: 4, wanted: 10, limited_by: "max" });
    expect(high.decision.reason).toBe(
      "load 40 concurrent requests, target 4 per replica: capped at the maximum of 4 replicas (load wants 10)",
    );
    const low = last(
      run(S, undefined, 0, 40, () => ({ bounds: { min: 2, max: 4 }, concurrency: 0.3, requests: 1 })),
    );
    expect(low.decision).toMatchObject({ desired: 2, wanted: 1, limited_by: "min" });
    expect(low.decision.reason).toBe(
      "load 0.3 concurrent requests, target 4 per replica: kept at the minimum of 2 replicas",
    );
  });

  it("never exceeds what the thread budget leaves, and says capacity held it", () => {
    const s = last(run(S, undefined, 0, 2, () => ({ concurrency: 14, requests: 9, capacity: 2 })));
    expect(s.decision).toMatchObject({ desired: 2, wanted: 4, limited_by: "capacity" });
    expect(s.decision.reason).toBe("the nodes' thread budget leaves room for 2 replicas (load wants 4)");
    // A served model with load keeps one replica even when the budget is taken.
    const none = last(run(S, undefined, 0, 1, () => ({ concurrency: 3, capacity: 0 })));
    expect(none.decision).toMatchObject({ desired: 1, limited_by: null });
  });

  it("scales to zero only after scaleToZeroAfter without requests, and only when the minimum is 0", () => {
    const short = { ...S, scaleToZeroAfterMs: 60_000, downStabilizationMs: 5_000 };
    const zeroable = { bounds: { min: 0, max: 4 } };
    const busy = run(short, undefined, 0, 10, () => ({ ...zeroable, concurrency: 2, requests: 4 }));
    const idle = run(short, last(busy), 10_000, 70, () => zeroable);
    const d = desired(idle);
    // Last request at t = 9 s: one replica until t = 69 s, zero from then.
    expect(d[58]).toBe(1);
    expect(idle[58]!.decision).toMatchObject({ limited_by: "min", last_request_at: 9_000 });
    expect(idle[58]!.decision.reason).toBe(
      "load 0 concurrent requests, target 4 per replica: kept at 1 replica until 60 s without requests (last request 59 s ago)",
    );
    expect(d[59]).toBe(0);
    expect(idle[59]!.decision).toMatchObject({ desired: 0, wanted: 0, limited_by: null });
    expect(idle[59]!.decision.reason).toBe(
      "no requests for 60 s: scaled to zero; the next request starts a replica",
    );
    // The same idle time with a minimum of 1 keeps one.
    const kept = run(short, last(busy), 10_000, 70, () => ({ bounds: { min: 1, max: 4 } }));
    expect(last(desired(kept))).toBe(1);
  });

  it("comes back from zero on a wake at once, and on held requests", () => {
    const short = { ...S, scaleToZeroAfterMs: 10_000, downStabilizationMs: 5_000 };
    const zero = last(run(short, undefined, 0, 20, () => ({ bounds: { min: 0, max: 4 } })));
    expect(zero.decision.desired).toBe(0);
    const woken = wakeScale(zero, 20_500)!;
    expect(woken.decision).toMatchObject({
      desired: 1,
      wanted: 1,
      limited_by: null,
      last_request_at: 20_500,
    });
    expect(woken.decision.reason).toBe("a request arrived at zero replicas: starting one");
    // While the replica starts, the router keeps waking: each wake counts as a request seen then, so the replica
    // is not scaled away under a held request however long it takes to start.
    let state = woken;
    for (let t = 21_000; t < 60_000; t += 1_000) {
      state = wakeScale(state, t - 500);
      state = decideScale(short, state, {
        now: t,
        bounds: { min: 0, max: 4 },
        capacity: 4,
        concurrency: 0,
        requests: 0,
        held: 0,
      });
      expect(state.decision.desired).toBe(1);
    }
    expect(state.decision.last_request_at).toBe(58_500);
    // Held requests (a lost wake) bring it back too.
    const held = last(run(short, zero, 21_000, 1, () => ({ bounds: { min: 0, max: 4 }, held: 3 })));
    expect(held.decision).toMatchObject({ desired: 1, last_request_at: 21_000 });
  });

  it("continues from a stored decision without scaling down before a whole down window", () => {
    const stored = last(run(S, undefined, 0, 2, () => ({ concurrency: 12, requests: 6 }))).decision;
    const resumed = resumeScale(stored, 100_000);
    const d = desired(run(S, resumed, 100_000, 32, () => ({ concurrency: 0.5, requests: 1 })));
    expect(d[0]).toBe(3);
    expect(d[29]).toBe(3);
    expect(d[31]).toBe(1);
  });

  it("has production defaults: up at once, down over 30 s, zero after 30 minutes", () => {
    expect(SCALE_DEFAULTS).toEqual({
      targetConcurrency: 4,
      upStabilizationMs: 0,
      downStabilizationMs: 30_000,
      scaleToZeroAfterMs: 1_800_000,
    });
  });
});

describe("the load window", () => {
  const snap = (id: string, at: number, busy_us: number, requests: number, level = 0): ReplicaStatsSnapshot =>
    ({
      replica_id: id,
      endpoint: "ep",
      served_model: "a",
      at,
      busy_us,
      requests,
      in_flight: level,
      queued: 0,
    }) as ReplicaStatsSnapshot;

  it("averages Δbusy_us / Δt per replica and sums replicas of the served model", () => {
    const w = new ConcurrencyWindow(3_000);
    for (let i = 0; i <= 5; i++) {
      // r1 carries 3 requests at all times, r2 one; r3 serves another served model.
      w.add(snap("r1", 1_000 * i, 3_000_000 * i, 10 * i), 1_000 * i);
      w.add(snap("r2", 50 + 1_000 * i, 1_000_000 * i, 2 * i), 1_000 * i);
      w.add({ ...snap("r3", 1_000 * i, 9_000_000 * i, i), served_model: "b" }, 1_000 * i);
    }
    const load = w.load("ep", "a", 5_200);
    expect(load.replicas).toBe(2);
    expect(load.concurrency).toBeCloseTo(4, 6);
    // Within the last 3 s (and the one sample before it): 30 + 6 requests.
    expect(load.requests).toBe(36);
  });

  it("takes the level of a replica with one report, forgets silent replicas and restarted counters", () => {
    const w = new ConcurrencyWindow(3_000, 5_000);
    w.add(snap("r1", 0, 0, 0, 5), 0);
    expect(w.load("ep", "a", 500)).toEqual({ concurrency: 5, requests: 0, replicas: 1 });
    w.add(snap("r1", 1_000, 2_000_000, 3, 2), 1_000);
    w.add(snap("r1", 2_000, 100, 1, 7), 2_000); // restarted: counters went back
    expect(w.load("ep", "a", 2_100)).toEqual({ concurrency: 7, requests: 0, replicas: 1 });
    expect(w.load("ep", "a", 8_000)).toEqual({ concurrency: 0, requests: 0, replicas: 0 });
  });
});

describe("batch workers and stream scorers", () => {
  it("batch workers follow the shards still queued or running", () => {
    expect(batchWorkers({ asked: undefined, budget: 4, shardsLeft: 10 })).toBe(4);
    expect(batchWorkers({ asked: 2, budget: 4, shardsLeft: 10 })).toBe(2);
    expect(batchWorkers({ asked: undefined, budget: 4, shardsLeft: 3 })).toBe(3);
    expect(batchWorkers({ asked: undefined, budget: 4, shardsLeft: 0 })).toBe(1);
  });

  it("stream scorers follow consumer lag up to parallelism, scaling down only after the down window", () => {
    const s = { downStabilizationMs: 10_000 };
    let recs: { at: number; replicas: number }[] = [];
    const step = (now: number, lag: number, parallelism = 4) => {
      const r = streamScorers(s, recs, { now, lag, batch: 256, parallelism });
      recs = r.recommendations;
      return r.scorers;
    };
    expect(step(0, 0)).toBe(1);
    expect(step(1_000, 3_000)).toBe(3);
    expect(step(2_000, 100_000)).toBe(4);
    expect(step(3_000, 0)).toBe(4);
    expect(step(12_000, 0)).toBe(4);
    expect(step(13_000, 0)).toBe(1);
    // A windowed job (parallelism 1) stays at one whatever the lag.
    expect(step(14_000, 100_000, 1)).toBe(1);
  });
});
