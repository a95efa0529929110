import {
  eventTimeMs,
  PoisonEventError,
  type WindowEvent,
  type WindowOutcome,
  WindowState,
} from "@switchyard/jobs";
import { type FeatureSpec, FeatureSpecError, parseFeatureSpec } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const SEC = 1_000;
const MIN = 60 * SEC;

// Every agg in both window types, over two fields.
const SPEC = parseFeatureSpec({
  key: "card_id",
  event_time: "ts",
  allowed_lateness: "30s",
  windows: [
    { name: "count_1m", type: "sliding", size: "1m", agg: "count" },
    { name: "amount_sum_5m", type: "sliding", size: "5m", agg: "sum", field: "amount" },
    { name: "amount_mean_2m", type: "sliding", size: "2m", agg: "mean", field: "amount" },
    { name: "fee_min_90s", type: "sliding", size: "90s", agg: "min", field: "fee" },
    { name: "amount_max_10m", type: "sliding", size: "10m", agg: "max", field: "amount" },
    { name: "count_1h", type: "tumbling", size: "1h", agg: "count" },
    { name: "amount_sum_10m", type: "tumbling", size: "10m", agg: "sum", field: "amount" },
    { name: "fee_mean_5m", type: "tumbling", size: "5m", agg: "mean", field: "fee" },
    { name: "amount_min_15m", type: "tumbling", size: "15m", agg: "min", field: "amount" },
    { name: "fee_max_30m", type: "tumbling", size: "30m", agg: "max", field: "fee" },
  ],
});

/** mulberry32: a small seeded generator, so a failure replays. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Events in arrival order, drifting forward ~2.5 s each: most within the lateness but out of order (on a
 * 250 ms grid, so times tie), 3% exactly at the watermark, 3% late. Values are multiples of 0.25, so sums in
 * any order are exact.
 */
function events(seed: number, n: number, keyOf: (i: number, rnd: () => number) => string): WindowEvent[] {
  const rnd = random(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const out: WindowEvent[] = [];
  let max = 1_700_000_000_000;
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const time =
      r < 0.03
        ? max - 30 * SEC - 1 - int(5 * MIN)
        : r < 0.06
          ? max - 30 * SEC
          : max - 29 * SEC + 250 * int(129);
    max = Math.max(max, time);
    out.push({ key: keyOf(i, rnd), time, fields: { amount: (int(401) - 200) / 4, fee: int(40) / 4 } });
  }
  return out;
}

const fiveKeys = (_i: number, rnd: () => number) => `card-${Math.floor(rnd() * 5)}`;

/** The features recomputed from scratch for every event: a loop over all earlier-arrived events. */
function recompute(spec: FeatureSpec, stream: WindowEvent[]): WindowOutcome[] {
  const kept: WindowEvent[] = [];
  let max = Number.NEGATIVE_INFINITY;
  return stream.map((e) => {
    if (e.time < max - spec.allowed_lateness) return { kind: "late" };
    max = Math.max(max, e.time);
    kept.push(e);
    const features: Record<string, number | null> = {};
    for (const w of spec.windows) {
      const inWindow = kept.filter(
        (p) =>
          p.key === e.key &&
          (w.type === "sliding"
            ? p.time > e.time - w.size && p.time <= e.time
            : Math.floor(p.time / w.size) === Math.floor(e.time / w.size)),
      );
      const values = inWindow.map((p) => p.fields[w.field ?? ""] as number);
      const sum = values.reduce((a, b) => a + b, 0);
      features[w.name] =
        w.agg === "count"
          ? inWindow.length
          : w.agg === "sum"
            ? sum
            : values.length === 0
              ? null
              : w.agg === "mean"
                ? sum / values.length
                : w.agg === "min"
                  ? Math.min(...values)
                  : Math.max(...values);
    }
    return { kind: "features", features };
  });
}

/** Applies events with sequences 1, 2, … (or from `firstSeq`). */
const applyAll = (state: WindowState, stream: WindowEvent[], firstSeq = 1) =>
  stream.map((e, i) => state.apply(e, firstSeq + i));

