// Rollout policy: when the generations an endpoint wants replace the ones serving it (flip), later (wait) or
// never (fail, the old config keeps serving). A pure function of the desired state (endpoint record, resolved
// targets), the observed state and an injected time; the reconcile shell performs what it returns. It never
// touches NATS or reads the clock, and keeps no state of its own: what a new leader needs is in the record.
import type {
  ClusterNames,
  EndpointRecord,
  EndpointRoutes,
  ReplicaStatus,
  RoutesCapture,
  RoutesShadow,
} from "@switchyard/protocol";
import { sameShadow } from "@switchyard/protocol";
import { groupKey } from "./placement.js";
import type { Assignment } from "./state.js";
import { liveTargets, routesOf, type ServedTarget, sameCapture, sameRoutes, targetsOf } from "./targets.js";
import type { DeploymentState } from "./view.js";

/** Whether the record asks for its pending config (an update in progress) rather than its serving one. */
const updating = (rec: EndpointRecord) =>
  rec.state.config_update === "IN_PROGRESS" && rec.pending_config !== null;

/** The config a pass works towards: the pending one while an update runs, else the serving one. */
export const wantedConfig = (rec: EndpointRecord) => (updating(rec) ? rec.pending_config : rec.config);

/** What the registry says the wanted config's versions are now (aliases followed), or why it cannot say. */
export type Resolution = { versions: Record<string, number> } | { error: string };

/** What an endpoint wants this pass, next to what serves it now. */
export interface Wanted {
  target: ServedTarget[];
  live: ServedTarget[];
  /** The target is the pending config of an update (else the serving config, aliases followed). */
  pending: boolean;
  /** Served name → version of the target, recorded as `resolved` once it serves. */
  versions: Record<string, number>;
  /** Why the pending config cannot be rolled out (a model or alias it names vanished). */
  failure?: string;
  /** The inference table capture the wanted config asks routers for (undefined: off). */
  capture?: RoutesCapture;
  /** The shadow traffic the wanted config asks routers for (undefined: none). */
  shadow?: RoutesShadow;
}

/**
 * The targets an endpoint wants, given how its wanted config resolved. A serving config that cannot be
 * resolved any more, or whose new generation failed before (`rejected`: not retried until the alias moves
 * again), keeps the live targets.
 */
export function wantedTargets(
  names: ClusterNames,
  rec: EndpointRecord,
  routes: EndpointRoutes | undefined,
  resolution: Resolution,
): Wanted {
  const live = liveTargets(rec, routes);
  const config = wantedConfig(rec);
  const pending = updating(rec);
  if (!config) return { target: [], live, pending, versions: {} };
  if ("error" in resolution) {
    return pending
      ? { target: live, live, pending, versions: {}, failure: resolution.error }
      : { target: live, live, pending, versions: rec.resolved };
  }
  const target = targetsOf(names, rec.name, config, resolution.versions);
  if (!pending && live.length && target.some((t) => rec.rejected[t.generation] !== undefined)) {
    return { target: live, live, pending, versions: rec.resolved };
  }
  return { target, live, pending, versions: resolution.versions };
}

/** What is observed of the cluster. */
export interface Observed {
  /** The endpoint's live routes (absent before its first config served). */
  routes: EndpointRoutes | undefined;
  assignments: readonly Assignment[];
  statuses: ReadonlyMap<string, ReplicaStatus>;
  /** Nodes with a live heartbeat: a replica elsewhere is lost, whatever its last status said. */
  liveNodes: ReadonlySet<string>;
}

export const groupOf = (a: Assignment) => groupKey(a.spec.endpoint, a.spec.served_model, a.spec.generation);

/**
 * How one served model generation is deployed: READY when every assigned replica is READY on a live node
 * (and there is one), FAILED when one failed (with its reason), else CREATING with a count of ready replicas.
 * Both the rollout and the GET body judge a generation by this.
 */
