// The staged canary policy alone (no NATS, the clock passed in), driven a minute at a time over synthetic stage
// windows: a healthy challenger walks every stage and is promoted; slow, erroring and less accurate ones are
// rolled back at the stage where they fail; too little traffic holds; a stored stage resumes where it was.
import {
  type CanaryReadings,
  type CanaryRollout,
  type CanaryRolloutInput,
  CanaryRollout as CanaryRolloutSchema,
  type CanaryState,
  CanaryState as CanaryStateSchema,
  type EndpointConfig,
  type ErrorCode,
  normalizeEndpointConfig,
  SwitchyardError,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import {
  abortCanary,
  type CanaryAction,
  type CanaryObservation,
  canarySpec,
  canaryView,
  configAfterAliasPromotion,
  decideCanary,
  pauseCanary,
  readGuards,
  resumeCanary,
  routesOfCanary,
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
    const observation: CanaryObservation = {
      now: T0 + 3 * MIN,
      champion: { requests: 2000, errors: {}, latency_ms: { p50: 5, p95: 20, p99: 40 } },
      challenger: {
        requests: 120,
        errors: { TEMPORARILY_UNAVAILABLE: 3, INVALID_PARAMETER_VALUE: 1 },
        latency_ms: { p50: 5, p95: 22, p99: 60 },
      },
      accuracy: { champion: { labelled: 900, accuracy: 0.9 }, challenger: { labelled: 30, accuracy: 0.5 } },
    };
    // The leader stores what it read; any coordinator answers status from that.
    const readings: CanaryReadings = {
      at: observation.now,
      stage_started_at: T0,
      observed_since: T0,
      requests: { champion: 2000, challenger: 120 },
      guards: readGuards(s, state, observation),
      message: decideCanary(s, state, observation).action.kind,
    };
    const status = canaryView("ep", { spec: s, state, readings }, T0 + 3 * MIN);
    expect(status).toMatchObject({
      endpoint: "ep",
      champion: "champ",
      challenger: "chall",
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
        note: "30 of 50 labelled challenger rows",
      },
    ]);
  });

  it("answers status with every guard waiting before the leader has read a stage", () => {
    const s = spec();
    const { state } = startCanary(s, T0);
    const view = canaryView("ep", { spec: s, state, readings: null }, T0 + 10_000);
    expect(view).toMatchObject({
      phase: "running",
      percent: 5,
      observed_at: null,
      hold: { elapsed_ms: 10_000, requests: 0, min_requests: 100 },
      message: "chall starts at 5% against champ",
    });
    expect(view.guards.map((g) => [g.guard, g.state, g.note])).toEqual([
      ["retryable_error_rate", "waiting", "0 of 100 challenger requests"],
      ["non_retryable_error_rate", "waiting", "0 of 100 challenger requests"],
      ["p95_latency_ratio", "waiting", "0 of 100 challenger requests"],
      ["p99_latency_ratio", "waiting", "0 of 100 challenger requests"],
    ]);
  });
});