describe("WindowState", () => {
  it("gives every event the features a recomputation over all earlier-arrived events gives", () => {
    const stream = events(7, 4_000, fiveKeys);
    const got = applyAll(new WindowState(SPEC), stream);
    const want = recompute(SPEC, stream);
    expect(got).toEqual(want);
    // The stream did exercise lateness, the watermark boundary and out-of-order arrivals.
    expect(want.filter((o) => o.kind === "late").length).toBe(136);
    expect(stream.filter((e, i) => i > 0 && e.time < (stream[i - 1] as WindowEvent).time).length).toBe(1_977);
  });

  it("flags an event older than the watermark as late and changes nothing but the sequence", () => {
    const state = new WindowState(SPEC);
    const at = (time: number) => ({ key: "a", time, fields: { amount: 1, fee: 1 } });
    applyAll(state, [at(100 * MIN), at(100 * MIN - 10 * SEC)]);
    expect(state.watermark).toBe(100 * MIN - 30 * SEC);
    const before = state.snapshot();
    expect(state.apply(at(100 * MIN - 30 * SEC - 1), 3)).toEqual({ kind: "late" });
    expect(state.snapshot()).toEqual({ ...before, applied: [1, 2, 3] });
    // At the watermark is not late; the sliding window leaves out the two later (earlier-arrived) events.
    expect(state.apply(at(100 * MIN - 30 * SEC), 4)).toMatchObject({
      kind: "features",
      features: { count_1m: 1, count_1h: 3 },
    });
  });

  it("throws PoisonEventError for a window field that is not a number and changes nothing", () => {
    const state = new WindowState(SPEC);
    state.apply({ key: "a", time: 0, fields: { amount: 1, fee: 1 } }, 1);
    const before = state.snapshot();
    expect(() => state.apply({ key: "a", time: 1, fields: { amount: "12", fee: 1 } }, 2)).toThrow(
      new PoisonEventError('window field "amount": expected a number, got "12"'),
    );
    expect(() => state.apply({ key: "a", time: 1, fields: { amount: 1 } }, 2)).toThrow(
      new PoisonEventError('window field "fee": expected a number, got nothing'),
    );
    expect(state.snapshot()).toEqual(before);
  });

  it("holds only what the last window span can use, idle keys included, after 100,000 events", () => {
    // The first 10,000 events use keys that then go idle for good.
    const stream = events(11, 100_000, (i, rnd) => `${i < 10_000 ? "old" : "new"}-${Math.floor(rnd() * 50)}`);
    const state = new WindowState(SPEC);
    applyAll(state, stream);
    const w = state.watermark;
    const kept = recompute({ ...SPEC, windows: [] }, stream)
      .map((o, i) => (o.kind === "late" ? undefined : (stream[i] as WindowEvent)))
      .filter((e) => e !== undefined);
    const held = state.snapshot().keys;
    const moments = held.flatMap((k) => k.moments.map((m) => m.time));
    expect(Math.max(...stream.map((e) => e.time)) - (stream[0] as WindowEvent).time).toBeGreaterThan(
      3 * 60 * MIN,
    );
    expect(held.filter((k) => k.key.startsWith("old"))).toEqual([]);
    // Everything a future event can still need (newer than watermark − the 10 minute span) is held, and
    // nothing older than one sweep period (1 minute, the smallest window) before that.
    expect(moments.length).toBeGreaterThanOrEqual(kept.filter((e) => e.time > w - 10 * MIN).length);
    expect(moments.length).toBeLessThanOrEqual(kept.filter((e) => e.time > w - 11 * MIN).length);
    expect(Math.min(...moments)).toBeGreaterThan(w - 11 * MIN);
    for (const k of held)
      for (const b of k.buckets.flat()) expect(b.start).toBeGreaterThan(w - 60 * MIN - MIN);
  });

  it("continues from a snapshot as an uninterrupted run would, and ignores sequences already applied", () => {
    const stream = events(23, 3_000, fiveKeys);
    const whole = new WindowState(SPEC);
    const want = applyAll(whole, stream);
    for (const cut of [1, 777, 1_500, 2_999]) {
      const first = new WindowState(SPEC);
      applyAll(first, stream.slice(0, cut));
      // Through JSON, as the scorer stores it.
      const restored = WindowState.restore(SPEC, JSON.parse(JSON.stringify(first.snapshot())));
      expect([restored.has(cut), restored.has(cut + 1)]).toEqual([true, false]);
      const redeliveredFrom = Math.max(0, cut - 50);
      const got = applyAll(restored, stream.slice(redeliveredFrom), redeliveredFrom + 1);
      expect(got.slice(0, cut - redeliveredFrom).every((o) => o.kind === "replayed")).toBe(true);
      expect(got.slice(cut - redeliveredFrom)).toEqual(want.slice(cut));
      expect(restored.snapshot()).toEqual(whole.snapshot());
    }
  });

  it("applies a redelivery that arrives after newer sequences once, and settles sequences below the ack floor", () => {
    const stream = events(5, 40, fiveKeys);
    const state = new WindowState(SPEC);
    // 1-10 applied; 11-20 were in flight when their scorer died; 21-30 came first to the next one.
    applyAll(state, stream.slice(0, 10));
    applyAll(state, stream.slice(20, 30), 21);
    const late = applyAll(state, stream.slice(10, 20), 11);
    expect(late.some((o) => o.kind === "replayed")).toBe(false);
    expect(applyAll(state, stream.slice(0, 30)).every((o) => o.kind === "replayed")).toBe(true);
    state.settle(25);
    expect(state.snapshot()).toMatchObject({ floor: 25, applied: [26, 27, 28, 29, 30] });
    expect([state.has(3), state.has(25), state.has(30), state.has(31)]).toEqual([true, true, true, false]);
    state.settle(10);
    expect(state.snapshot().floor).toBe(25);
  });

  it("keeps only the watermark for a spec without windows", () => {
    const state = new WindowState(parseFeatureSpec({ key: "k", event_time: "ts", allowed_lateness: "1s" }));
    const at = (key: string, time: number) => ({ key, time, fields: {} });
    expect(applyAll(state, [at("a", 5_000), at("b", 3_999), at("c", 4_000)])).toEqual([
      { kind: "features", features: {} },
      { kind: "late" },
      { kind: "features", features: {} },
    ]);
    // No sequences either: a redelivered event (a retried batch) is judged again, never taken as replayed.
    expect(state.apply(at("a", 5_000), 1)).toEqual({ kind: "features", features: {} });
    expect(state.snapshot()).toEqual({
      windows: [],
      floor: 0,
      applied: [],
      maxEventTime: 5_000,
      nextSweep: null,
      keys: [],
    });
  });

  it("refuses a snapshot of other windows", () => {
    const snapshot = new WindowState(SPEC).snapshot();
    const other = parseFeatureSpec({ key: "k", event_time: "ts", allowed_lateness: "0s", windows: [] });
    expect(() => WindowState.restore(other, snapshot)).toThrow(
      `window snapshot is of windows [${SPEC.windows.map((w) => w.name).join(",")}], the spec has []`,
    );
  });
});

