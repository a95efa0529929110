// The scaling policy: from what a served model's replicas report (average requests in flight and queued) to the
// replicas it should run, within its provisioned-concurrency bounds and what the nodes can hold, with separate
// up and down stabilisation windows (Kubernetes HPA's) and scale to zero after an idle period. Pure: the clock
// comes in with each observation, and nothing here reads NATS or keeps state beyond what it returns.
import {
  AUTOSCALER_DEFAULTS,
  type ScaleDecision,
  type ServedModel,
  WORKLOAD_CONCURRENCY,
} from "@switchyard/protocol";

/** Requests one replica is provisioned to serve at once: replicas = ceil(provisioned concurrency / this). */
export const CONCURRENCY_PER_REPLICA = 4;

/** A served model's replica range, from its provisioned concurrency. */
export interface ReplicaBounds {
  min: number;
  max: number;
  minConcurrency: number;
  maxConcurrency: number;
}

/**
 * Databricks' provisioned concurrency for the workload size (Small 4, Medium 8–16, Large 16–64), each end
 * overridden by `min/max_provisioned_concurrency`, the minimum lowered to 0 by `scale_to_zero_enabled`; in
 * replicas of CONCURRENCY_PER_REPLICA. A served model can always reach one replica.
 */
export function replicaBounds(
  s: Pick<
    ServedModel,
    "workload_size" | "scale_to_zero_enabled" | "min_provisioned_concurrency" | "max_provisioned_concurrency"
  >,
): ReplicaBounds {
  const size = WORKLOAD_CONCURRENCY[s.workload_size];
  const minConcurrency = s.scale_to_zero_enabled ? 0 : (s.min_provisioned_concurrency ?? size.min);
  const maxConcurrency = Math.max(s.max_provisioned_concurrency ?? size.max, minConcurrency);
  return {
    min: Math.ceil(minConcurrency / CONCURRENCY_PER_REPLICA),
    max: Math.max(1, Math.ceil(maxConcurrency / CONCURRENCY_PER_REPLICA)),
    minConcurrency,
    maxConcurrency,
  };
}

/** Replicas before the autoscaler has decided anything: the minimum, and one even when that is zero. */
export const initialReplicas = (b: Pick<ReplicaBounds, "min">) => Math.max(1, b.min);

export interface ScaleSettings {
  /** Average requests in flight plus queued that one replica should carry. */
  targetConcurrency: number;
  upStabilizationMs: number;
  downStabilizationMs: number;
  /** Idle time after which a served model whose minimum is 0 goes to zero replicas. */
  scaleToZeroAfterMs: number;
}

export const SCALE_DEFAULTS: ScaleSettings = {
  targetConcurrency: CONCURRENCY_PER_REPLICA,
  ...AUTOSCALER_DEFAULTS,
};

/** What is observed of one served model at one step. */
export interface ScaleObservation {
  now: number;
  bounds: Pick<ReplicaBounds, "min" | "max">;
  /** Replicas the nodes' thread budget leaves for this served model (everything else counted). */
  capacity: number;
  /** Average requests in flight plus queued over the recent window, summed over the served model's replicas. */
  concurrency: number;
  /** Requests the replicas received over that window (activity, for scale to zero). */
  requests: number;
  /** Requests routers hold now because no replica answers. */
  held: number;
}

/** One load-based recommendation, kept for the stabilisation windows. */
export interface Recommendation {
  at: number;
  replicas: number;
}

export interface ScaleState {
  decision: ScaleDecision;
  /** Recommendations within the longer stabilisation window, oldest first. */
  recommendations: Recommendation[];
}

/** A state to continue from a stored decision (a coordinator that took the lease over). */
export function resumeScale(stored: ScaleDecision, now: number): ScaleState {
  // Counted as recommended now, so a new leader waits a whole down window before scaling down.
  return { decision: stored, recommendations: [{ at: now, replicas: stored.desired }] };
}

/**
 * One step: the recommendation from load (ceil(concurrency / target)), stabilised — up only to the lowest
 * recommendation over the up window, down only to the highest over the down window — then held within
 * [min, max] (a minimum of 0 only after `scaleToZeroAfterMs` without requests, else 1) and cut to capacity.
 */
