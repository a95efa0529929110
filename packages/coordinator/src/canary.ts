// The staged canary policy: from an endpoint's `rollout` section, the stored canary state, the champion's and
// the challenger's metrics over the current stage, their accuracy on labelled requests and the time, to the next
// action — hold, advance, promote or roll back — and the status people read (each guard against its limit).
// Pure: it never touches NATS or reads the clock, and what a new leader needs is in the state it returns.

import { duration } from "@switchyard/autoscaler";
import {
  CANARY_HISTORY,
  type CanaryBaseline,
  type CanaryEvent,
  type CanaryGuardReading,
  CanaryRollout,
  type CanaryState,
  type CanaryView,
  type ConfigProblem,
  canaryActive,
  canaryConfigProblems,
  type EndpointConfig,
  ERROR_CATALOG,
  isErrorCode,
  type MetricsWindow,
  type StoredCanary,
  SwitchyardError,
  type TrafficRoute,
  zodProblems,
} from "@switchyard/protocol";

/** What the policy reads of a served model's metrics over the current stage (since `stage_started_at`). */
export type CanaryWindow = Pick<MetricsWindow, "requests" | "errors" | "latency_ms">;

/** Labels joined to a served model's predictions of the stage's requests. */
export interface LabelledAccuracy {
  labelled: number;
  /** Correct over labelled, 0..1. */
  accuracy: number;
}

export interface CanaryObservation {
  now: number;
  champion: CanaryWindow;
  challenger: CanaryWindow;
  /** Absent while no label arrived (or the rollout has no accuracy guard). */
  accuracy?: { champion: LabelledAccuracy; challenger: LabelledAccuracy };
}

export type CanaryHoldReason = "paused" | "too_little_traffic" | "too_few_labels" | "window_not_elapsed";

export type CanaryAction =
  | { kind: "hold"; reason: CanaryHoldReason; message: string }
  | { kind: "advance"; from: number; to: number; percent: number; routes: TrafficRoute[]; message: string }
  | {
      kind: "promote";
      /** The served model that now takes all traffic, and the one it replaces. */
      champion: string;
      retired: string;
      /** Move `@champion` to the challenger's version and remove `@challenger` (`promote_alias`). */
      move_alias: boolean;
      routes: TrafficRoute[];
      message: string;
    }
  | {
      kind: "rollback";
      /** The first guard that failed; `failed` has every one. */
      guard: CanaryGuardReading["guard"];
      value: number;
      limit: number;
      failed: CanaryGuardReading[];
      routes: TrafficRoute[];
      message: string;
    }
  /** The canary is over (promoted, rolled back or aborted): nothing more to do. */
  | { kind: "finished"; phase: CanaryState["phase"] };

export interface CanaryDecision {
  action: CanaryAction;
  /** The state to store (the same object when the action is a hold or finished). */
  state: CanaryState;
  /** Every guard as read for this decision (also in the history event of anything but a hold). */
  guards: CanaryGuardReading[];
}

/** The endpoint's routes with the challenger at `percent`, the champion taking the rest. */
export function canaryRoutes(spec: Pick<CanaryRollout, "champion" | "challenger">, percent: number) {
  return [
    { served_model_name: spec.champion, traffic_percentage: 100 - percent },
    { served_model_name: spec.challenger, traffic_percentage: percent },
  ] satisfies TrafficRoute[];
}

