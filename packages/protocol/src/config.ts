// The declarative desired state users keep in `cluster.config.ts`. One strict zod schema per section, with
// defaults next to each field; later capabilities add sections (endpoints, streams, schedules) here.
import { z } from "zod";
import { DEFAULT_CLUSTER } from "./cluster.js";

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
  })
  .strict();
export type LocalClusterConfig = z.infer<typeof LocalClusterConfig>;

export const ClusterConfig = z
  .object({
    cluster: LocalClusterConfig.default(LocalClusterConfig.parse({})),
  })
  .strict();
export type ClusterConfig = z.infer<typeof ClusterConfig>;
export type ClusterConfigInput = z.input<typeof ClusterConfig>;

/** Typed helper for `cluster.config.ts`; validates eagerly so a typo fails where it was written. */
export function defineConfig(config: ClusterConfigInput): ClusterConfig {
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
  })
  .strict();
export type ClusterFile = z.infer<typeof ClusterFile>;
