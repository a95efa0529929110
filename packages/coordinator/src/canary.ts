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
  type CanaryRollout,
  type CanaryState,
  ERROR_CATALOG,
  isErrorCode,
  type MetricsWindow,
  type TrafficRoute,
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

/** What `rollout status` shows: the stored state with each guard read over the current stage. */
export interface CanaryStatus {
  phase: CanaryState["phase"];
  stage: number;
  stages: number[];
  percent: number;
  stage_started_at: number;
  hold: { elapsed_ms: number; duration_ms: number; requests: number; min_requests: number };
  guards: CanaryGuardReading[];
  history: CanaryEvent[];
}

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
    if (!challenger || labelled < acc.min_labels) note = `${labelled} of ${acc.min_labels} challenger labels`;
    else if (!champion)
      note = `${o.accuracy?.champion.labelled ?? 0} of ${acc.min_labels} champion labels and no baseline`;
    else {
      // A champion never right leaves nothing to be less accurate than.
      value = champion.accuracy > 0 ? challenger.accuracy / champion.accuracy : 1;
      note = `${round3(challenger.accuracy)} against ${round3(champion.accuracy)} of ${champion.from}`;
    }
    out.push(reading("accuracy_ratio", value, acc.ratio, (v) => v >= acc.ratio, note));
  }
  return out;
}

export function canaryStatus(spec: CanaryRollout, state: CanaryState, o: CanaryObservation): CanaryStatus {
  return {
    phase: state.phase,
    stage: state.stage,
    stages: spec.stages,
    percent: spec.stages[state.stage]!,
    stage_started_at: state.stage_started_at,
    hold: {
      elapsed_ms: Math.max(0, o.now - state.stage_started_at),
      duration_ms: spec.hold.duration,
      requests: o.challenger.requests,
      min_requests: spec.hold.min_requests,
    },
    guards: readGuards(spec, state, o),
    history: state.history,
  };
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