export function deploymentOf(
  observed: Omit<Observed, "routes">,
  t: Pick<ServedTarget, "endpoint" | "served_model" | "generation">,
): { deployment: DeploymentState; message: string; ready: number; total: number } {
  const mine = observed.assignments.filter(
    (a) =>
      a.spec.endpoint === t.endpoint &&
      a.spec.served_model === t.served_model &&
      a.spec.generation === t.generation,
  );
  const sts = mine
    .filter((a) => observed.liveNodes.has(a.node_id))
    .map((a) => observed.statuses.get(a.replica_id))
    .filter((s) => s?.generation === t.generation);
  const ready = sts.filter((s) => s?.state === "READY").length;
  const total = mine.length;
  const failed = sts.find((s) => s?.state === "FAILED");
  if (failed)
    return { deployment: "DEPLOYMENT_FAILED", message: failed.message || "replica failed", ready, total };
  const deployment = total > 0 && ready === total ? "DEPLOYMENT_READY" : "DEPLOYMENT_CREATING";
  return { deployment, message: `${ready}/${total} replicas ready`, ready, total };
}

export interface RolloutInput {
  record: EndpointRecord;
  want: Wanted;
  observed: Observed;
  /** Replicas per group after the cluster-wide thread budget cap (placement's `capReplicas`). */
  counts: ReadonlyMap<string, number>;
  now: number;
  /** A rollout whose replicas are not all READY this long after it started fails. */
  timeoutMs: number;
}

export type RolloutStep =
  /** Nothing to roll out: what is wanted serves (the generations it replaced are retired by placement). */
  | { kind: "steady" }
  /** New generations are starting while the old ones serve; past `deadline` the rollout fails. */
  | { kind: "wait"; started: number; deadline: number }
  /** Every wanted replica is READY: these routes replace the live ones, and the record says READY. */
  | { kind: "flip"; routes: EndpointRoutes }
  /** The rollout is abandoned (UPDATE_FAILED with the reason); the old config keeps serving. */
  | { kind: "fail"; reason: string };

export interface RolloutDecision {
  step: RolloutStep;
  /** The endpoint record to write back (compare-and-set on the revision read), when it changes. */
  record?: EndpointRecord;
  /** The generations placement runs for the endpoint this pass. */
  targets: ServedTarget[];
  /** Replicas placement leaves as they are: the old generation, serving until routers have seen the flip. */
  retiring: string[];
}

/**
 * One step of an endpoint's rollout. A rollout is a pending update (started at `pending_start_time`) or an
 * alias that moved (started when a leader first saw it, kept in `alias_rollout`). It fails on a replica of a
 * new generation that FAILED or at its deadline; it flips once every replica of every target is READY.
 */
