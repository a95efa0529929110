// The GET body of an endpoint in Databricks' shape (GET /api/2.0/serving-endpoints/{name}), built from the
// KV record and what is observed of its replicas. Pure: the caller gathers versions and deployment states.
import type { EndpointConfig, EndpointRecord, ScaleDecision, ServedModel } from "@switchyard/protocol";
import { aliasOf, autoCaptureView } from "@switchyard/protocol";

export const DEPLOYMENT_STATES = [
  "DEPLOYMENT_READY",
  "DEPLOYMENT_CREATING",
  "DEPLOYMENT_FAILED",
  "DEPLOYMENT_ABORTED",
] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

/** What is known of one served model of a config: the version it serves (aliases followed), its replicas. */
export interface ServedObservation {
  version?: number;
  deployment: DeploymentState;
  message: string;
  /** Replicas READY now, and how many the served model should run. */
  replicas?: { ready: number; desired: number };
  /** The autoscaler's last decision for it. */
  autoscaler?: ScaleDecision;
}

export interface EndpointObservation {
  config: Record<string, ServedObservation>;
  pending: Record<string, ServedObservation>;
}

export type EndpointView = Record<string, unknown> & {
  name: string;
  state: { ready: string; config_update: string; message?: string };
};

function servedView(
  s: ServedModel,
  o: ServedObservation | undefined,
  rec: EndpointRecord,
): Record<string, unknown> {
  const alias = aliasOf(s.model_version);
  const version = o?.version !== undefined ? String(o.version) : s.model_version;
  const ids =
    s.form === "served_entities"
      ? { entity_name: s.model_name, entity_version: version, ...(alias ? { entity_alias: alias } : {}) }
      : { model_name: s.model_name, model_version: version, ...(alias ? { model_alias: alias } : {}) };
  return {
    name: s.name,
    ...ids,
    workload_size: s.workload_size,
    scale_to_zero_enabled: s.scale_to_zero_enabled,
    ...(s.min_provisioned_concurrency !== undefined
      ? { min_provisioned_concurrency: s.min_provisioned_concurrency }
      : {}),
    ...(s.max_provisioned_concurrency !== undefined
      ? { max_provisioned_concurrency: s.max_provisioned_concurrency }
      : {}),
    ...(s.max_batch_size !== undefined ? { max_batch_size: s.max_batch_size } : {}),
    ...(s.max_delay_us !== undefined ? { max_delay_us: s.max_delay_us } : {}),
    ...(s.max_queue !== undefined ? { max_queue: s.max_queue } : {}),
    ...s.extra,
    state: {
      deployment: o?.deployment ?? "DEPLOYMENT_CREATING",
      deployment_state_message: o?.message ?? "",
    },
    ...(o?.replicas ? { replicas: o.replicas } : {}),
    ...(o?.autoscaler
      ? {
          autoscaler: {
            desired: o.autoscaler.desired,
            wanted: o.autoscaler.wanted,
            reason: o.autoscaler.reason,
            limited_by: o.autoscaler.limited_by,
            at: o.autoscaler.at,
          },
        }
      : {}),
    creator: rec.creator,
    creation_timestamp: rec.creation_timestamp,
  };
}

function configView(
  cfg: EndpointConfig,
  version: number,
  obs: Record<string, ServedObservation>,
  rec: EndpointRecord,
): Record<string, unknown> {
  const form = cfg.served_models[0]?.form ?? "served_entities";
  return {
    [form]: cfg.served_models.map((s) => servedView(s, obs[s.name], rec)),
    traffic_config: {
      routes: cfg.routes.map((r) => ({
        served_model_name: r.served_model_name,
        traffic_percentage: r.traffic_percentage,
      })),
    },
    ...(cfg.auto_capture_config
      ? { auto_capture_config: autoCaptureView(rec.name, cfg.auto_capture_config) }
      : {}),
    ...(cfg.rollout ? { rollout: cfg.rollout } : {}),
    ...(cfg.shadow_config ? { shadow_config: cfg.shadow_config } : {}),
    config_version: version,
  };
}

/**
 * Databricks' endpoint body: `state.{ready, config_update}`, `config` (what serves now) and `pending_config`
 * (while an update runs, with `start_time`). Extensions: `state.message` (why the last update failed); for
 * a served model that follows an alias, `entity_version` is the version it serves and `entity_alias`
 * (`model_alias` in the served_models form) the alias it follows; per served model `replicas` ({ready, desired})
 * and `autoscaler` (the last decision: desired, wanted, reason, limited_by, at).
 */
export function endpointView(rec: EndpointRecord, obs: EndpointObservation): EndpointView {
  return {
    name: rec.name,
    id: rec.id,
    creator: rec.creator,
    creation_timestamp: rec.creation_timestamp,
    last_updated_timestamp: rec.last_updated_timestamp,
    state: {
      ready: rec.state.ready,
      config_update: rec.state.config_update,
      ...(rec.state.message ? { message: rec.state.message } : {}),
    },
    ...(rec.config ? { config: configView(rec.config, rec.config_version, obs.config, rec) } : {}),
    ...(rec.pending_config && rec.state.config_update === "IN_PROGRESS"
      ? {
          pending_config: {
            ...configView(
              rec.pending_config,
              rec.pending_config_version ?? rec.config_version + 1,
              obs.pending,
              rec,
            ),
            start_time: rec.pending_start_time ?? rec.last_updated_timestamp,
          },
        }
      : {}),
    tags: [],
    ...rec.extra,
    permission_level: "CAN_MANAGE",
  };
}
