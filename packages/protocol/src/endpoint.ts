// Serving endpoints in Databricks' shape: the create/update bodies users already send to Databricks
// (served_entities + traffic_config, or the older served_models with traffic_percentage inside), the
// record kept in KV `<cluster>_endpoints`, and the GET body. Validation lists every problem at once.
import { z } from "zod";
import { CanaryRollout, canaryConfigProblems } from "./canary.js";
import { AutoCaptureConfig } from "./capture.js";
import { SwitchyardError } from "./errors.js";
import { aliasOf, defaultServedName, isModelName, isResourceName } from "./names.js";
import { type ConfigProblem, zodProblems } from "./problems.js";
import { RateLimits } from "./rate-limit.js";
import { ShadowConfig, shadowProblems } from "./shadow.js";

export const WORKLOAD_SIZES = ["Small", "Medium", "Large"] as const;
export const WorkloadSize = z.enum(WORKLOAD_SIZES);
export type WorkloadSize = z.infer<typeof WorkloadSize>;
/**
 * Provisioned concurrency (requests served at once) per workload size, as Databricks maps it: the autoscaler
 * keeps a served model between these unless `min/max_provisioned_concurrency` override them, and
 * `scale_to_zero_enabled` lowers the minimum to zero.
 */
export const WORKLOAD_CONCURRENCY: Record<WorkloadSize, { min: number; max: number }> = {
  Small: { min: 4, max: 4 },
  Medium: { min: 8, max: 16 },
  Large: { min: 16, max: 64 },
};

/** Databricks sends versions as strings ("3"); numbers are accepted too; "@alias" follows an alias. */
const Version = z.union([z.string().min(1), z.number().int().positive()]).transform((v) => String(v));

/** Switchyard's own knobs, per served model (Databricks has none for these). */
const BatchingFields = {
  /** Dispatch a batch when this many rows wait (Triton's max batch size). */
  max_batch_size: z.number().int().min(1).max(4096).optional(),
  /** …or this many microseconds after the first row of the batch arrived (Triton's max_queue_delay). */
  max_delay_us: z.number().int().min(0).max(1_000_000).optional(),
  /** Requests a replica admits (running + queued) before answering TEMPORARILY_UNAVAILABLE. */
  max_queue: z.number().int().min(1).max(100_000).optional(),
};

/** Databricks fields accepted, stored and returned; later capabilities give them effect. */
const CommonServedFields = {
  name: z.string().optional(),
  workload_size: WorkloadSize.optional(),
  workload_type: z.string().optional(),
  scale_to_zero_enabled: z.boolean().optional(),
  min_provisioned_concurrency: z.number().int().min(0).optional(),
  max_provisioned_concurrency: z.number().int().min(0).optional(),
  min_provisioned_throughput: z.number().int().min(0).optional(),
  max_provisioned_throughput: z.number().int().min(0).optional(),
  provisioned_model_units: z.number().int().min(0).optional(),
  environment_vars: z.record(z.string(), z.string()).optional(),
  instance_profile_arn: z.string().optional(),
  burst_scaling_enabled: z.boolean().optional(),
  ...BatchingFields,
};

export const ServedEntityInput = z
  .object({ entity_name: z.string(), entity_version: Version, ...CommonServedFields })
  .strict();
export type ServedEntityInput = z.input<typeof ServedEntityInput>;

export const ServedModelInput = z
  .object({
    model_name: z.string(),
    model_version: Version,
    /** In served_models, the split may sit inside each model (as in the notes). */
    traffic_percentage: z.number().optional(),
    ...CommonServedFields,
  })
  .strict();
export type ServedModelInput = z.input<typeof ServedModelInput>;

export const Route = z
  .object({
    served_model_name: z.string().optional(),
    served_entity_name: z.string().optional(),
    traffic_percentage: z.number(),
  })
  .strict();

export const EndpointConfigInput = z
  .object({
    served_entities: z.array(ServedEntityInput).optional(),
    served_models: z.array(ServedModelInput).optional(),
    traffic_config: z
      .object({ routes: z.array(Route) })
      .strict()
      .optional(),
    auto_capture_config: AutoCaptureConfig.optional(),
    rollout: CanaryRollout.optional(),
    shadow_config: ShadowConfig.optional(),
  })
  .strict();