describe("parseFeatureSpec", () => {
  const spec = (over: Record<string, unknown>) => ({
    key: "card_id",
    event_time: "ts",
    allowed_lateness: "30s",
    windows: [{ name: "amount_sum_5m", type: "sliding", size: "5m", agg: "sum", field: "amount" }],
    ...over,
  });
  const problem = (input: unknown) => {
    try {
      parseFeatureSpec(input);
    } catch (err) {
      expect(err).toBeInstanceOf(FeatureSpecError);
      return (err as Error).message;
    }
    throw new Error("expected a FeatureSpecError");
  };

  it("reads the issue's example, durations in milliseconds", () => {
    expect(
      parseFeatureSpec({
        key: "card_id",
        event_time: "ts",
        allowed_lateness: "30s",
        windows: [
          { name: "amount_sum_5m", type: "sliding", size: "5m", agg: "sum", field: "amount" },
          { name: "tx_count_1h", type: "tumbling", size: "1h", agg: "count" },
        ],
        lookups: [{ bucket: "customers", key: "card_id", fields: ["segment", "limit"] }],
      }),
    ).toEqual({
      key: "card_id",
      event_time: "ts",
      allowed_lateness: 30_000,
      windows: [
        { name: "amount_sum_5m", type: "sliding", size: 300_000, agg: "sum", field: "amount" },
        { name: "tx_count_1h", type: "tumbling", size: 3_600_000, agg: "count" },
      ],
      lookups: [{ bucket: "customers", key: "card_id", fields: ["segment", "limit"] }],
    });
    const sizes = ["500ms", "30s", "5m", "1h", "1d"].map(
      (size) =>
        parseFeatureSpec(spec({ windows: [{ name: "w", type: "tumbling", size, agg: "count" }] })).windows[0]
          ?.size,
    );
    expect(sizes).toEqual([500, 30_000, 300_000, 3_600_000, 86_400_000]);
    expect(parseFeatureSpec(spec({ allowed_lateness: "0s", windows: undefined }))).toMatchObject({
      allowed_lateness: 0,
      windows: [],
      lookups: [],
    });
  });

  it("names the field of every problem", () => {
    const sumWithout = { name: "s", type: "sliding", size: "5m", agg: "sum" };
    expect(problem(spec({ windows: [sumWithout] }))).toBe('windows.0.field: required by agg "sum"');
    expect(
      problem(spec({ windows: [{ name: "c", type: "tumbling", size: "1h", agg: "count", field: "x" }] })),
    ).toBe('windows.0.field: not used by agg "count"');
    expect(problem(spec({ windows: [{ ...sumWithout, field: "a", size: "5 minutes" }] }))).toBe(
      'windows.0.size: expected a duration like 500ms, 30s, 5m, 1h or 1d, got "5 minutes"',
    );
    expect(problem(spec({ windows: [{ ...sumWithout, field: "a", size: "0s" }] }))).toBe(
      'windows.0.size: must be at least 1ms, got "0s"',
    );
    expect(problem(spec({ allowed_lateness: "-1s" }))).toBe(
      'allowed_lateness: expected a duration like 500ms, 30s, 5m, 1h or 1d, got "-1s"',
    );
    expect(problem(spec({ windows: [{ ...sumWithout, field: "a", agg: "median" }] }))).toBe(
      'windows.0.agg: Invalid option: expected one of "count"|"sum"|"mean"|"min"|"max"',
    );
    expect(problem(spec({ windows: [{ ...sumWithout, field: "a", type: "session" }] }))).toBe(
      'windows.0.type: Invalid option: expected one of "sliding"|"tumbling"',
    );
    expect(
      problem(
        spec({
          windows: [
            { ...sumWithout, field: "a" },
            { ...sumWithout, field: "b" },
          ],
          lookups: [{ bucket: "customers", key: "card_id", fields: ["segment", "s"] }],
        }),
      ),
    ).toBe(
      'windows.1.name: "s" is already a feature name; lookups.0.fields.1: "s" is already a feature name',
    );
    expect(problem(spec({ event_time: undefined, window: [] }))).toBe(
      'event_time: Invalid input: expected string, received undefined; spec: Unrecognized key: "window"',
    );
    expect(problem(spec({ lookups: [{ bucket: "customers", key: "card_id", fields: [] }] }))).toBe(
      "lookups.0.fields: Too small: expected array to have >=1 items",
    );
  });
});

