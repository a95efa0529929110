// The staged canary policy alone (no NATS, the clock passed in), driven a minute at a time over synthetic stage
// windows: a healthy challenger walks every stage and is promoted; slow, erroring and less accurate ones are
// rolled back at the stage where they fail; too little traffic holds; a stored stage resumes where it was.
import {
  type CanaryRollout,
  type CanaryRolloutInput,
  CanaryRollout as CanaryRolloutSchema,
  type CanaryState,
  CanaryState as CanaryStateSchema,
  type ErrorCode,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import {
  type CanaryAction,
  type CanaryObservation,
  canaryStatus,
  decideCanary,
  startCanary,
} from "../src/canary.js";

const T0 = 1_700_000_000_000;
const MIN = 60_000;

const spec = (over: Partial<CanaryRolloutInput> = {}): CanaryRollout =>
  CanaryRolloutSchema.parse({ champion: "champ", challenger: "chall", ...over });

/** How a served model behaves at a given challenger percentage: latency, error rates by code, accuracy. */
interface Profile {
  p95: (percent: number) => number;
  p99: (percent: number) => number;
  errors?: (percent: number) => Partial<Record<ErrorCode, number>>;
  accuracy?: number;
}
const CHAMPION: Profile = { p95: () => 20, p99: () => 40, accuracy: 0.9 };
const HEALTHY: Profile = { p95: () => 21, p99: () => 42, accuracy: 0.91 };

/** The windows since the stage started when `rps` requests a second split at `percent`; half get labels. */
function observe(
  now: number,
  state: CanaryState,
  percent: number,
  rps: number,
  challenger: Profile,
): CanaryObservation {
  const seconds = (now - state.stage_started_at) / 1000;
  const window = (p: Profile, share: number) => {
    const requests = Math.floor((rps * share * seconds) / 100);
    const errors = Object.fromEntries(
      Object.entries(p.errors?.(percent) ?? {}).map(([code, rate]) => [code, Math.floor(rate * requests)]),
    );
    return { requests, errors, latency_ms: { p50: 1, p95: p.p95(percent), p99: p.p99(percent) } };
  };
  const champion = window(CHAMPION, 100 - percent);
  const chall = window(challenger, percent);
  const labelled = (n: number) => Math.floor(n / 2);
  return {
    now,
    champion,
    challenger: chall,
    accuracy: {
      champion: { labelled: labelled(champion.requests), accuracy: CHAMPION.accuracy! },
      challenger: { labelled: labelled(chall.requests), accuracy: challenger.accuracy ?? CHAMPION.accuracy! },
    },
  };
}

interface Step {
  at: number;
  stage: number;
  action: CanaryAction;
  observation: CanaryObservation;
}

/** Decides once a minute from `from` until the canary ends or `minutes` pass; every step. */
function run(
  s: CanaryRollout,
  challenger: Profile,
  o: { rps?: number; minutes?: number; state?: CanaryState; from?: number } = {},
): { steps: Step[]; state: CanaryState } {
  let state = o.state ?? startCanary(s, o.from ?? T0).state;
  const from = o.from ?? T0;
  const steps: Step[] = [];
  for (let i = 1; i <= (o.minutes ?? 120) && state.phase === "running"; i++) {
    const now = from + i * MIN;
    const observation = observe(now, state, s.stages[state.stage]!, o.rps ?? 10, challenger);
    const d = decideCanary(s, state, observation);
    steps.push({ at: now, stage: state.stage, action: d.action, observation });
    state = d.state;
  }
  return { steps, state };
}

const decisions = (steps: Step[]) =>
  steps.filter((s) => s.action.kind !== "hold").map((s) => ({ minute: (s.at - T0) / MIN, ...s.action }));

describe("staged canary policy", () => {
  it("walks a healthy challenger through every stage, a hold each, then promotes it", () => {
    // Half the requests get labels: at 5% of 10 rps, 50 labels by minute 4.
    const s = spec({ guards: { min_accuracy: { ratio: 0.98, min_labels: 50 } }, promote_alias: true });
    const { steps, state } = run(s, HEALTHY);
    // 5 minutes per stage: every guard is within its limit from the first minute with enough data.
    expect(decisions(steps)).toEqual([
      expect.objectContaining({ minute: 5, kind: "advance", from: 0, to: 1, percent: 20 }),
      expect.objectContaining({ minute: 10, kind: "advance", from: 1, to: 2, percent: 50 }),
      expect.objectContaining({ minute: 15, kind: "advance", from: 2, to: 3, percent: 100 }),
      expect.objectContaining({
        minute: 20,
        kind: "promote",
        champion: "chall",
        retired: "champ",
        move_alias: true,
      }),
    ]);
    const advance = steps.find((x) => x.action.kind === "advance")!.action;
    expect(advance.kind === "advance" && advance.routes).toEqual([
      { served_model_name: "champ", traffic_percentage: 80 },
      { served_model_name: "chall", traffic_percentage: 20 },
    ]);
    expect(steps.at(-1)!.action).toMatchObject({
      routes: [{ served_model_name: "chall", traffic_percentage: 100 }],
    });
    // Before each stage's 5 minutes: held, first for traffic (30, 60, 90 requests at 5%), never advanced early.
    expect(
      steps.filter((x) => x.action.kind === "hold").map((x) => x.action.kind === "hold" && x.action.reason),
    ).toEqual([...Array(3).fill("too_little_traffic"), ...Array(13).fill("window_not_elapsed")]);
    expect(state.phase).toBe("promoted");
    expect(state.history.map((e) => [e.event, e.percent])).toEqual([
      ["started", 5],
      ["advanced", 5],
      ["advanced", 20],
      ["advanced", 50],
      ["promoted", 100],
    ]);
    // At 100% the champion serves nothing: latency and accuracy compare with its numbers kept from 50%.
    const last = state.history.at(-1)!.guards;
    expect(last.map((g) => [g.guard, g.state, g.value, g.limit])).toEqual([
      ["retryable_error_rate", "ok", 0, 0.05],
      ["non_retryable_error_rate", "ok", 0, 0.01],
      ["p95_latency_ratio", "ok", 1.05, 1.2],
      ["p99_latency_ratio", "ok", 1.05, 1.2],
      ["accuracy_ratio", "ok", Math.round((0.91 / 0.9) * 1000) / 1000, 0.98],
    ]);
    expect(last[2]!.note).toBe("21 ms against 20 ms of the champion's baseline of stage 3");
  });

  // Each challenger is fine below its failing percentage; 10 requests a second give the challenger its 100
  // requests within the first minute from 20% on, and within 4 minutes at 5%.
  const failing: [string, Profile, Partial<CanaryRolloutInput>, number, string, number, number][] = [
    [
      "slower under load (p95)",
      { ...HEALTHY, p95: (p) => 20 * (1 + p / 100) },
      {},
      2,
      "p95_latency_ratio",
      1.5,
      1.2,
    ],
    [
      "slower at full traffic (p99)",
      { ...HEALTHY, p99: (p) => (p === 100 ? 100 : 40) },
      {},
      3,
      "p99_latency_ratio",
      2.5,
      1.2,
    ],
    [
      "overloaded from 20% (retryable)",
      {
        ...HEALTHY,
        errors: (p) => (p >= 20 ? { TEMPORARILY_UNAVAILABLE: 0.1, DEADLINE_EXCEEDED: 0.02 } : {}),
      },
      {},
      1,
      "retryable_error_rate",
      0.12,
      0.05,
    ],
    [
      "failing requests (non-retryable)",
      { ...HEALTHY, errors: () => ({ INTERNAL_ERROR: 0.05 }) },
      {},
      0,
      "non_retryable_error_rate",
      0.05,
      0.01,
    ],
    [
      "less accurate",
      { ...HEALTHY, accuracy: 0.85 },
      { guards: { min_accuracy: { ratio: 0.98, min_labels: 100 } } },
      0,
      "accuracy_ratio",
      0.944,
      0.98,
    ],
  ];
  it.each(failing)(
    "rolls back a challenger %s at the stage where it fails",
    (_, profile, over, stage, guard, value, limit) => {
      const s = spec(over);
      const { steps, state } = run(s, profile);
      const rollback = steps.at(-1)!;
      expect(rollback.stage).toBe(stage);
      expect(rollback.action).toMatchObject({
        kind: "rollback",
        guard,
        limit,
        routes: [
          { served_model_name: "champ", traffic_percentage: 100 },
          { served_model_name: "chall", traffic_percentage: 0 },
        ],
      });
      const got = rollback.action.kind === "rollback" ? rollback.action.value : Number.NaN;
      expect(got).toBeCloseTo(value, 2);
      // Every stage before it was walked in full; the failing one ended as soon as it had enough data.
      expect(decisions(steps).map((d) => d.kind)).toEqual([...Array(stage).fill("advance"), "rollback"]);
      expect(state.phase).toBe("rolled_back");
      expect(state.history.at(-1)).toMatchObject({ event: "rolled_back", stage, percent: s.stages[stage] });
      expect(state.history.at(-1)!.message).toContain(`${guard} ${got} (limit ${limit}`);
    },
  );

  it("holds a less accurate challenger until enough labels, then rolls it back", () => {
    const s = spec({ hold: { duration: "2m" }, guards: { min_accuracy: { ratio: 0.98, min_labels: 100 } } });
    const { steps } = run(s, { ...HEALTHY, accuracy: 0.85 });
    // At 5% of 10 rps, half labelled: 100 requests by minute 4 but 100 labels only by minute 7.
    expect(steps.map((x) => (x.action.kind === "hold" ? x.action.reason : x.action.kind))).toEqual([
      "too_little_traffic",
      "too_little_traffic",
      "too_little_traffic",
      "too_few_labels",
      "too_few_labels",
      "too_few_labels",
      "rollback",
    ]);
  });

  it("holds on too little traffic instead of deciding on a few requests, however long the stage", () => {
    // Half the challenger's requests fail, but at 1 rps it takes 5% of traffic 2000 s to see 100 requests.
    const erroring = { ...HEALTHY, errors: () => ({ INTERNAL_ERROR: 0.5 }) };
    const { steps } = run(spec(), erroring, { rps: 1 });
    const enoughAt = Math.ceil(100 / (1 * 0.05) / 60);
    expect(steps).toHaveLength(enoughAt);
    for (const x of steps.slice(0, -1)) {
      expect(x.action).toMatchObject({ kind: "hold", reason: "too_little_traffic" });
      expect(x.observation.challenger.requests).toBeLessThan(100);
    }
    const held = steps[enoughAt - 2]!;
    expect(held.action).toMatchObject({ message: expect.stringContaining("99 of 100 challenger requests") });
    expect(steps.at(-1)!.action).toMatchObject({
      kind: "rollback",
      guard: "non_retryable_error_rate",
      value: 0.5,
    });
  });

  it("holds a stage whose champion has too little traffic and no baseline to compare with", () => {
    // The first stage, with no baseline yet, where the champion saw 3 requests: the latency ratios cannot be read.
    const s = spec({ stages: [50, 100], hold: { duration: 0 } });
    const { state } = startCanary(s, T0);
    const d = decideCanary(s, state, {
      now: T0 + MIN,
      champion: { requests: 3, errors: {}, latency_ms: { p50: 1, p95: 20, p99: 40 } },
      challenger: { requests: 500, errors: {}, latency_ms: { p50: 1, p95: 80, p99: 90 } },
    });
    expect(d.action).toMatchObject({
      kind: "hold",
      reason: "too_little_traffic",
      message: expect.stringContaining("3 of 100 champion requests and no baseline"),
    });
  });

  it("resumes from a stored stage (a new leader) and never restarts from the first", () => {
    const s = spec({ guards: { min_accuracy: { ratio: 0.98, min_labels: 50 } } });
    const first = run(s, HEALTHY, { minutes: 12 });
    expect(first.state).toMatchObject({ phase: "running", stage: 2, stage_started_at: T0 + 10 * MIN });
    // What a new leader reads back from KV, two minutes into stage 3 (50%).
    const stored = CanaryStateSchema.parse(JSON.parse(JSON.stringify(first.state)));
    const resumed = run(s, HEALTHY, { state: stored, from: T0 + 12 * MIN });
    expect(decisions(resumed.steps)).toEqual([
      expect.objectContaining({ minute: 15, kind: "advance", from: 2, to: 3 }),
      expect.objectContaining({ minute: 20, kind: "promote" }),
    ]);
    expect(resumed.steps.every((x) => x.stage >= 2)).toBe(true);
    expect(resumed.state.history.map((e) => e.event)).toEqual([
      "started",
      "advanced",
      "advanced",
      "advanced",
      "promoted",
    ]);
  });

  it("holds while paused, and does nothing once finished", () => {
    const s = spec();
    const { state } = startCanary(s, T0);
    const failing = observe(T0 + 10 * MIN, state, 5, 10, {
      ...HEALTHY,
      errors: () => ({ INTERNAL_ERROR: 0.5 }),
    });
    expect(decideCanary(s, { ...state, phase: "paused" }, failing).action).toMatchObject({
      kind: "hold",
      reason: "paused",
    });
    for (const phase of ["promoted", "rolled_back", "aborted"] as const) {
      const d = decideCanary(s, { ...state, phase }, failing);
      expect(d.action).toEqual({ kind: "finished", phase });
      expect(d.state.history).toHaveLength(1);
    }
  });

  it("shows each guard's current value against its limit in the status", () => {
    const s = spec({ guards: { min_accuracy: { ratio: 0.98, min_labels: 50 } } });
    const { state } = startCanary(s, T0);
    const status = canaryStatus(s, state, {
      now: T0 + 3 * MIN,
      champion: { requests: 2000, errors: {}, latency_ms: { p50: 5, p95: 20, p99: 40 } },
      challenger: {
        requests: 120,
        errors: { TEMPORARILY_UNAVAILABLE: 3, INVALID_PARAMETER_VALUE: 1 },
        latency_ms: { p50: 5, p95: 22, p99: 60 },
      },
      accuracy: { champion: { labelled: 900, accuracy: 0.9 }, challenger: { labelled: 30, accuracy: 0.5 } },
    });
    expect(status).toMatchObject({
      phase: "running",
      stage: 0,
      stages: [5, 20, 50, 100],
      percent: 5,
      hold: { elapsed_ms: 3 * MIN, duration_ms: 5 * MIN, requests: 120, min_requests: 100 },
    });
    expect(status.guards).toEqual([
      { guard: "retryable_error_rate", state: "ok", value: 0.025, limit: 0.05, note: "3 of 120 requests" },
      {
        guard: "non_retryable_error_rate",
        state: "ok",
        value: 0.008,
        limit: 0.01,
        note: "1 of 120 requests",
      },
      {
        guard: "p95_latency_ratio",
        state: "ok",
        value: 1.1,
        limit: 1.2,
        note: "22 ms against 20 ms of the champion over this stage",
      },
      {
        guard: "p99_latency_ratio",
        state: "failed",
        value: 1.5,
        limit: 1.2,
        note: "60 ms against 40 ms of the champion over this stage",
      },
      {
        guard: "accuracy_ratio",
        state: "waiting",
        value: null,
        limit: 0.98,
        note: "30 of 50 challenger labels",
      },
    ]);
  });
});