/** A canary starting now at its first stage; the routes to set with it. */
export function startCanary(
  spec: CanaryRollout,
  now: number,
): { state: CanaryState; routes: TrafficRoute[] } {
  const percent = spec.stages[0]!;
  return {
    state: {
      phase: "running",
      stage: 0,
      stage_started_at: now,
      started_at: now,
      baseline: null,
      history: [
        {
          at: now,
          event: "started",
          stage: 0,
          percent,
          message: `${spec.challenger} starts at ${percent}% against ${spec.champion}`,
          guards: [],
        },
      ],
    },
    routes: canaryRoutes(spec, percent),
  };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The challenger's errors over the stage split by the catalog's retryable flag (unknown codes: not retryable). */
function errorCounts(w: CanaryWindow): { retryable: number; non_retryable: number } {
  const counts = { retryable: 0, non_retryable: 0 };
  for (const [code, n] of Object.entries(w.errors)) {
    counts[isErrorCode(code) && ERROR_CATALOG[code].retryable ? "retryable" : "non_retryable"] += n ?? 0;
  }
  return counts;
}

/**
 * The champion's side of a comparison: its own numbers over this stage when it had enough traffic (the fairest
 * comparison, same time and load), else the baseline kept from the last stage where it had (at 100% it has none).
 */
function championLatency(spec: CanaryRollout, state: CanaryState, o: CanaryObservation) {
  if (o.champion.requests >= spec.hold.min_requests) {
    return {
      p95: o.champion.latency_ms.p95,
      p99: o.champion.latency_ms.p99,
      from: "the champion over this stage",
    };
  }
  const b = state.baseline;
  if (b?.p95_ms !== undefined && b.p99_ms !== undefined) {
    return { p95: b.p95_ms, p99: b.p99_ms, from: `the champion's baseline of stage ${b.stage + 1}` };
  }
  return undefined;
}

function championAccuracy(min: number, state: CanaryState, o: CanaryObservation) {
  const c = o.accuracy?.champion;
  if (c && c.labelled >= min) return { accuracy: c.accuracy, from: "the champion over this stage" };
  const b = state.baseline;
  if (b?.accuracy !== undefined)
    return { accuracy: b.accuracy, from: `the champion's baseline of stage ${b.stage + 1}` };
  return undefined;
}

/** Every guard of the rollout read over the current stage. */
export function readGuards(
  spec: CanaryRollout,
  state: CanaryState,
  o: CanaryObservation,
): CanaryGuardReading[] {
  const { guards, hold } = spec;
  const requests = o.challenger.requests;
  const enough = requests >= hold.min_requests;
  const traffic = `${requests} of ${hold.min_requests} challenger requests`;
  const reading = (
    guard: CanaryGuardReading["guard"],
    value: number | undefined,
    limit: number,
    ok: (v: number) => boolean,
    note: string,
  ): CanaryGuardReading =>
    value === undefined
      ? { guard, state: "waiting", value: null, limit, note }
      : { guard, state: ok(value) ? "ok" : "failed", value: round3(value), limit, note };
  const atMost = (limit: number) => (v: number) => v <= limit;

  const errors = errorCounts(o.challenger);
  const out = (["retryable", "non_retryable"] as const).map((kind) => {
    const n = errors[kind];
    const limit = guards.max_error_rate[kind];
    return reading(
      `${kind}_error_rate`,
      enough ? n / requests : undefined,
      limit,
      atMost(limit),
      enough ? `${n} of ${requests} requests` : traffic,
    );
  });
  const champion = championLatency(spec, state, o);
  for (const q of ["p95", "p99"] as const) {
    const limit = guards.max_latency_ratio[q];
    const c = o.challenger.latency_ms[q];
    let value: number | undefined;
    let note: string;
    if (!enough) note = traffic;
    else if (!champion)
      note = `${o.champion.requests} of ${hold.min_requests} champion requests and no baseline`;
    else {
      // A champion answering in no measurable time leaves nothing to be slower than: the ratio is 1 at worst.
      value = champion[q] > 0 ? c / champion[q] : 1;
      note = `${c} ms against ${champion[q]} ms of ${champion.from}`;
    }
    out.push(reading(`${q}_latency_ratio`, value, limit, atMost(limit), note));
  }
  const acc = guards.min_accuracy;
  if (acc) {
    const challenger = o.accuracy?.challenger;
    const labelled = challenger?.labelled ?? 0;
    const champion = championAccuracy(acc.min_labels, state, o);
    let value: number | undefined;
    let note: string;
    if (!challenger || labelled < acc.min_labels)
      note = `${labelled} of ${acc.min_labels} labelled challenger rows`;
    else if (!champion)
      note = `${o.accuracy?.champion.labelled ?? 0} of ${acc.min_labels} labelled champion rows and no baseline`;
    else {
      // A champion never right leaves nothing to be less accurate than.
      value = champion.accuracy > 0 ? challenger.accuracy / champion.accuracy : 1;
      note = `${round3(challenger.accuracy)} against ${round3(champion.accuracy)} of ${champion.from}`;
    }
    out.push(reading("accuracy_ratio", value, acc.ratio, (v) => v >= acc.ratio, note));
  }
  return out;
}

/** The champion's numbers of this stage, kept for later stages where it serves too little to measure. */
function nextBaseline(spec: CanaryRollout, state: CanaryState, o: CanaryObservation): CanaryBaseline | null {
  const b: CanaryBaseline = { ...state.baseline, stage: state.stage };
  if (o.champion.requests >= spec.hold.min_requests) {
    b.p95_ms = o.champion.latency_ms.p95;
    b.p99_ms = o.champion.latency_ms.p99;
  }
  const acc = o.accuracy?.champion;
  if (spec.guards.min_accuracy && acc && acc.labelled >= spec.guards.min_accuracy.min_labels)
    b.accuracy = acc.accuracy;
  return b.p95_ms === undefined && b.accuracy === undefined ? state.baseline : b;
}

const describeGuard = (g: CanaryGuardReading) => `${g.guard} ${g.value} (limit ${g.limit}: ${g.note})`;

/**
 * One step. Rolls back as soon as any guard judged over enough traffic fails; holds while a guard still waits
 * for traffic or labels, or the stage's duration has not passed; then advances to the next stage, or at the
 * last (100%) promotes the challenger. Every decision but a hold is recorded in the history with the readings.
 */
export function decideCanary(spec: CanaryRollout, state: CanaryState, o: CanaryObservation): CanaryDecision {
  const guards = readGuards(spec, state, o);
  const hold = (reason: CanaryHoldReason, message: string): CanaryDecision => ({
    action: { kind: "hold", reason, message },
    state,
    guards,
  });
  if (state.phase === "paused") return hold("paused", "paused: the stage holds until the canary is resumed");
  if (state.phase !== "running") return { action: { kind: "finished", phase: state.phase }, state, guards };

  const percent = spec.stages[state.stage]!;
  /** A decision that changes the state, recorded in the history at the stage it was taken. */
  const conclude = (
    event: CanaryEvent["event"],
    action: Exclude<CanaryAction, { kind: "hold" | "finished" }>,
    change: Partial<CanaryState>,
  ): CanaryDecision => {
    const e: CanaryEvent = { at: o.now, event, stage: state.stage, percent, message: action.message, guards };
    return {
      action,
      state: { ...state, ...change, history: [...state.history, e].slice(-CANARY_HISTORY) },
      guards,
    };
  };
  const failed = guards.filter((g) => g.state === "failed");
  const at = `stage ${state.stage + 1} of ${spec.stages.length} (${percent}%)`;
  if (failed.length) {
    const first = failed[0]!;
    const message = `${spec.challenger} rolled back at ${at}: ${failed.map(describeGuard).join("; ")}`;
    return conclude(
      "rolled_back",
      {
        kind: "rollback",
        guard: first.guard,
        value: first.value!,
        limit: first.limit,
        failed,
        routes: canaryRoutes(spec, 0),
        message,
      },
      { phase: "rolled_back" },
    );
  }

  const waiting = guards.find((g) => g.state === "waiting");
  if (waiting) {
    const labels = waiting.guard === "accuracy_ratio" && o.challenger.requests >= spec.hold.min_requests;
    return labels
      ? hold("too_few_labels", `${at} holds for labels: ${waiting.note}`)
      : hold("too_little_traffic", `${at} holds for traffic: ${waiting.note}`);
  }
  const elapsed = o.now - state.stage_started_at;
  if (elapsed < spec.hold.duration) {
    return hold(
      "window_not_elapsed",
      `${at} holds for ${duration(spec.hold.duration)}: ${duration(elapsed)} so far, every guard within its limit`,
    );
  }

  const summary = `every guard held over ${plural(o.challenger.requests, "request")} and ${duration(elapsed)}`;
  if (state.stage + 1 < spec.stages.length) {
    const to = state.stage + 1;
    const message = `${spec.challenger} advances from ${percent}% to ${spec.stages[to]}%: ${summary}`;
    return conclude(
      "advanced",
      {
        kind: "advance",
        from: state.stage,
        to,
        percent: spec.stages[to]!,
        routes: canaryRoutes(spec, spec.stages[to]!),
        message,
      },
      { stage: to, stage_started_at: o.now, baseline: nextBaseline(spec, state, o) },
    );
  }
  const message =
    `${spec.challenger} promoted: ${summary} at 100%` +
    (spec.promote_alias ? "; @champion moves to its version and @challenger is removed" : "");
  return conclude(
    "promoted",
    {
      kind: "promote",
      champion: spec.challenger,
      retired: spec.champion,
      move_alias: spec.promote_alias,
      routes: [{ served_model_name: spec.challenger, traffic_percentage: 100 }],
      message,
    },
    { phase: "promoted" },
  );
}

/** The history with one more event (the last CANARY_HISTORY kept). */
function withEvent(
  spec: CanaryRollout,
  state: CanaryState,
  now: number,
  event: CanaryEvent["event"],
  message: string,
): CanaryEvent[] {
  const e: CanaryEvent = {
    at: now,
    event,
    stage: state.stage,
    percent: spec.stages[state.stage]!,
    message,
    guards: [],
  };
  return [...state.history, e].slice(-CANARY_HISTORY);
}

const conflict = (message: string) => new SwitchyardError("RESOURCE_CONFLICT", message);
const stageOf = (spec: CanaryRollout, state: CanaryState) =>
  `stage ${state.stage + 1} of ${spec.stages.length} (${spec.stages[state.stage]}%)`;

/** Pauses a running canary: its routes stay at the current stage and nothing is decided until it resumes. */
export function pauseCanary(spec: CanaryRollout, state: CanaryState, now: number): CanaryState {
  if (state.phase !== "running")
    throw conflict(`the canary is ${state.phase.replace("_", " ")}, not running`);
  const message = `paused at ${stageOf(spec, state)}`;
  return { ...state, phase: "paused", history: withEvent(spec, state, now, "paused", message) };
}

/**
 * Resumes a paused canary at the stage it paused at. The stage's hold starts again: traffic seen while paused
 * (when nobody was judging it) does not count towards the verdict.
 */
export function resumeCanary(spec: CanaryRollout, state: CanaryState, now: number): CanaryState {
  if (state.phase !== "paused") throw conflict(`the canary is ${state.phase.replace("_", " ")}, not paused`);
  const message = `resumed at ${stageOf(spec, state)}; the stage's hold starts again`;
  return {
    ...state,
    phase: "running",
    stage_started_at: now,
    history: withEvent(spec, state, now, "resumed", message),
  };
}

/** Ends a running or paused canary; the champion takes all traffic back. */
export function abortCanary(
  spec: CanaryRollout,
  state: CanaryState,
  now: number,
): { state: CanaryState; routes: TrafficRoute[] } {
  if (!canaryActive(state.phase))
    throw conflict(`the canary is already over (${state.phase.replace("_", " ")})`);
  const message = `aborted at ${stageOf(spec, state)}: ${spec.champion} takes all traffic back`;
  return {
    state: { ...state, phase: "aborted", history: withEvent(spec, state, now, "aborted", message) },
    routes: canaryRoutes(spec, 0),
  };
}

/** The routes an endpoint has while (and after) its canary is in `state`. */
export function routesOfCanary(spec: CanaryRollout, state: CanaryState): TrafficRoute[] {
  switch (state.phase) {
    case "running":
    case "paused":
      return canaryRoutes(spec, spec.stages[state.stage]!);
    case "promoted":
      return canaryRoutes(spec, 100);
    default:
      return canaryRoutes(spec, 0);
  }
}

/** The challenger's share of traffic while (and after) its canary is in `state`. */
export const challengerPercent = (spec: CanaryRollout, state: CanaryState): number =>
  routesOfCanary(spec, state).find((r) => r.served_model_name === spec.challenger)!.traffic_percentage;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** `over` on top of `base`, objects merged key by key (so `hold.duration` alone keeps the section's min_requests). */
function merged(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? merged(b, v) : v;
  }
  return out;
}

/**
 * The rollout a `rollout start` runs: its overrides over the endpoint's `rollout` section. An endpoint with
 * exactly two served models needs neither: the one with the most traffic is the champion, the other the
 * challenger. Every problem names its field in the start body (`hold.min_requests`, `champion`).
 */
export function canarySpec(config: EndpointConfig, overrides: Record<string, unknown>): CanaryRollout {
  const input = merged((config.rollout ?? {}) as Record<string, unknown>, overrides);
  const served = config.served_models.map((s) => s.name);
  if ((input.champion === undefined || input.challenger === undefined) && served.length === 2) {
    const share = (n: string) =>
      config.routes.find((r) => r.served_model_name === n)?.traffic_percentage ?? 0;
    // The busier one is the champion (the first listed on a tie), unless the body names one of the two.
    const [busier, other] = share(served[1]!) > share(served[0]!) ? [served[1]!, served[0]!] : served;
    if (input.champion === undefined && input.challenger === undefined) {
      input.champion = busier;
      input.challenger = other;
    } else if (input.champion === undefined) {
      input.champion = served.find((n) => n !== input.challenger) ?? busier;
    } else {
      input.challenger = served.find((n) => n !== input.champion) ?? other;
    }
  }
  const problems: ConfigProblem[] = [];
  for (const role of ["champion", "challenger"] as const) {
    if (input[role] === undefined) {
      problems.push({
        field: role,
        message: `required: the endpoint serves ${served.length} models (${served.join(", ")}), name the ${role}`,
      });
    }
  }
  if (problems.length) throw configProblems(problems);
  const parsed = CanaryRollout.safeParse(input);
  if (!parsed.success) throw configProblems(zodProblems(parsed.error, ""));
  const spec = parsed.data;
  const more = canaryConfigProblems(spec, config.auto_capture_config, new Set(served), "");
  // A shadow takes no traffic (it gets mirrors): it cannot be given a canary's share until it stops being one.
  for (const role of ["champion", "challenger"] as const) {
    if (config.shadow_config?.routes.some((r) => r.served_model_name === spec[role])) {
      more.push({
        field: role,
        message: `'${spec[role]}' is a shadow of this endpoint (config.shadow_config): remove it from shadow_config first`,
      });
    }
  }
  if (more.length) throw configProblems(more);
  // The stages split all of the endpoint's traffic between the two: a third served model's share would vanish.
  const others = config.routes.filter(
    (r) =>
      r.traffic_percentage > 0 &&
      r.served_model_name !== spec.champion &&
      r.served_model_name !== spec.challenger,
  );
  if (others.length) {
    const list = others.map((r) => `'${r.served_model_name}' (${r.traffic_percentage}%)`).join(", ");
    throw new SwitchyardError(
      "RESOURCE_CONFLICT",
      `${list} take${others.length === 1 ? "s" : ""} traffic: a canary splits all of it between ${spec.champion} ` +
        `and ${spec.challenger}; route the others to 0% first`,
    );
  }
  return spec;
}

function configProblems(problems: ConfigProblem[]): SwitchyardError {
  const list = problems.map((p) => `${p.field}: ${p.message}`).join("; ");
  return new SwitchyardError(
    "INVALID_PARAMETER_VALUE",
    `invalid rollout (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${list}`,
  );
}

/**
 * What `rollout status` shows of a stored canary: the leader's last readings of the current stage (all guards
 * waiting until it has some), or for a canary that ended, the readings of its last decision.
 */
export function canaryView(endpoint: string, stored: StoredCanary, now: number): CanaryView {
  const { spec, state, readings } = stored;
  const current = readings && readings.stage_started_at === state.stage_started_at ? readings : null;
  const last = state.history[state.history.length - 1];
  const active = canaryActive(state.phase);
  const guards = active
    ? (current?.guards ?? readGuards(spec, state, { now, champion: EMPTY_WINDOW, challenger: EMPTY_WINDOW }))
    : (last?.guards ?? []);
  const until = state.phase === "running" ? now : (current?.at ?? last?.at ?? now);
  return {
    endpoint,
    champion: spec.champion,
    challenger: spec.challenger,
    phase: state.phase,
    stage: state.stage,
    stages: spec.stages,
    percent: challengerPercent(spec, state),
    started_at: state.started_at,
    stage_started_at: state.stage_started_at,
    hold: {
      elapsed_ms: Math.max(0, until - state.stage_started_at),
      duration_ms: spec.hold.duration,
      requests: current?.requests.challenger ?? 0,
      min_requests: spec.hold.min_requests,
    },
    guards,
    message:
      state.phase === "running" && current
        ? current.message
        : (last?.message ?? `${spec.challenger} against ${spec.champion}`),
    observed_at: current?.at ?? null,
    observed_since: current?.observed_since ?? null,
    promote_alias: spec.promote_alias,
    history: state.history,
  };
}

const EMPTY_WINDOW: CanaryWindow = { requests: 0, errors: {}, latency_ms: { p50: 0, p95: 0, p99: 0 } };

/**
 * The endpoint's config once a promotion moved `@champion` of `model` to the challenger's version and removes
 * `@challenger`: served models following `@challenger` cannot resolve any more. When the champion follows
 * `@champion` of the same model it now serves the promoted version, so it takes all traffic and the served models
 * that followed `@challenger` leave the config (with the rollout section and shadow routes naming them);
 * otherwise they stay, pinned to the version they serve. Undefined when no served model follows `@challenger`.
 */
export function configAfterAliasPromotion(
  config: EndpointConfig,
  spec: Pick<CanaryRollout, "champion">,
  model: string,
  version: number,
): EndpointConfig | undefined {
  const follows = (alias: string) => (s: EndpointConfig["served_models"][number]) =>
    s.model_name === model && s.model_version === `@${alias}`;
  const orphans = new Set(config.served_models.filter(follows("challenger")).map((s) => s.name));
  if (orphans.size === 0) return undefined;
  const champion = config.served_models.find((s) => s.name === spec.champion);
  if (!champion || !follows("champion")(champion)) {
    return {
      ...config,
      served_models: config.served_models.map((s) =>
        orphans.has(s.name) ? { ...s, model_version: String(version) } : s,
      ),
    };
  }
  const { rollout, shadow_config, ...rest } = config;
  const keptShadow = shadow_config?.routes.filter((r) => !orphans.has(r.served_model_name)) ?? [];
  const keepRollout = rollout && !orphans.has(rollout.champion) && !orphans.has(rollout.challenger);
  return {
    ...rest,
    served_models: config.served_models.filter((s) => !orphans.has(s.name)),
    routes: config.routes
      .filter((r) => !orphans.has(r.served_model_name))
      .map((r) => ({
        served_model_name: r.served_model_name,
        traffic_percentage: r.served_model_name === champion.name ? 100 : 0,
      })),
    ...(keepRollout ? { rollout } : {}),
    ...(shadow_config && keptShadow.length
      ? { shadow_config: { ...shadow_config, routes: keptShadow } }
      : {}),
  };
}