export function decideRollout(i: RolloutInput): RolloutDecision {
  const { record: rec, want, observed, now } = i;
  if (want.failure !== undefined) return fail(i, want.failure);
  if (want.target.length === 0) return { step: { kind: "steady" }, targets: [], retiring: [] };
  if (
    !want.pending &&
    sameRoutes(observed.routes, want.target) &&
    sameCapture(observed.routes, want.capture) &&
    sameShadow(observed.routes?.shadow, want.shadow)
  ) {
    // An alias that moved back mid-rollout must not leave a start time for a later move to reuse.
    const record = rec.alias_rollout ? withoutAliasRollout(rec) : undefined;
    return { step: { kind: "steady" }, ...(record ? { record } : {}), targets: want.target, retiring: [] };
  }

  const liveGroups = new Set(want.live.map((t) => t.group));
  const targetGroups = new Set(want.target.map((t) => t.group));
  const status = want.target.map((t) => {
    const d = deploymentOf(observed, t);
    const wanted = i.counts.get(t.group) ?? 1;
    return {
      t,
      wanted,
      ready: d.deployment === "DEPLOYMENT_READY" && d.total >= wanted,
      readyCount: d.ready,
      failure:
        d.deployment === "DEPLOYMENT_FAILED" ? `served model '${t.served_model}': ${d.message}` : undefined,
    };
  });
  // A live generation that fails during an alias rollout is not the rollout's failure.
  const failed = status.find((s) => s.failure !== undefined && (want.pending || !liveGroups.has(s.t.group)));
  if (failed) return fail(i, failed.failure!);

  const aliasRollout = want.pending ? undefined : aliasRolloutOf(rec, want.target, now);
  const started = aliasRollout
    ? aliasRollout.start_time
    : (rec.pending_start_time ?? rec.last_updated_timestamp);
  const deadline = started + i.timeoutMs;
  const notReady = status.filter((s) => !s.ready);
  if (notReady.length && now > deadline) {
    const counts = notReady.map((s) => `${s.t.served_model} ${s.readyCount}/${s.wanted} ready`).join(", ");
    return fail(i, `replicas not ready within ${Math.round(i.timeoutMs / 1000)} s (${counts})`);
  }

  const old = observed.assignments
    .filter(
      (a) => a.spec.endpoint === rec.name && liveGroups.has(groupOf(a)) && !targetGroups.has(groupOf(a)),
    )
    .map((a) => a.replica_id);
  if (notReady.length) {
    const record =
      aliasRollout && aliasRollout !== rec.alias_rollout
        ? { ...rec, alias_rollout: aliasRollout }
        : undefined;
    return {
      step: { kind: "wait", started, deadline },
      ...(record ? { record } : {}),
      targets: want.target,
      retiring: old,
    };
  }

  const configVersion = want.pending
    ? (rec.pending_config_version ?? rec.config_version + 1)
    : rec.config_version;
  const settled = {
    ...withoutAliasRollout(rec),
    last_updated_timestamp: now,
    state: { ready: "READY", config_update: "NOT_UPDATING", message: "" },
    resolved: want.versions,
    rejected: {},
  } satisfies EndpointRecord;
  const record: EndpointRecord = want.pending
    ? {
        ...settled,
        config: rec.pending_config,
        config_version: configVersion,
        pending_config: null,
        pending_config_version: null,
        pending_start_time: null,
      }
    : settled;
  return {
    step: {
      kind: "flip",
      routes: routesOf(rec.name, configVersion, want.target, now, want.capture, want.shadow),
    },
    record,
    // The old generation goes on the next pass, after routers have seen the flip.
    targets: want.target,
    retiring: old,
  };
}

/** Abandons the rollout: the record says why, the new generations go, the live ones keep serving. */
function fail(i: RolloutInput, reason: string): RolloutDecision {
  const { record: rec, want, observed, now } = i;
  const state = {
    ready: observed.routes && rec.config ? "READY" : "NOT_READY",
    config_update: "UPDATE_FAILED",
    message: reason,
  } as const;
  const base = { ...withoutAliasRollout(rec), last_updated_timestamp: now, state };
  const record: EndpointRecord = want.pending
    ? { ...base, pending_config: null, pending_config_version: null, pending_start_time: null }
    : {
        ...base,
        // An alias rollout is not retried until the alias moves again (see wantedTargets).
        rejected: {
          ...rec.rejected,
          ...Object.fromEntries(
            want.target
              .filter((t) => !want.live.some((l) => l.group === t.group))
              .map((t) => [t.generation, reason]),
          ),
        },
      };
  return { step: { kind: "fail", reason }, record, targets: want.live, retiring: [] };
}

/** The alias rollout under way towards `target`: the recorded one if it wants the same, else one from now. */
function aliasRolloutOf(rec: EndpointRecord, target: ServedTarget[], now: number) {
  const generations = Object.fromEntries(target.map((t) => [t.served_model, t.generation]));
  const recorded = rec.alias_rollout;
  const same =
    recorded &&
    Object.keys(recorded.generations).length === target.length &&
    target.every((t) => recorded.generations[t.served_model] === t.generation);
  return same ? recorded : { generations, start_time: now };
}

function withoutAliasRollout(rec: EndpointRecord): EndpointRecord {
  const { alias_rollout: _done, ...rest } = rec;
  return rest;
}