describe("pause, resume and abort", () => {
  const s = spec();
  const started = startCanary(s, T0).state;

  it("pauses a running canary at its stage, resumes it with the stage's hold started again", () => {
    const paused = pauseCanary(s, started, T0 + MIN);
    expect(paused).toMatchObject({ phase: "paused", stage: 0, stage_started_at: T0 });
    expect(routesOfCanary(s, paused)).toEqual([
      { served_model_name: "champ", traffic_percentage: 95 },
      { served_model_name: "chall", traffic_percentage: 5 },
    ]);
    expect(() => pauseCanary(s, paused, T0 + MIN)).toThrow("the canary is paused, not running");
    const resumed = resumeCanary(s, paused, T0 + 2 * MIN);
    expect(resumed).toMatchObject({ phase: "running", stage: 0, stage_started_at: T0 + 2 * MIN });
    expect(() => resumeCanary(s, resumed, T0 + 2 * MIN)).toThrow("the canary is running, not paused");
    expect(resumed.history.map((e) => [e.event, e.at, e.message])).toEqual([
      ["started", T0, "chall starts at 5% against champ"],
      ["paused", T0 + MIN, "paused at stage 1 of 4 (5%)"],
      ["resumed", T0 + 2 * MIN, "resumed at stage 1 of 4 (5%); the stage's hold starts again"],
    ]);
  });

  it("aborts a running or paused canary back to the champion, and refuses to abort one that ended", () => {
    for (const state of [started, pauseCanary(s, started, T0 + MIN)]) {
      const { state: aborted, routes } = abortCanary(s, state, T0 + 2 * MIN);
      expect(aborted.phase).toBe("aborted");
      expect(aborted.history.at(-1)).toMatchObject({
        event: "aborted",
        message: "aborted at stage 1 of 4 (5%): champ takes all traffic back",
      });
      expect(routes).toEqual([
        { served_model_name: "champ", traffic_percentage: 100 },
        { served_model_name: "chall", traffic_percentage: 0 },
      ]);
      expect(routesOfCanary(s, aborted)).toEqual(routes);
      let err: unknown;
      try {
        abortCanary(s, aborted, T0 + 3 * MIN);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SwitchyardError);
      expect((err as SwitchyardError).code).toBe("RESOURCE_CONFLICT");
      expect((err as SwitchyardError).message).toBe("the canary is already over (aborted)");
    }
    expect(routesOfCanary(s, { ...started, phase: "promoted" })).toEqual([
      { served_model_name: "champ", traffic_percentage: 0 },
      { served_model_name: "chall", traffic_percentage: 100 },
    ]);
  });
});

describe("the rollout a start runs", () => {
  const config = (input: Record<string, unknown>): EndpointConfig => {
    const n = normalizeEndpointConfig(input);
    if (!n.config) throw new Error(JSON.stringify(n.problems));
    return n.config;
  };
  const two = (a: number, extra: Record<string, unknown> = {}) =>
    config({
      served_entities: [
        { name: "a", entity_name: "m", entity_version: "1" },
        { name: "b", entity_name: "m", entity_version: "2" },
      ],
      traffic_config: {
        routes: [
          { served_model_name: "a", traffic_percentage: a },
          { served_model_name: "b", traffic_percentage: 100 - a },
        ],
      },
      ...extra,
    });
  const problem = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect((e as SwitchyardError).code).toBe("INVALID_PARAMETER_VALUE");
      return (e as Error).message;
    }
    throw new Error("expected INVALID_PARAMETER_VALUE");
  };

  it("takes the busier of two served models as the champion when nothing names them", () => {
    expect(canarySpec(two(90), {})).toMatchObject({
      champion: "a",
      challenger: "b",
      stages: [5, 20, 50, 100],
    });
    expect(canarySpec(two(10), {})).toMatchObject({ champion: "b", challenger: "a" });
    expect(canarySpec(two(90), { challenger: "a" })).toMatchObject({ champion: "b", challenger: "a" });
  });

  it("merges the body's overrides over the config's rollout section, field by field", () => {
    const c = two(100, {
      rollout: {
        champion: "a",
        challenger: "b",
        hold: { duration: "10m", min_requests: 500 },
        stages: [10, 100],
      },
    });
    expect(c.rollout?.hold).toEqual({ duration: 600_000, min_requests: 500 });
    const s = canarySpec(c, { hold: { duration: "1s" }, guards: { max_latency_ratio: { p99: 2 } } });
    expect(s.hold).toEqual({ duration: 1_000, min_requests: 500 });
    expect(s.stages).toEqual([10, 100]);
    expect(s.guards.max_latency_ratio).toEqual({ p95: 1.2, p99: 2 });
  });

  it("names the field of every bad override or section", () => {
    expect(problem(() => canarySpec(two(90), { stages: [50, 20] }))).toBe(
      "invalid rollout (2 problems): stages.1: stages must increase: 20 follows 50; " +
        "stages.1: the last stage must be 100 (the challenger takes all traffic before promotion), got 20",
    );
    expect(problem(() => canarySpec(two(90), { champion: "c" }))).toBe(
      "invalid rollout (1 problem): champion: 'c' is not a served model of this endpoint (served models: 'a', 'b')",
    );
    expect(problem(() => canarySpec(two(90), { guards: { min_accuracy: { ratio: 0.9 } } }))).toBe(
      "invalid rollout (1 problem): guards.min_accuracy: needs the inference table: enable auto_capture_config " +
        "(labels are joined to the predictions it captures)",
    );
    expect(problem(() => canarySpec(two(90), { hold: { min_request: 5 } }))).toContain(
      "hold: Unrecognized key",
    );
    const busy = config({
      served_entities: ["a", "b", "c"].map((name, i) => ({
        name,
        entity_name: "m",
        entity_version: String(i + 1),
      })),
      traffic_config: {
        routes: [
          { served_model_name: "a", traffic_percentage: 90 },
          { served_model_name: "c", traffic_percentage: 10 },
        ],
      },
    });
    let conflict: SwitchyardError | undefined;
    try {
      canarySpec(busy, { champion: "a", challenger: "b" });
    } catch (e) {
      conflict = e as SwitchyardError;
    }
    expect([conflict?.code, conflict?.message]).toEqual([
      "RESOURCE_CONFLICT",
      "'c' (10%) takes traffic: a canary splits all of it between a and b; route the others to 0% first",
    ]);
    const shadowed = config({
      served_entities: ["a", "b"].map((name, i) => ({
        name,
        entity_name: "m",
        entity_version: String(i + 1),
      })),
      traffic_config: { routes: [{ served_model_name: "a", traffic_percentage: 100 }] },
      shadow_config: { routes: [{ served_model_name: "b", mirror_percentage: 100 }] },
    });
    expect(problem(() => canarySpec(shadowed, {}))).toBe(
      "invalid rollout (1 problem): challenger: 'b' is a shadow of this endpoint (config.shadow_config): " +
        "remove it from shadow_config first",
    );
    const three = config({
      served_entities: ["a", "b", "c"].map((name, i) => ({
        name,
        entity_name: "m",
        entity_version: String(i + 1),
      })),
      traffic_config: { routes: [{ served_model_name: "a", traffic_percentage: 100 }] },
    });
    expect(problem(() => canarySpec(three, { challenger: "b" }))).toBe(
      "invalid rollout (1 problem): champion: required: the endpoint serves 3 models (a, b, c), name the champion",
    );
    const bad = normalizeEndpointConfig({
      served_entities: [{ name: "a", entity_name: "m", entity_version: "1" }],
      rollout: { champion: "a", challenger: "z", guards: { min_accuracy: { ratio: 0.9 } } },
    });
    expect(bad.problems).toEqual([
      {
        field: "config.rollout.challenger",
        message: "'z' is not a served model of this endpoint (served models: 'a')",
      },
      {
        field: "config.rollout.guards.min_accuracy",
        message:
          "needs the inference table: enable auto_capture_config (labels are joined to the predictions it captures)",
      },
    ]);
  });
});

