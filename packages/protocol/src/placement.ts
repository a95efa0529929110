// Cluster state the control plane and the data plane share through NATS KV: node heartbeats and the
// coordinator lease (bucket `<cluster>_liveness`, whose max_age expires them), replica assignments,
// replica states and live traffic routes (bucket `<cluster>_cluster`). Keys are built here, nowhere else.
import { z } from "zod";
import { RoutesCapture } from "./capture.js";
import { subjectToken } from "./names.js";
import { RoutesShadow } from "./shadow.js";

/** Liveness bucket age limit: a heartbeat or lease not renewed within this is gone. */
export const LIVENESS_TTL_MS = 6_000;
/** How often owners renew heartbeats and the lease (well inside the TTL). */
export const HEARTBEAT_INTERVAL_MS = 1_000;

export const keys = {
  node: (nodeId: string) => `node.${nodeId}`,
  nodes: "node.*",
  lease: "coordinator.leader",
  /** Desired: replica `replicaId` should run on `nodeId`. Agents watch `assign.<their id>.>`. */
  assignment: (nodeId: string, replicaId: string) => `assign.${nodeId}.${replicaId}`,
  assignmentsOf: (nodeId: string) => `assign.${nodeId}.*`,
  assignments: "assign.>",
  /** Observed: what the replica (or its agent) reports. */
  replica: (replicaId: string) => `replica.${replicaId}`,
  replicas: "replica.*",
  /** Observed: a batch worker, as its agent reports it. */
  worker: (workerId: string) => `worker.${workerId}`,
  workers: "worker.*",
  /** Live routes of an endpoint: what routers split traffic over. */
  routes: (endpoint: string) => `routes.${subjectToken(endpoint)}`,
  allRoutes: "routes.*",
  endpoint: (endpoint: string) => subjectToken(endpoint),
  /** The autoscaler's last decision for one served model of an endpoint (a ScaleDecision). */
  scale: (endpoint: string, served: string) => `scale.${subjectToken(endpoint)}.${subjectToken(served)}`,
  scalesOf: (endpoint: string) => `scale.${subjectToken(endpoint)}.*`,
  scales: "scale.>",
  /** An endpoint's staged canary: its rollout frozen at start and its state (a StoredCanary). */
  canary: (endpoint: string) => `canary.${subjectToken(endpoint)}`,
  canaries: "canary.*",
  /** Databricks permission grants on an endpoint (the bridge's StoredGrants). */
  grants: (endpoint: string) => `grants.${subjectToken(endpoint)}`,
  allGrants: "grants.*",
};

