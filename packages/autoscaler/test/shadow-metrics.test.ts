// Shadow traffic in the metrics windows, from hand-made router snapshots on an injected clock: a window is the
// difference of one router's snapshots, two routers add up, agreement is read from the merged rows, and the
// totals of a router that left stay counted.
import { ClusterMetrics } from "@switchyard/autoscaler";
import {
  LATENCY_BUCKETS_US,
  type RouterStatsSnapshot,
  type ShadowServedStats,
  type TimeSummary,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

/** `n` samples in the bucket ending at 10 ms. */
function latency(n: number): TimeSummary {
  const counts = new Array<number>(LATENCY_BUCKETS_US.length + 1).fill(0);
  counts[LATENCY_BUCKETS_US.indexOf(10_000)] = n;
  return {
    count: n,
    sum_us: n * 8_000,
    le_us: [...LATENCY_BUCKETS_US, null],
    counts,
    p50_us: 0,
    p99_us: 0,
    max_us: 0,
  };
}

const shadow = (s: Omit<ShadowServedStats, "latency_us">): ShadowServedStats => ({
  ...s,
  latency_us: latency(s.mirrored),
});

function router(id: string, uptimeMs: number, stats: Record<string, ShadowServedStats>): RouterStatsSnapshot {
  return {
    router_id: id,
    role: "bridge",
    host: "h",
    pid: 1,
    at: 0,
    uptime_ms: uptimeMs,
    endpoints: {},
    shadow: { fraud: stats },
  };
}

describe("ClusterMetrics: shadow traffic", () => {
  it("takes windows per router, merges routers, and keeps the totals of a router that left", () => {
    let now = 1_000_000;
    const m = new ClusterMetrics({ now: () => now });
    // r1 counted before the windows began: its first report is the baseline.
    m.addRouter(
      router("r1", 3_600_000, {
        b: shadow({ mirrored: 100, dropped: 1, errors: {}, compared: 400, agreed: 300 }),
      }),
    );
    now += 30_000;
    m.addRouter(
      router("r1", 3_630_000, {
        b: shadow({
          mirrored: 110,
          dropped: 3,
          errors: { TEMPORARILY_UNAVAILABLE: 2 },
          compared: 432,
          agreed: 324,
        }),
      }),
    );
    // r2 started inside the window: everything it counted is in it.
    m.addRouter(
      router("r2", 10_000, { b: shadow({ mirrored: 10, dropped: 0, errors: {}, compared: 8, agreed: 8 }) }),
    );
    const [b] = m.endpoint("fraud").shadow;
    expect(b!.served_model_name).toBe("b");
    expect(b!.windows["1m"]).toEqual({
      mirrored: 20,
      dropped: 2,
      errors: { TEMPORARILY_UNAVAILABLE: 2 },
      error_rate: 0.1,
      latency_ms: { p50: expect.any(Number), p95: expect.any(Number), p99: expect.any(Number) },
      agreement: { compared: 40, agreed: 32, rate: 0.8 },
    });
    // Inside the bucket ending at 10 ms.
    expect(b!.windows["1m"].latency_ms.p50).toBeGreaterThan(5);
    expect(b!.windows["1m"].latency_ms.p99).toBeLessThanOrEqual(10);

    // r1 stops reporting; long after, its counts are gone from the windows but not from the totals.
    now += 400_000;
    m.addRouter(
      router("r2", 410_000, { b: shadow({ mirrored: 10, dropped: 0, errors: {}, compared: 8, agreed: 8 }) }),
    );
    expect(m.endpoint("fraud").shadow[0]!.windows["5m"].mirrored).toBe(0);
    const [t] = m.shadowTotals();
    expect(t).toMatchObject({ endpoint: "fraud", served: "b" });
    expect(t!.counters).toMatchObject({ requests: 120, dropped: 3, compared: 440, agreed: 332 });
    expect(m.endpoint("other").shadow).toEqual([]);
  });
});
