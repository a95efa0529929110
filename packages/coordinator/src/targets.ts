// What an endpoint config asks for once its versions are resolved: per served model a generation (a hash of
// what the replica serves and how), its queue-group subject and its replica count. Pure; no NATS here.
import { createHash } from "node:crypto";
import { initialReplicas, type ReplicaBounds, replicaBounds } from "@switchyard/autoscaler";
import {
  aliasOf,
  type ClusterNames,
  type EndpointConfig,
  type EndpointRecord,
  type EndpointRoutes,
  type LiveRoute,
  REPLICA_DEFAULTS,
  type RoutesCapture,
  type RoutesShadow,
  type ServedModel,
} from "@switchyard/protocol";
import { groupKey } from "./placement.js";

/** One served model of a config, resolved: everything a ReplicaSpec needs except id, node and threads. */
export interface ServedTarget {
  endpoint: string;
  served_model: string;
  traffic_percentage: number;
  model_name: string;
  model_version: number;
  /** The alias the config follows (without '@'), if any. */
  alias: string | undefined;
  max_batch_size: number;
  max_delay_us: number;
  max_queue: number;
  generation: string;
  subject: string;
  /** Replicas to run: the autoscaler's decision once there is one (see `scaledTarget`), else the initial count. */
  replicas: number;
  /** The served model's replica range (its provisioned concurrency). */
  bounds: Pick<ReplicaBounds, "min" | "max">;
  group: string;
}

/** Bounds of a served model the live config no longer names: it serves with one replica until retired. */
const RETIRED_BOUNDS = { min: 1, max: 1 } as const;

/**
 * A target with the autoscaler's desired replicas (`undefined`: no decision yet), held within the target's
 * bounds (a config update may have moved them). A generation that does not serve yet gets at least one
 * replica, so it can become READY and the routes can flip to it.
 */
export function scaledTarget(t: ServedTarget, desired: number | undefined, serving: boolean): ServedTarget {
  if (desired === undefined) return t;
  const replicas = Math.min(Math.max(desired, t.bounds.min), t.bounds.max);
  return { ...t, replicas: serving ? replicas : Math.max(1, replicas) };
}

/**
 * Identifies what a replica serves and how it batches: model name, resolved version and batching settings.
 * The replica count, workload size and traffic split are not in it, so changing them never restarts replicas.
 */
export function generationOf(g: {
  model_name: string;
  model_version: number;
  max_batch_size: number;
  max_delay_us: number;
  max_queue: number;
}): string {
  const text = JSON.stringify([g.model_name, g.model_version, g.max_batch_size, g.max_delay_us, g.max_queue]);
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}

/**
 * A served model's batching settings, REPLICA_DEFAULTS filling what its config leaves out: the one place the
 * defaults apply, so a generation hash and the ReplicaSpec built from it always agree.
 */
export function batchingOf(
  s: Pick<ServedModel, "max_batch_size" | "max_delay_us" | "max_queue"> | undefined,
) {
  return {
    max_batch_size: s?.max_batch_size ?? REPLICA_DEFAULTS.max_batch_size,
    max_delay_us: s?.max_delay_us ?? REPLICA_DEFAULTS.max_delay_us,
    max_queue: s?.max_queue ?? REPLICA_DEFAULTS.max_queue,
  };
}

/** The generation a route subject ends with (`<c>.rt.<endpoint>.<served>.<generation>`). */
export const generationOfSubject = (subject: string) => subject.slice(subject.lastIndexOf(".") + 1);

/** Resolves a config's served models; `versions` maps served name → resolved version number. */
export function targetsOf(
  names: ClusterNames,
  endpoint: string,
  config: EndpointConfig,
  versions: Record<string, number>,
): ServedTarget[] {
  const pct = new Map(config.routes.map((r) => [r.served_model_name, r.traffic_percentage]));
  return config.served_models.map((s) => {
    const model_version = versions[s.name];
    if (model_version === undefined) throw new Error(`served model '${s.name}' has no resolved version`);
    const settings = { model_name: s.model_name, model_version, ...batchingOf(s) };
    const generation = generationOf(settings);
    const bounds = replicaBounds(s);
    return {
      endpoint,
      served_model: s.name,
      traffic_percentage: pct.get(s.name) ?? 0,
      alias: aliasOf(s.model_version),
      ...settings,
      generation,
      subject: `${names.subjects.served(endpoint, s.name)}.${generation}`,
      replicas: initialReplicas(bounds),
      bounds,
      group: groupKey(endpoint, s.name, generation),
    };
  });
}

/**
 * The targets the live routes stand for: generation and subject from the routes, replica counts and settings
 * from the live config (defaults for a served model it no longer names).
 */
export function liveTargets(rec: EndpointRecord, routes: EndpointRoutes | undefined): ServedTarget[] {
  if (!routes) return [];
  return routes.routes.map((r) => {
    const s = rec.config?.served_models.find((m) => m.name === r.served_model_name);
    const generation = generationOfSubject(r.subject);
    const bounds = s ? replicaBounds(s) : RETIRED_BOUNDS;
    return {
      endpoint: rec.name,
      served_model: r.served_model_name,
      traffic_percentage: r.traffic_percentage,
      model_name: r.model_name,
      model_version: r.model_version,
      alias: s && aliasOf(s.model_version),
      ...batchingOf(s),
      generation,
      subject: r.subject,
      replicas: initialReplicas(bounds),
      bounds,
      group: groupKey(rec.name, r.served_model_name, generation),
    };
  });
}

/** The live routes a set of targets gives (what routers split over), with the endpoint's capture and shadow if on. */
export function routesOf(
  endpoint: string,
  configVersion: number,
  targets: ServedTarget[],
  now: number,
  capture?: RoutesCapture,
  shadow?: RoutesShadow,
): EndpointRoutes {
  return {
    endpoint,
    config_version: configVersion,
    ...(capture ? { capture } : {}),
    ...(shadow ? { shadow } : {}),
    routes: targets.map(
      (t): LiveRoute => ({
        served_model_name: t.served_model,
        traffic_percentage: t.traffic_percentage,
        subject: t.subject,
        model_name: t.model_name,
        model_version: t.model_version,
      }),
    ),
    updated_at: now,
  };
}

/** Whether routers already capture as asked (same subject prefix and sampling rate, or both off). */
export function sameCapture(routes: EndpointRoutes | undefined, capture: RoutesCapture | undefined): boolean {
  const a = routes?.capture;
  return a?.subject_prefix === capture?.subject_prefix && a?.sampling_rate === capture?.sampling_rate;
}

/** Whether routes already send the same traffic to the same subjects as these targets. */
export function sameRoutes(routes: EndpointRoutes | undefined, targets: ServedTarget[]): boolean {
  if (!routes) return false;
  const a = routes.routes.map((r) => `${r.served_model_name} ${r.traffic_percentage} ${r.subject}`).sort();
  const b = targets.map((t) => `${t.served_model} ${t.traffic_percentage} ${t.subject}`).sort();
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