export const NodeHeartbeat = z
  .object({
    node_id: z.string(),
    host: z.string(),
    pid: z.number().int(),
    /** The node's compute budget: ORT threads it may run at once (default: its cores). */
    threads: z.number().int().positive(),
    started_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .strict();
export type NodeHeartbeat = z.infer<typeof NodeHeartbeat>;

export const Lease = z
  .object({ holder: z.string(), since: z.number().int(), renewed_at: z.number().int() })
  .strict();
export type Lease = z.infer<typeof Lease>;

/** Everything a replica process needs to serve one model version. */
export const ReplicaSpec = z
  .object({
    replica_id: z.string(),
    endpoint: z.string(),
    served_model: z.string(),
    /** Subject of this deployment's queue group (includes the generation, so old and new never mix). */
    subject: z.string(),
    model_name: z.string(),
    model_version: z.number().int().positive(),
    /** Worker threads (each one ORT intra-op thread), drawn from the node's budget. */
    threads: z.number().int().positive(),
    max_batch_size: z.number().int().positive(),
    max_delay_us: z.number().int().nonnegative(),
    max_queue: z.number().int().positive(),
    /** Identifies one rollout of a served model; changes when its model version or settings change. */
    generation: z.string(),
  })
  .strict();
export type ReplicaSpec = z.infer<typeof ReplicaSpec>;

/**
 * One batch worker process of a running batch job: it pulls the job's shard tasks from the work queue until
 * none are left. Assigned like replicas (`assign.<node>.<worker>`), so both draw threads from one budget.
 */
export const BatchWorkerSpec = z
  .object({
    kind: z.literal("batch"),
    worker_id: z.string(),
    job_id: z.string(),
    model_name: z.string(),
    model_version: z.number().int().positive(),
    /** Worker threads scoring (each one ORT intra-op thread); reading and writing run beside them. */
    threads: z.number().int().positive(),
  })
  .strict();
export type BatchWorkerSpec = z.infer<typeof BatchWorkerSpec>;

/**
 * One scorer process of a running stream job: it reads the job's record and follows its model, so the spec
 * names only the job (`job_id` is the job's name). Assigned like replicas, from the same thread budget.
 */
export const StreamScorerSpec = z
  .object({
    kind: z.literal("stream"),
    worker_id: z.string(),
    job_id: z.string(),
    threads: z.number().int().positive(),
  })
  .strict();
export type StreamScorerSpec = z.infer<typeof StreamScorerSpec>;

/** What an assignment key holds: a replica, a batch worker or a stream scorer. */
export const WorkSpec = z.union([ReplicaSpec, BatchWorkerSpec, StreamScorerSpec]);
export type WorkSpec = z.infer<typeof WorkSpec>;
/** A job's process (batch worker or stream scorer), as opposed to a replica. */
export type JobWorkerSpec = BatchWorkerSpec | StreamScorerSpec;
export const isBatchWorker = (s: WorkSpec): s is BatchWorkerSpec => "kind" in s && s.kind === "batch";
export const isStreamScorer = (s: WorkSpec): s is StreamScorerSpec => "kind" in s && s.kind === "stream";
export const isJobWorker = (s: WorkSpec): s is JobWorkerSpec => "kind" in s;
/** The id of the process an assignment describes. */
export const workId = (s: WorkSpec) => (isJobWorker(s) ? s.worker_id : s.replica_id);

/** What a batch worker's or stream scorer's agent reports of it (key `worker.<id>`). */
export const WorkerStatus = z
  .object({
    worker_id: z.string(),
    node_id: z.string(),
    job_id: z.string(),
    pid: z.number().int().nullable(),
    state: z.enum(["STARTING", "RUNNING", "STOPPED", "FAILED"]),
    message: z.string().default(""),
    restarts: z.number().int().nonnegative().default(0),
    updated_at: z.number().int(),
  })
  .strict();
export type WorkerStatus = z.infer<typeof WorkerStatus>;

/**
 * Batching and admission settings a served model gets when its config leaves them out: one default config
 * used everywhere (the coordinator fills them into ReplicaSpec, so the replica never guesses).
 * max_delay_us is 0, Triton's default: batches still form from requests that arrive together and from the
 * backlog while every worker is busy, and an idle replica never waits (Node timers cannot wait less than
 * 1 ms, so any small delay would cost a whole millisecond at low load).
 */
export const REPLICA_DEFAULTS = {
  max_batch_size: 32,
  max_delay_us: 0,
  max_queue: 256,
} as const;

export const REPLICA_STATES = ["STARTING", "READY", "DRAINING", "STOPPED", "FAILED"] as const;
export const ReplicaStatus = z
  .object({
    replica_id: z.string(),
    node_id: z.string(),
    endpoint: z.string(),
    served_model: z.string(),
    generation: z.string(),
    pid: z.number().int().nullable(),
    state: z.enum(REPLICA_STATES),
    /** Why it failed (load error, crash loop), for the endpoint's state message. */
    message: z.string().default(""),
    restarts: z.number().int().nonnegative().default(0),
    updated_at: z.number().int(),
  })
  .strict();
export type ReplicaStatus = z.infer<typeof ReplicaStatus>;

export const LiveRoute = z
  .object({
    served_model_name: z.string(),
    traffic_percentage: z.number().int().min(0).max(100),
    subject: z.string(),
    model_name: z.string(),
    model_version: z.number().int().positive(),
  })
  .strict();
export type LiveRoute = z.infer<typeof LiveRoute>;

export const EndpointRoutes = z
  .object({
    endpoint: z.string(),
    config_version: z.number().int().nonnegative(),
    routes: z.array(LiveRoute),
    /** Inference table: where routers publish captures of this endpoint's requests; absent when off. */
    capture: RoutesCapture.optional(),
    /** Shadow traffic: which served models routers mirror requests to; absent when none. */
    shadow: RoutesShadow.optional(),
    updated_at: z.number().int(),
  })
  .strict();
export type EndpointRoutes = z.infer<typeof EndpointRoutes>;

export const SCALE_LIMITS = ["capacity", "max", "min"] as const;

/**
 * The autoscaler's decision for one served model (key `scale.<endpoint>.<served>`), written by the leading
 * coordinator when it changes: the reconciler runs `desired` replicas of the served model, and a coordinator
 * that takes the lease over continues from here.
 */
export const ScaleDecision = z
  .object({
    /** Replicas to run (0: scaled to zero). */
    desired: z.number().int().nonnegative(),
    /** Replicas the load asks for (stabilised), before the bounds and the nodes' capacity. */
    wanted: z.number().int().nonnegative(),
    /** Why, for people. */
    reason: z.string(),
    /** What held `desired` away from `wanted`, if anything. */
    limited_by: z.enum(SCALE_LIMITS).nullable(),
    /** Epoch ms of the decision. */
    at: z.number().int(),
    /** Epoch ms the autoscaler last saw a request for the served model (scale to zero counts from here). */
    last_request_at: z.number().int(),
  })
  .strict();
export type ScaleDecision = z.infer<typeof ScaleDecision>;

/** What a router publishes on `scaleWake(endpoint)` while it holds a request nothing answers. */
export const ScaleWake = z.object({ endpoint: z.string(), served_model: z.string() }).strict();
export type ScaleWake = z.infer<typeof ScaleWake>;

/**
 * What a node agent publishes on `replicaDown(endpoint)` when a replica process exits without being asked to,
 * and a replica when its NATS connection moved to another server: requests it had been handed (or answered
 * through the server it left) are lost, and every router re-sends those it has in flight on `subject`.
 */
export const ReplicaDown = z
  .object({
    replica_id: z.string(),
    node_id: z.string(),
    endpoint: z.string(),
    served_model: z.string(),
    /** The route subject of the replica's queue group (with its generation). */
    subject: z.string().min(1),
    /** What happened: `SIGKILL`, `code 1`, … from its agent; `reconnected to NATS (<server>)` from the replica. */
    reason: z.string(),
  })
  .strict();
export type ReplicaDown = z.infer<typeof ReplicaDown>;

/** The notice for replica `spec` on node `nodeId`, for whoever saw it lost (its agent, or the replica itself). */
export const replicaDownOf = (spec: ReplicaSpec, nodeId: string, reason: string): ReplicaDown => ({
  replica_id: spec.replica_id,
  node_id: nodeId,
  endpoint: spec.endpoint,
  served_model: spec.served_model,
  subject: spec.subject,
  reason,
});