export type EndpointConfigInput = z.input<typeof EndpointConfigInput>;

const Tag = z.object({ key: z.string(), value: z.string().optional() }).strict();

export const CreateEndpointRequest = z
  .object({
    name: z.string(),
    config: EndpointConfigInput,
    tags: z.array(Tag).optional(),
    rate_limits: RateLimits.optional(),
    ai_gateway: z.record(z.string(), z.unknown()).optional(),
    route_optimized: z.boolean().optional(),
    budget_policy_id: z.string().optional(),
    description: z.string().optional(),
    email_notifications: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type CreateEndpointRequest = z.input<typeof CreateEndpointRequest>;

/** One served model after normalisation: one shape whichever input form it came in. */
export const ServedModel = z
  .object({
    name: z.string(),
    model_name: z.string(),
    /** As the user wrote it: "3" or "@champion". */
    model_version: z.string(),
    workload_size: WorkloadSize,
    scale_to_zero_enabled: z.boolean(),
    min_provisioned_concurrency: z.number().int().optional(),
    max_provisioned_concurrency: z.number().int().optional(),
    max_batch_size: z.number().int().optional(),
    max_delay_us: z.number().int().optional(),
    max_queue: z.number().int().optional(),
    /** The other Databricks fields of this entity, kept to be returned as given. */
    extra: z.record(z.string(), z.unknown()).default({}),
    /** Which list it came from, so GET answers in the same form. */
    form: z.enum(["served_entities", "served_models"]),
  })
  .strict();
export type ServedModel = z.infer<typeof ServedModel>;

export const TrafficRoute = z
  .object({ served_model_name: z.string(), traffic_percentage: z.number().int() })
  .strict();
export type TrafficRoute = z.infer<typeof TrafficRoute>;

export const EndpointConfig = z
  .object({
    served_models: z.array(ServedModel),
    routes: z.array(TrafficRoute),
    /** Inference table settings, defaults filled in. */
    auto_capture_config: AutoCaptureConfig.optional(),
    /** The staged canary's section, defaults filled in (`rollout start` reads it). */
    rollout: CanaryRollout.optional(),
    /** Served models that get mirrored requests, default filled in (see shadow.ts). */
    shadow_config: ShadowConfig.optional(),
  })
  .strict();
export type EndpointConfig = z.infer<typeof EndpointConfig>;

export { type ConfigProblem, zodProblems } from "./problems.js";

/**
 * Turns a Databricks config (either form) into the normalised EndpointConfig, or lists every problem it
 * has: integer percentages summing to 100, unique served names, legal names. Whether models and versions
 * exist is checked by the caller against the registry (see `configProblemsAgainstRegistry`).
 */
export function normalizeEndpointConfig(
  input: unknown,
  prefix = "config",
): { config: EndpointConfig; problems: [] } | { config: undefined; problems: ConfigProblem[] } {
  const parsed = EndpointConfigInput.safeParse(input);
  if (!parsed.success) return { config: undefined, problems: zodProblems(parsed.error, prefix) };
  const cfg = parsed.data;
  const problems: ConfigProblem[] = [];
  const served: ServedModel[] = [];
  const inlineRoutes: TrafficRoute[] = [];

  const hasEntities = (cfg.served_entities?.length ?? 0) > 0;
  const hasModels = (cfg.served_models?.length ?? 0) > 0;
  if (hasEntities && hasModels) {
    problems.push({ field: prefix, message: "give served_entities or served_models, not both" });
  } else if (!hasEntities && !hasModels) {
    problems.push({
      field: prefix,
      message: "expected at least one entry in served_entities (or served_models)",
    });
  }

  const add = (
    form: ServedModel["form"],
    i: number,
    model: string,
    version: string,
    e: z.infer<typeof ServedEntityInput> | z.infer<typeof ServedModelInput>,
  ) => {
    const field = `${prefix}.${form}[${i}]`;
    if (!isModelName(model)) {
      problems.push({
        field: `${field}.${form === "served_entities" ? "entity_name" : "model_name"}`,
        message: `'${model}' is not a model name (one to three parts of letters, digits, '_' or '-', joined by '.')`,
      });
    }
    if (!/^([1-9]\d*|@[A-Za-z0-9_-]{1,63})$/.test(version)) {
      problems.push({
        field: `${field}.${form === "served_entities" ? "entity_version" : "model_version"}`,
        message: `'${version}' is not a version: expected a positive integer or '@alias'`,
      });
    }
    const name = e.name ?? defaultServedName(model, aliasOf(version) ?? version);
    if (!isResourceName(name)) {
      problems.push({
        field: `${field}.name`,
        message: `'${name}' is not a served model name ([A-Za-z0-9_-]{1,63})`,
      });
    }
    if (e.min_provisioned_concurrency !== undefined && e.max_provisioned_concurrency !== undefined) {
      if (e.min_provisioned_concurrency > e.max_provisioned_concurrency) {
        problems.push({
          field: `${field}.min_provisioned_concurrency`,
          message: "must not exceed max_provisioned_concurrency",
        });
      }
    }
    const {
      name: _n,
      workload_size,
      scale_to_zero_enabled,
      min_provisioned_concurrency,
      max_provisioned_concurrency,
      max_batch_size,
      max_delay_us,
      max_queue,
      ...rest
    } = e;
    const extra = Object.fromEntries(
      Object.entries(rest).filter(
        ([k]) =>
          !["entity_name", "entity_version", "model_name", "model_version", "traffic_percentage"].includes(k),
      ),
    );
    served.push({
      name,
      model_name: model,
      model_version: version,
      workload_size: workload_size ?? "Small",
      scale_to_zero_enabled: scale_to_zero_enabled ?? false,
      ...(min_provisioned_concurrency !== undefined ? { min_provisioned_concurrency } : {}),
      ...(max_provisioned_concurrency !== undefined ? { max_provisioned_concurrency } : {}),
      ...(max_batch_size !== undefined ? { max_batch_size } : {}),
      ...(max_delay_us !== undefined ? { max_delay_us } : {}),
      ...(max_queue !== undefined ? { max_queue } : {}),
      extra,
      form,
    });
  };

  cfg.served_entities?.forEach((e, i) => {
    add("served_entities", i, e.entity_name, e.entity_version, e);
  });
  cfg.served_models?.forEach((m, i) => {
    add("served_models", i, m.model_name, m.model_version, m);
    if (m.traffic_percentage !== undefined) {
      inlineRoutes.push({
        served_model_name: served[served.length - 1]!.name,
        traffic_percentage: m.traffic_percentage,
      });
    }
  });

  const seen = new Set<string>();
  for (const s of served) {
    if (seen.has(s.name))
      problems.push({ field: `${prefix}.${s.form}`, message: `served model name '${s.name}' is used twice` });
    seen.add(s.name);
  }

  let routes: TrafficRoute[];
  if (cfg.traffic_config) {
    if (inlineRoutes.length) {
      problems.push({
        field: `${prefix}.traffic_config`,
        message: "give traffic_config or traffic_percentage inside served_models, not both",
      });
    }
    routes = [];
    cfg.traffic_config.routes.forEach((r, i) => {
      const name = r.served_model_name ?? r.served_entity_name;
      const field = `${prefix}.traffic_config.routes[${i}]`;
      if (!name) {
        problems.push({ field, message: "expected served_model_name or served_entity_name" });
        return;
      }
      if (!seen.has(name))
        problems.push({ field, message: `'${name}' is not the name of a served model of this config` });
      routes.push({ served_model_name: name, traffic_percentage: r.traffic_percentage });
    });
  } else if (inlineRoutes.length) {
    routes = inlineRoutes;
  } else if (served.length === 1) {
    routes = [{ served_model_name: served[0]!.name, traffic_percentage: 100 }];
  } else {
    routes = [];
    if (served.length > 1) {
      problems.push({
        field: `${prefix}.traffic_config`,
        message: "several served models need traffic_config.routes (or traffic_percentage on each)",
      });
    }
  }

  if (routes.length) {
    routes.forEach((r, i) => {
      if (!Number.isInteger(r.traffic_percentage) || r.traffic_percentage < 0 || r.traffic_percentage > 100) {
        problems.push({
          field: `${prefix}.traffic_config.routes[${i}].traffic_percentage`,
          message: `expected an integer from 0 to 100, got ${r.traffic_percentage}`,
        });
      }
    });
    const sum = routes.reduce((a, r) => a + r.traffic_percentage, 0);
    if (sum !== 100) {
      problems.push({
        field: `${prefix}.traffic_config.routes`,
        message: `traffic percentages must sum to 100, got ${sum}`,
      });
    }
  }

  if (cfg.rollout)
    problems.push(...canaryConfigProblems(cfg.rollout, cfg.auto_capture_config, seen, `${prefix}.rollout`));
  if (cfg.shadow_config) {
    problems.push(...shadowProblems(cfg.shadow_config, [...seen], routes, prefix));
  }

  if (problems.length) return { config: undefined, problems };
  return {
    config: {
      served_models: served,
      routes,
      ...(cfg.auto_capture_config ? { auto_capture_config: cfg.auto_capture_config } : {}),
      ...(cfg.rollout ? { rollout: cfg.rollout } : {}),
      ...(cfg.shadow_config ? { shadow_config: cfg.shadow_config } : {}),
    },
    problems: [],
  };
}

/** One INVALID_PARAMETER_VALUE whose message lists every problem. */
export function configError(problems: ConfigProblem[]): SwitchyardError {
  const list = problems.map((p) => `${p.field}: ${p.message}`).join("; ");
  return new SwitchyardError(
    "INVALID_PARAMETER_VALUE",
    `invalid endpoint config (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${list}`,
  );
}

export const READY_STATES = ["READY", "NOT_READY"] as const;
export const CONFIG_UPDATE_STATES = [
  "NOT_UPDATING",
  "IN_PROGRESS",
  "UPDATE_FAILED",
  "UPDATE_CANCELED",
] as const;

/**
 * The record in KV `<cluster>_endpoints` under the endpoint's name: desired state written by the API
 * (with compare-and-set on the KV revision) and the coordinator's view of it.
 */
export const EndpointRecord = z
  .object({
    name: z.string(),
    id: z.string(),
    creator: z.string(),
    creation_timestamp: z.number().int(),
    last_updated_timestamp: z.number().int(),
    /** Fields of the create body beyond config, stored and returned as given. */
    extra: z.record(z.string(), z.unknown()).default({}),
    /** The config that serves now (null until the first one is ready). */
    config: EndpointConfig.nullable(),
    config_version: z.number().int().nonnegative(),
    /** The config being rolled out, if any. */
    pending_config: EndpointConfig.nullable(),
    pending_config_version: z.number().int().nonnegative().nullable(),
    pending_start_time: z.number().int().nullable(),
    state: z
      .object({
        ready: z.enum(READY_STATES),
        config_update: z.enum(CONFIG_UPDATE_STATES),
        /** Why the last update failed, for people. */
        message: z.string().default(""),
      })
      .strict(),
    /** Served models resolved to concrete versions (aliases followed), by served name. */
    resolved: z.record(z.string(), z.number().int().positive()).default({}),
    /**
     * Generations whose rollout failed, with the reason: the leader does not retry them (an alias that moved
     * to a version that cannot load keeps the old version serving until the alias moves again).
     */
    rejected: z.record(z.string(), z.string()).default({}),
    /**
     * The rollout an alias move started (served name → generation wanted, and when a leader first saw
     * it), kept here so a leader that takes over keeps its deadline. Absent when none runs; an update's
     * rollout starts at pending_start_time.
     */
    alias_rollout: z
      .object({ generations: z.record(z.string(), z.string()), start_time: z.number().int() })
      .strict()
      .optional(),
    deleted: z.boolean().default(false),
  })
  .strict();
export type EndpointRecord = z.infer<typeof EndpointRecord>;
