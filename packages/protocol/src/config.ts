// The declarative desired state users keep in `cluster.config.ts`. One strict zod schema per section, with
// defaults next to each field. The sections `switchyard apply` reconciles (models, endpoints, streams,
// schedules) live in apply.ts, which imports nothing from here (canary.ts needs `Duration` without a cycle).
import { z } from "zod";
import { DECLARATIVE_SECTIONS } from "./apply.js";
import { DEFAULT_CLUSTER } from "./cluster.js";
import { Duration } from "./duration.js";

// Kept here too: `Duration` was first exported from this module.
export { Duration } from "./duration.js";

/** nats-server's bound: a stream is kept by at most five servers of a cluster. */
export const MAX_REPLICATION = 5;

export const LocalClusterConfig = z
  .object({
    /** Prefix of every bucket, stream and subject, so clusters can share a NATS server. */
    name: z.string().default(DEFAULT_CLUSTER),
    /** Where `switchyard up` keeps NATS data, secrets, logs and `cluster.json`. */
    dataDir: z.string().min(1).default(".switchyard"),
    /** Interface the embedded nats-server and the bridge listen on. */
    host: z.string().min(1).default("127.0.0.1"),
    /** 0 lets the OS pick a free port. */
    natsPort: z.number().int().min(0).max(65535).default(4222),
    httpPort: z.number().int().min(0).max(65535).default(8080),
    /** JetStream `sync_interval: always`: fsync every write (durable, ~4x slower publishes). */
    syncAlways: z.boolean().default(false),
    /** The local node's compute budget in ORT threads; null means one per core. */
    nodeThreads: z.number().int().positive().nullable().default(null),
    /** Bearer tokens on the HTTP bridge. Turning this off is explicit and warned about. */
    auth: z.boolean().default(true),
    /**
     * Directories batch jobs may read and write (relative to where `switchyard up` runs). Empty means the
     * working directory of `switchyard up` and its data dir.
     */
    dataRoots: z.array(z.string().min(1)).default([]),
    /**
     * How many NATS servers keep each stream, KV bucket and object store the cluster creates. `switchyard up`
     * runs one nats-server, so 1; a NATS cluster of three takes 3 (the compose file's).
     */
    replication: z.number().int().min(1).max(MAX_REPLICATION).default(1),
  })
  .strict();
export type LocalClusterConfig = z.infer<typeof LocalClusterConfig>;

/** The autoscaler's defaults (ms): Databricks' 30 minutes to zero; Kubernetes HPA's stabilisation windows. */
export const AUTOSCALER_DEFAULTS = {
  scaleToZeroAfterMs: 30 * 60_000,
  upStabilizationMs: 0,
  downStabilizationMs: 30_000,
} as const;

export const AutoscalerConfig = z
  .object({
    /** A served model with scale_to_zero_enabled and no request for this long goes to zero replicas. */
    scaleToZeroAfter: Duration.default(AUTOSCALER_DEFAULTS.scaleToZeroAfterMs),
    /** Scale up only to the lowest replica count load asked for over this window (0: at once). */
    upStabilization: Duration.default(AUTOSCALER_DEFAULTS.upStabilizationMs),
    /** Scale down only to the highest replica count load asked for over this window, so lulls do not thrash. */
    downStabilization: Duration.default(AUTOSCALER_DEFAULTS.downStabilizationMs),
  })
  .strict();
export type AutoscalerConfig = z.infer<typeof AutoscalerConfig>;

export const ClusterConfig = z
  .object({
    cluster: LocalClusterConfig.default(LocalClusterConfig.parse({})),
    autoscaler: AutoscalerConfig.default(AutoscalerConfig.parse({})),
    ...DECLARATIVE_SECTIONS,
  })
  .strict();
export type ClusterConfig = z.infer<typeof ClusterConfig>;
export type ClusterConfigInput = z.input<typeof ClusterConfig>;

/**
 * Set by the config loader while it imports a config file: the loader validates the whole file itself, so it
 * can name every problem at once together with those only it can see (missing model files).
 */
export const DEFER_CONFIG_VALIDATION = Symbol.for("switchyard.config.deferValidation");

/** Typed helper for `cluster.config.ts`; validates eagerly so a typo fails where it was written. */
export function defineConfig(config: ClusterConfigInput): ClusterConfig {
  if ((globalThis as Record<symbol, unknown>)[DEFER_CONFIG_VALIDATION]) return config as ClusterConfig;
  return ClusterConfig.parse(config);
}

/** `cluster.json`, written by `switchyard up` (mode 0600) so tools find the running local cluster. */
export const ClusterFile = z
  .object({
    cluster: z.string(),
    /** Connects as is: the CLI's credentials are embedded. */
    natsUrl: z.string(),
    httpUrl: z.string().optional(),
    token: z.string().optional(),
    pid: z.number().int(),
    startedAt: z.string(),
    /** The nats-server process, which `switchyard users` signals (SIGHUP) to reload its users. */
    natsPid: z.number().int().optional(),
    /** The authorization file that nats-server includes (the users and their permissions). */
    natsAuthorization: z.string().optional(),
  })
  .strict();
export type ClusterFile = z.infer<typeof ClusterFile>;