describe("eventTimeMs", () => {
  it("reads ISO-8601 strings, a date-time without an offset as UTC, and epoch milliseconds", () => {
    expect(eventTimeMs("2026-12-02T07:59:29.5Z", "ts")).toBe(Date.UTC(2026, 11, 2, 7, 59, 29, 500));
    expect(eventTimeMs("2026-12-02T08:59:29.5+01:00", "ts")).toBe(Date.UTC(2026, 11, 2, 7, 59, 29, 500));
    expect(eventTimeMs("2026-12-02T07:59:29", "ts")).toBe(Date.UTC(2026, 11, 2, 7, 59, 29));
    expect(eventTimeMs("2026-12-02", "ts")).toBe(Date.UTC(2026, 11, 2));
    expect(eventTimeMs(1_796_198_369_500, "ts")).toBe(1_796_198_369_500);
  });

  it("refuses anything else, naming the field and the value", () => {
    const bad = (value: unknown, shown: string) =>
      expect(() => eventTimeMs(value, "ts")).toThrow(
        new PoisonEventError(
          `event time field "ts": expected an ISO-8601 string or epoch milliseconds, got ${shown}`,
        ),
      );
    bad("yesterday", '"yesterday"');
    bad("Dec 2 2026", '"Dec 2 2026"');
    bad("2026-13-01", '"2026-13-01"');
    bad("1796198369500", '"1796198369500"');
    bad(Number.NaN, "NaN");
    bad(true, "true");
    bad(null, "null");
    bad(undefined, "nothing");
  });
});
