// The `rollout` section of an endpoint: defaults, strictness, and problems that name their field.
import { describe, expect, it } from "vitest";
import { CanaryRollout, CanaryState, parseCanaryRollout } from "../src/mod.js";

const problems = (input: unknown) =>
  parseCanaryRollout(input).problems.map((p) => `${p.field}: ${p.message}`);

describe("canary rollout section", () => {
  it("fills every default", () => {
    expect(CanaryRollout.parse({ champion: "a", challenger: "b" })).toEqual({
      champion: "a",
      challenger: "b",
      stages: [5, 20, 50, 100],
      hold: { duration: 300_000, min_requests: 100 },
      guards: {
        max_error_rate: { retryable: 0.05, non_retryable: 0.01 },
        max_latency_ratio: { p95: 1.2, p99: 1.2 },
      },
      promote_alias: false,
    });
  });

  it("takes durations as people write them and partial sections", () => {
    const r = CanaryRollout.parse({
      champion: "a",
      challenger: "b",
      stages: [10, 100],
      hold: { duration: "30m" },
      guards: { max_latency_ratio: { p99: 1.5 }, min_accuracy: { ratio: 0.97 } },
      promote_alias: true,
    });
    expect(r.hold).toEqual({ duration: 1_800_000, min_requests: 100 });
    expect(r.guards.max_latency_ratio).toEqual({ p95: 1.2, p99: 1.5 });
    expect(r.guards.min_accuracy).toEqual({ ratio: 0.97, min_labels: 100 });
  });

  it("names the field of every problem", () => {
    expect(problems({ champion: "a", challenger: "a", stages: [20, 5, 50] })).toEqual([
      "rollout.challenger: must differ from champion ('a')",
      "rollout.stages.1: stages must increase: 5 follows 20",
      "rollout.stages.2: the last stage must be 100 (the challenger takes all traffic before promotion), got 50",
    ]);
    const [unknown] = problems({ champion: "a", challenger: "b", guards: { max_error: 0.1 } });
    expect(unknown).toMatch(/^rollout\.guards: .*max_error/);
    expect(problems({ champion: "a", challenger: "b", hold: { duration: "soon" } })).toEqual([
      'rollout.hold.duration: expected a duration such as 30s, 30m, 2h, 500ms or a number of milliseconds, got "soon"',
    ]);
    expect(problems({ champion: "a b", challenger: "b" })).toEqual([
      "rollout.champion: expected the name of a served model of this endpoint ([A-Za-z0-9_-]{1,63})",
    ]);
    for (const [input, field] of [
      [{ stages: [100] }, "rollout.stages"],
      [{ stages: [0, 100] }, "rollout.stages.0"],
      [{ hold: { min_requests: 0 } }, "rollout.hold.min_requests"],
      [{ guards: { max_error_rate: { retryable: 1.5 } } }, "rollout.guards.max_error_rate.retryable"],
      [{ guards: { max_latency_ratio: { p95: 0 } } }, "rollout.guards.max_latency_ratio.p95"],
      [{ guards: { min_accuracy: { min_labels: 10 } } }, "rollout.guards.min_accuracy.ratio"],
      [{ promote_alias: "yes" }, "rollout.promote_alias"],
    ] as const) {
      const got = parseCanaryRollout({ champion: "a", challenger: "b", ...input }).problems.map(
        (p) => p.field,
      );
      expect(got, JSON.stringify(input)).toEqual([field]);
    }
  });

  it("keeps stored state strict", () => {
    const state = {
      phase: "running",
      stage: 1,
      stage_started_at: 2,
      started_at: 1,
      baseline: null,
      history: [],
    };
    expect(CanaryState.parse(state)).toEqual(state);
    expect(CanaryState.safeParse({ ...state, phase: "walking" }).success).toBe(false);
    expect(CanaryState.safeParse({ ...state, extra: 1 }).success).toBe(false);
  });
});
