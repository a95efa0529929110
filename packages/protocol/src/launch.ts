// What a node agent hands a replica process it starts (env SWITCHYARD_REPLICA, JSON): the replica's spec
// and how to reach the cluster. Credentials travel here, never on a command line where `ps` shows them.
import { z } from "zod";
import { BatchWorkerSpec, ReplicaSpec, StreamScorerSpec } from "./placement.js";

export const REPLICA_ENV = "SWITCHYARD_REPLICA";
export const BATCH_WORKER_ENV = "SWITCHYARD_BATCH_WORKER";
export const STREAM_SCORER_ENV = "SWITCHYARD_STREAM_SCORER";

export const ReplicaLaunch = z
  .object({
    spec: ReplicaSpec,
    cluster: z.string(),
    node_id: z.string(),
    /** Where verified model artifacts are cached on this host. */
    cache_dir: z.string(),
    nats: z
      .object({
        servers: z.union([z.string(), z.array(z.string())]),
        user: z.string().optional(),
        pass: z.string().optional(),
        token: z.string().optional(),
        creds: z.string().optional(),
      })
      .strict(),
  })
  .strict();
export type ReplicaLaunch = z.infer<typeof ReplicaLaunch>;

/** What a node agent hands a batch worker it starts (env SWITCHYARD_BATCH_WORKER): the same, for a worker. */
export const BatchWorkerLaunch = ReplicaLaunch.extend({ spec: BatchWorkerSpec });
export type BatchWorkerLaunch = z.infer<typeof BatchWorkerLaunch>;

/** What a node agent hands a stream scorer (env SWITCHYARD_STREAM_SCORER): the same, for a scorer. */
export const StreamScorerLaunch = ReplicaLaunch.extend({ spec: StreamScorerSpec });
export type StreamScorerLaunch = z.infer<typeof StreamScorerLaunch>;

/**
 * A warm spare (env SWITCHYARD_SPARE, JSON): a replica process a node agent starts before any assignment needs
 * it. It imports its modules, connects and opens the cluster's buckets, then waits on its IPC channel for the
 * assignment it takes; a replica started from a spare runs exactly as one started with SWITCHYARD_REPLICA.
 */
export const SPARE_ENV = "SWITCHYARD_SPARE";
export const SpareLaunch = ReplicaLaunch.omit({ spec: true }).extend({
  /** Worker threads it starts ahead: the node's budget, which is what the only replica of a node is given. */
  warm_threads: z.number().int().positive(),
});
export type SpareLaunch = z.infer<typeof SpareLaunch>;

/** Agent → spare (IPC): the assignment it takes; with the spare's own launch it makes a ReplicaLaunch. */
export const SpareAssignment = z.object({ spec: ReplicaSpec }).strict();
export type SpareAssignment = z.infer<typeof SpareAssignment>;

/**
 * Spare → agent (IPC): `waiting` once it can take an assignment at once; `serving` when the replica it became is
 * READY (then it closes the channel). A spare that takes an assignment and exits instead sends nothing more.
 */
export interface SpareSignal {
  spare: "waiting" | "serving";
}

/** Exit code of a replica whose model could not be loaded: the agent reports it and does not restart. */
export const EXIT_LOAD_FAILED = 3;
