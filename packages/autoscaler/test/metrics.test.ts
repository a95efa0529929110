// The metrics windows from hand-made snapshots on an injected clock: windows are differences of one source's
// snapshots, sources merge by adding bucket counts, percentiles interpolate inside a bucket (worked out here
// by hand), and totals never go backwards when a source leaves or restarts.
import { ClusterMetrics, quantileUs } from "@switchyard/autoscaler";
import {
  LATENCY_BUCKETS_US,
  type ReplicaStatsSnapshot,
  type RouterServedStats,
  type RouterStatsSnapshot,
  type TimeSummary,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

/** Bucket index of the bucket whose upper bound is `le` µs. */
const bucket = (le: number) => {
  const i = LATENCY_BUCKETS_US.indexOf(le as (typeof LATENCY_BUCKETS_US)[number]);
  if (i < 0) throw new Error(`no bucket ending at ${le}`);
  return i;
};

/** A summary with `n` samples in each named bucket (by upper bound), summing `sum` µs. */
function summary(buckets: Record<number, number>, sum = 0): TimeSummary {
  const counts = new Array<number>(LATENCY_BUCKETS_US.length + 1).fill(0);
  let count = 0;
  for (const [le, n] of Object.entries(buckets)) {
    counts[Number(le) === Infinity ? LATENCY_BUCKETS_US.length : bucket(Number(le))] = n;
    count += n;
  }
  return {
    count,
    sum_us: sum,
    le_us: [...LATENCY_BUCKETS_US, null],
    counts,
    p50_us: 0,
    p99_us: 0,
    max_us: 0,
  };
}

function served(requests: number, total: Record<number, number>, extra: Partial<RouterServedStats> = {}) {
  return { requests, errors: {}, total_us: summary(total), held: 0, held_total: 0, ...extra };
}

function router(
  id: string,
  uptimeMs: number,
  endpoints: RouterStatsSnapshot["endpoints"],
): RouterStatsSnapshot {
  return { router_id: id, role: "bridge", host: "h", pid: 1, at: 0, uptime_ms: uptimeMs, endpoints };
}

function replica(id: string, o: Partial<ReplicaStatsSnapshot> = {}): ReplicaStatsSnapshot {
  return {
    replica_id: id,
    endpoint: "fraud",
    served_model: "fraud-1",
    model_name: "fraud",
    model_version: 1,
    generation: "g",
    node_id: "n",
    pid: 2,
    state: "READY",
    threads: 1,
    config: { max_batch_size: 8, max_delay_us: 0, max_queue: 100 },
    at: 0,
    uptime_ms: 3_600_000,
    requests: 0,
    succeeded: 0,
    rows: 0,
    errors: {},
    in_flight: 0,
    queued: 0,
    busy_us: 0,
    batches: 0,
    batch_sizes: {},
    avg_batch_size: 0,
    queue_us: summary({}),
    compute_us: summary({}),
    hop_us: summary({}),
    ...o,
  };
}

/** A clock the test moves. */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const HOUR = 3_600_000;

describe("quantileUs", () => {
  it("interpolates inside the bucket holding rank q × count", () => {
    // 10 samples in (500, 1000] µs: the median is at rank 5 of 10, halfway through the bucket.
    const counts = summary({ 1000: 10 }).counts;
    expect(quantileUs(counts, 0.5)).toBe(750);
    expect(quantileUs(counts, 0.95)).toBe(975);
    expect(quantileUs(counts, 0.99)).toBe(995);
    // The first bucket starts at 0: 4 samples in [0, 50]; rank 2 → 25.
    expect(quantileUs(summary({ 50: 4 }).counts, 0.5)).toBe(25);
    // Above 30 s nothing is known but the lower bound.
    expect(quantileUs(summary({ [Infinity]: 3 }).counts, 0.99)).toBe(30_000_000);
    expect(quantileUs(summary({}).counts, 0.5)).toBe(0);
  });
});

describe("ClusterMetrics", () => {
  it("merges two routers by adding bucket counts, never by averaging percentiles", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    // Both routers started 10 s ago, so everything they counted is inside the 1-minute window.
    m.addRouter(router("a", 10_000, { fraud: { "fraud-1": served(10, { 2500: 10 }) } }));
    m.addRouter(router("b", 10_000, { fraud: { "fraud-1": served(10, { 10000: 10 }) } }));
    const w = m.endpoint("fraud").served_models[0]!.windows["1m"];
    expect(w.requests).toBe(20);
    // Merged: 10 in (1000, 2500], 10 in (5000, 10000].
    // p50: rank 10 → the end of the first bucket, 2500 µs. p95: rank 19 → 5000 + 5000 × 9/10 = 9500 µs.
    // p99: rank 19.8 → 5000 + 5000 × 9.8/10 = 9900 µs. (Averaging the routers' medians would say 4.625 ms.)
    expect(w.latency_ms).toEqual({ p50: 2.5, p95: 9.5, p99: 9.9 });
  });

  it("counts a window as the difference of one source's snapshots", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    // A router up for an hour before this process heard of it: its first report is the 5-minute baseline.
    m.addRouter(router("a", HOUR, { fraud: { "fraud-1": served(100, { 1000: 100 }) } }));
    for (let s = 10; s <= 300; s += 10) {
      c.advance(10_000);
      const requests = s <= 240 ? 100 + s / 4 : 160 + (s - 240) * (40 / 60);
      const errors = s === 300 ? { BAD_REQUEST: 3, DEADLINE_EXCEEDED: 1 } : {};
      // 100 requests before, 160 at 240 s, 200 at 300 s; the 40 of the last minute all in (1000, 2500].
      const total: Record<number, number> =
        s <= 240 ? { 1000: requests } : { 1000: 160, 2500: requests - 160 };
      m.addRouter(
        router("a", HOUR + s * 1000, {
          fraud: { "fraud-1": served(Math.round(requests), total, { errors }) },
        }),
      );
    }
    const e = m.endpoint("fraud");
    const last = e.windows["1m"];
    expect(last.requests).toBe(40);
    expect(last.errors).toEqual({ BAD_REQUEST: 3, DEADLINE_EXCEEDED: 1 });
    expect(last.error_rate).toBe(0.1);
    expect(last.rps).toBe(0.667);
    // All 40 in (1000, 2500]: p50 at rank 20 → 1000 + 1500 × 20/40 = 1750 µs.
    expect(last.latency_ms.p50).toBe(1.75);
    const five = e.windows["5m"];
    expect(five.requests).toBe(100);
    expect(five.rps).toBe(0.333);
    // 60 in (500, 1000], 40 in (1000, 2500]: p50 at rank 50 → 500 + 500 × 50/60 µs.
    expect(five.latency_ms.p50).toBe(0.917);
    // p95 at rank 95 → 1000 + 1500 × 35/40 = 2312.5 µs.
    expect(five.latency_ms.p95).toBe(2.313);
  });

  it("counts everything of a source that started inside the window", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    c.advance(120_000);
    // First heard of now, up for 20 s: its 7 requests are all in the last minute, and its first report
    // is not a baseline to subtract.
    m.addRouter(router("late", 20_000, { fraud: { "fraud-1": served(7, { 500: 7 }) } }));
    expect(m.endpoint("fraud").windows["1m"].requests).toBe(7);
    expect(m.endpoint("fraud").windows["1m"].rps).toBe(0.117);
  });

  it("merges replicas' queue and compute, counts ready replicas and unanswered requests", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    m.addReplica(
      replica("r1", {
        uptime_ms: 30_000,
        queue_us: summary({ 100: 6 }),
        compute_us: summary({ 1000: 2 }),
        batches: 2,
        rows: 6,
        in_flight: 2,
        queued: 1,
      }),
    );
    m.addReplica(
      replica("r2", {
        uptime_ms: 30_000,
        queue_us: summary({ 250: 2 }),
        compute_us: summary({ 2500: 2 }),
        batches: 2,
        rows: 2,
        in_flight: 1,
      }),
    );
    m.addReplica(replica("r3", { uptime_ms: 30_000, state: "DRAINING" }));
    const s = m.endpoint("fraud").served_models;
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({
      name: "fraud-1",
      model_name: "fraud",
      model_version: 1,
      replicas: { ready: 2 },
      in_flight: 4,
      held: 0,
    });
    const w = s[0]!.windows["1m"];
    // Queue: 6 in (50, 100], 2 in (100, 250]; p50 rank 4 → 50 + 50 × 4/6 µs; p95 rank 7.6 → 100 + 150 × 1.6/2.
    expect(w.queue_ms).toEqual({ p50: 0.083, p95: 0.22, p99: 0.244 });
    // Compute: 2 in (500, 1000], 2 in (1000, 2500]; p50 rank 2 → 1000 µs.
    expect(w.compute_ms.p50).toBe(1);
    expect(w.avg_batch_size).toBe(2);
  });

  it("lists the config's served models (one at zero replicas too); router-decided errors count for the endpoint", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    m.addRouter(
      router("a", 5_000, {
        fraud: {
          "fraud-1": served(4, { 1000: 4 }),
          "": served(2, { 50: 2 }, { errors: { DEADLINE_EXCEEDED: 2 } }),
        },
        nosuch: { "": served(1, { 50: 1 }, { errors: { RESOURCE_DOES_NOT_EXIST: 1 } }) },
      }),
    );
    const e = m.endpoint("fraud", [
      { name: "fraud-1", model_name: "fraud", model_version: 1 },
      { name: "fraud-2", model_name: "fraud", model_version: 2 },
    ]);
    expect(e.served_models.map((s) => [s.name, s.windows["1m"].requests, s.replicas.ready])).toEqual([
      ["fraud-1", 4, 0],
      ["fraud-2", 0, 0],
    ]);
    expect(e.windows["1m"]).toMatchObject({
      requests: 6,
      errors: { DEADLINE_EXCEEDED: 2 },
      error_rate: 0.333,
    });
    expect(m.endpointNames()).toEqual(["fraud", "nosuch"]);
    expect(m.servedModelsOf("fraud")).toEqual(["fraud-1"]);
  });

  it("keeps totals when a source leaves, and forgets it from windows and gauges", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    m.addRouter(router("a", 1_000, { fraud: { "fraud-1": served(30, { 1000: 30 }) } }));
    m.addReplica(replica("r1", { uptime_ms: 1_000, batches: 30, rows: 30 }));
    m.addRouter(router("b", 1_000, { fraud: { "fraud-1": served(5, { 1000: 5 }) } }));
    const totals = () =>
      m.totals().map((t) => [t.endpoint, t.served, t.counters.requests, t.counters.batches]);
    expect(totals()).toEqual([["fraud", "fraud-1", 35, 30]]);
    // Router a and the replica go silent; b keeps reporting.
    for (let i = 0; i < 70; i++) {
      c.advance(5_000);
      m.addRouter(router("b", 1_000 + (i + 1) * 5_000, { fraud: { "fraud-1": served(5, { 1000: 5 }) } }));
      expect(totals()).toEqual([["fraud", "fraud-1", 35, 30]]);
      if (i === 1) expect(m.totals()[0]!.replicasReady).toBe(0);
    }
    // 350 s later nothing is in any window, and the totals still hold what the gone sources counted.
    expect(m.endpoint("fraud").windows["5m"].requests).toBe(0);
    expect(m.endpoint("fraud").windows["1m"].requests).toBe(0);
  });

  it("treats a source whose uptime goes back as a restart: totals add up, never fall", () => {
    const c = clock();
    const m = new ClusterMetrics({ now: c.now });
    m.addRouter(router("a", 50_000, { fraud: { "fraud-1": served(50, { 1000: 50 }) } }));
    c.advance(1_000);
    m.addRouter(router("a", 1_000, { fraud: { "fraud-1": served(5, { 1000: 5 }) } }));
    expect(m.totals()[0]!.counters.requests).toBe(55);
    expect(m.endpoint("fraud").windows["1m"].requests).toBe(55);
  });

  it("refuses a bad option by name", () => {
    expect(() => new ClusterMetrics({ sampleMs: 0 })).toThrow("sampleMs must be a positive number of ms");
  });
});