export function decideScale(s: ScaleSettings, prev: ScaleState | undefined, o: ScaleObservation): ScaleState {
  const { now, bounds } = o;
  const active = o.requests > 0 || o.concurrency > 0 || o.held > 0;
  const lastRequestAt = active ? now : (prev?.decision.last_request_at ?? now);
  const current = prev?.decision.desired ?? initialReplicas(bounds);
  // A hair under an exact multiple is that multiple: 8.0000001 requests over 4 per replica is 2 replicas.
  const raw = Math.max(o.held > 0 ? 1 : 0, Math.ceil(o.concurrency / s.targetConcurrency - 1e-6));
  const keep = Math.max(s.upStabilizationMs, s.downStabilizationMs);
  const recommendations = [
    ...(prev?.recommendations ?? []).filter((r) => r.at >= now - keep && r.at <= now),
    { at: now, replicas: raw },
  ];
  const within = (ms: number) => recommendations.filter((r) => r.at >= now - ms).map((r) => r.replicas);
  const up = Math.min(...within(s.upStabilizationMs));
  const down = Math.max(...within(s.downStabilizationMs));
  const wanted = Math.min(Math.max(current, up), down);

  const idleMs = now - lastRequestAt;
  const zeroAllowed = bounds.min === 0 && !active && idleMs >= s.scaleToZeroAfterMs;
  const floor = bounds.min > 0 ? bounds.min : zeroAllowed ? 0 : 1;
  let desired = Math.min(Math.max(wanted, floor), bounds.max);
  let limited_by: ScaleDecision["limited_by"] = wanted < floor ? "min" : wanted > bounds.max ? "max" : null;
  let reason: string;
  const load = `load ${round(o.concurrency)} concurrent request${o.concurrency === 1 ? "" : "s"}${
    o.held ? ` (${o.held} held)` : ""
  }, target ${s.targetConcurrency} per replica`;
  if (limited_by === "min") {
    reason =
      bounds.min > 0
        ? `${load}: kept at the minimum of ${bounds.min} replica${plural(bounds.min)}`
        : `${load}: kept at 1 replica until ${duration(s.scaleToZeroAfterMs)} without requests ` +
          `(last request ${duration(idleMs)} ago)`;
  } else if (limited_by === "max") {
    reason = `${load}: capped at the maximum of ${bounds.max} replica${plural(bounds.max)} (load wants ${wanted})`;
  } else if (desired === 0) {
    reason = `no requests for ${duration(idleMs)}: scaled to zero; the next request starts a replica`;
  } else if (wanted > raw && wanted === current) {
    reason =
      `${load} wants ${raw}: holding ${desired} replica${plural(desired)} ` +
      `for the ${duration(s.downStabilizationMs)} down-stabilisation window`;
  } else {
    reason = `${load} → ${desired} replica${plural(desired)}`;
  }
  // What the thread budget holds comes last; a served model with any load keeps one replica regardless.
  const room = Math.max(o.capacity, desired > 0 ? 1 : 0);
  if (desired > room) {
    desired = room;
    limited_by = "capacity";
    reason = `the nodes' thread budget leaves room for ${room} replica${plural(room)} (load wants ${wanted})`;
  }
  return {
    decision: { desired, wanted, reason, limited_by, at: now, last_request_at: lastRequestAt },
    recommendations,
  };
}

/**
 * A router holds a request nothing answers. At zero replicas: one at once, past every window (the new replica
 * counts as recommended now, so the next steps do not take it away before it served). Otherwise the request
 * still counts as one seen now: a replica that is starting is not scaled away under a held request.
 */
export function wakeScale(prev: ScaleState, now: number): ScaleState {
  if (prev.decision.desired > 0) {
    return {
      ...prev,
      decision: { ...prev.decision, last_request_at: Math.max(now, prev.decision.last_request_at) },
    };
  }
  return {
    decision: {
      desired: 1,
      wanted: 1,
      reason: "a request arrived at zero replicas: starting one",
      limited_by: null,
      at: now,
      last_request_at: now,
    },
    recommendations: [...prev.recommendations, { at: now, replicas: 1 }],
  };
}

/**
 * Batch workers follow the shards still queued or running: what the job asked for (else the thread budget),
 * never more than those shards, at least one while the job runs.
 */
export function batchWorkers(o: { asked: number | undefined; budget: number; shardsLeft: number }): number {
  return Math.max(1, Math.min(o.asked ?? o.budget, o.shardsLeft));
}

/** Messages one stream scorer is expected to keep up with: lag beyond this per scorer asks for another. */
export const LAG_PER_SCORER_BATCHES = 4;

/**
 * Stream scorers follow the consumer's lag (messages pending): one per LAG_PER_SCORER_BATCHES batches of lag,
 * from 1 to `parallelism` (a windowed job is validated to parallelism 1), stabilised down like replicas.
 */
export function streamScorers(
  s: Pick<ScaleSettings, "downStabilizationMs">,
  prev: Recommendation[],
  o: { now: number; lag: number; batch: number; parallelism: number },
): { scorers: number; recommendations: Recommendation[] } {
  const raw = Math.ceil(o.lag / (o.batch * LAG_PER_SCORER_BATCHES));
  const recommendations = [
    ...prev.filter((r) => r.at >= o.now - s.downStabilizationMs && r.at <= o.now),
    { at: o.now, replicas: raw },
  ];
  const wanted = Math.max(...recommendations.map((r) => r.replicas));
  return { scorers: Math.min(Math.max(wanted, 1), o.parallelism), recommendations };
}

const round = (x: number) => Math.round(x * 10) / 10;
const plural = (n: number) => (n === 1 ? "" : "s");

/** `45 s`, `30 min`, `2 h`: how reasons print a duration. */
export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1_000)} s`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}