describe("the config after a promotion that moved the aliases", () => {
  const served = (name: string, version: string) => ({
    name,
    model_name: "fraud",
    model_version: version,
    workload_size: "Small" as const,
    scale_to_zero_enabled: false,
    extra: {},
    form: "served_entities" as const,
  });
  const config = (champion: string, challenger: string) => ({
    served_models: [served("a", champion), served("b", challenger)],
    routes: [
      { served_model_name: "a", traffic_percentage: 0 },
      { served_model_name: "b", traffic_percentage: 100 },
    ],
    shadow_config: { routes: [{ served_model_name: "b", mirror_percentage: 10 }], max_in_flight: 64 },
  });

  it("drops served models that followed @challenger when the champion follows @champion", () => {
    expect(
      configAfterAliasPromotion(config("@champion", "@challenger"), { champion: "a" }, "fraud", 2),
    ).toEqual({
      served_models: [served("a", "@champion")],
      routes: [{ served_model_name: "a", traffic_percentage: 100 }],
    });
  });

  it("pins them to the promoted version when the champion is pinned", () => {
    const next = configAfterAliasPromotion(config("1", "@challenger"), { champion: "a" }, "fraud", 2);
    expect(next?.served_models.map((s) => s.model_version)).toEqual(["1", "2"]);
    expect(next?.routes).toEqual(config("1", "@challenger").routes);
  });

  it("changes nothing when no served model follows @challenger", () => {
    expect(configAfterAliasPromotion(config("1", "2"), { champion: "a" }, "fraud", 2)).toBeUndefined();
  });
});
