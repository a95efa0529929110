// Every NATS name the cluster uses, derived from one configurable cluster name (default `sy`), so two
// clusters can share a NATS server and no module spells a bucket or subject by hand.
import { invalid } from "./errors.js";
import { ridToken, subjectToken } from "./names.js";

export const DEFAULT_CLUSTER = "sy";

/**
 * Queue groups: every member of a group gets a share of its subject's requests. `api`: coordinators serving the
 * management API; `replicas`: the replicas of one served model; `invoke`: the raw-NATS invoke actors;
 * `metrics`: the bridges, which keep the windows of every endpoint's metrics.
 */
export const QUEUE_GROUPS = {
  api: "api",
  replicas: "replicas",
  invoke: "invoke",
  metrics: "metrics",
} as const;

/** Operations of the management API (request/reply, JSON bodies as the HTTP API's). */
export const API_OPS = [
  "endpoints.create",
  "endpoints.update",
  "endpoints.get",
  "endpoints.list",
  "endpoints.delete",
  "endpoints.rate_limits",
  "batch.submit",
  "batch.get",
  "batch.list",
  "batch.cancel",
  "schedules.create",
  "schedules.get",
  "schedules.list",
  "schedules.delete",
  "streams.create",
  "streams.get",
  "streams.list",
  "streams.stop",
  "streams.start",
  "streams.delete",
  "rollout.start",
  "rollout.status",
  "rollout.pause",
  "rollout.resume",
  "rollout.abort",
] as const;
export type ApiOp = (typeof API_OPS)[number];

export interface ClusterNames {
  cluster: string;
  buckets: {
    models: string;
    artifacts: string;
    endpoints: string;
    cluster: string;
    liveness: string;
    jobs: string;
    /** Rate-limit counters, one key per endpoint, limit key and window (see rate-limit.ts). */
    ratelimits: string;
  };
  streams: {
    batch: string;
    capture: string;
    /** Feedback labels (`<c>.feedback.>`) and the outcomes of joining them to captures (`<c>.outcome.>`). */
    feedback: string;
    outcomes: string;
    /** Rows of stream jobs' landing directories, one subject per job and file. */
    landing: string;
    /** The sink stream a stream job creates when no stream captures its sink subject. */
    sink(job: string): string;
  };
  /** The durable consumer a stream job's scorers share. */
  streamConsumer(job: string): string;
  /** The durable consumer on the feedback stream every coordinator shares: each label is joined once. */
  feedbackConsumer: string;
  subjects: {
    /** Raw-client entry point: JSON bodies in, JSON replies out. */
    invoke(endpoint: string): string;
    /** One served model's replicas (queue group). */
    served(endpoint: string, served: string): string;
    /** Management API served by every coordinator (queue group): `<cluster>.api.<op>`. */
    api(op: ApiOp): string;
    /** Replica stats, published about once a second and answered on request. */
    replicaStats(replicaId: string): string;
    /** Router stats (bridges, invoke actors, SDK clients), published about once a second. */
    routerStats(routerId: string): string;
    /** Every stats subject (replicas and routers). */
    allStats: string;
    allReplicaStats: string;
    allRouterStats: string;
    /**
     * The JSON metrics summary, answered by any bridge (queue group `metrics`): body `{}` → MetricsSummary,
     * `{"name"}` → that endpoint's EndpointMetrics. Bridges keep the windows; the CLI has no history.
     */
    metricsSummary: string;
    /**
     * A router holding a request for a served model that has no replica answering (scaled to zero) asks the
     * autoscaler for one here, body `{"endpoint","served_model"}`; the leading coordinator acts at once.
     */
    scaleWake(endpoint: string): string;
    allScaleWake: string;
    /**
     * A node agent publishes a ReplicaDown here the moment a replica process of `endpoint` exits unexpectedly
     * (a crash, kill -9), and a replica when its NATS connection moves to another server (what went through the
     * one it left is lost): routers send again what they have in flight on its route subject at once, instead of
     * learning of the loss at each request's deadline.
     */
    replicaDown(endpoint: string): string;
    allReplicaDown: string;
    /** Shard tasks of one batch job, on the batch work queue. */
    batchTasks(jobId: string): string;
    /** Every batch task subject: what the batch stream captures. */
    allBatchTasks: string;
    /** The rows of one landing file of a stream job (`digest`: the file's content digest). */
    landing(job: string, digest: string): string;
    /** Every landing subject of one stream job: its consumer's filter. */
    landingOf(job: string): string;
    allLanding: string;
    /**
     * One request's capture record (inference table), on the capture stream: one subject per request, so a
     * feedback label finds its capture with a `last_by_subj` get.
     */
    capture(endpoint: string, requestId: string): string;
    /** Every capture of one endpoint (export; anything reading one endpoint). */
    captureOf(endpoint: string): string;
    /** The prefix of `capture(endpoint, …)`: what routers learn with the routes (`<prefix>.<ridToken>`). */
    capturePrefix(endpoint: string): string;
    /** A shadow served model's reply to a mirrored request, beside the primary's capture. */
    captureShadow(endpoint: string, requestId: string, served: string): string;
    /** Labels for one endpoint's requests: JSON `{"request_id","label"}` or an array of them. */
    feedback(endpoint: string): string;
    allFeedback: string;
    /** The joined outcome of a request's first label (published expecting no earlier one). */
    outcome(endpoint: string, served: string, requestId: string): string;
    /** Labels not joined: `unknown`, `duplicate`, `invalid`. */
    outcomeOther(endpoint: string, result: string): string;
    allOutcomes: string;
    /** Every capture subject: what the capture stream captures. */
    allCapture: string;
    /** Everything under the cluster's control prefix. */
    all: string;
  };
}

export function clusterNames(cluster: string = DEFAULT_CLUSTER): ClusterNames {
  if (!/^[a-z][a-z0-9]{0,15}$/.test(cluster)) {
    throw invalid(
      `cluster name '${cluster}' is invalid: expected 1-16 lowercase letters or digits, first a letter`,
    );
  }
  const up = cluster.toUpperCase();
  return {
    cluster,
    buckets: {
      models: `${cluster}_models`,
      artifacts: `${cluster}_artifacts`,
      endpoints: `${cluster}_endpoints`,
      cluster: `${cluster}_cluster`,
      liveness: `${cluster}_liveness`,
      jobs: `${cluster}_jobs`,
      ratelimits: `${cluster}_ratelimits`,
    },
    streams: {
      batch: `${up}_BATCH`,
      capture: `${up}_CAPTURE`,
      feedback: `${up}_FEEDBACK`,
      outcomes: `${up}_OUTCOMES`,
      landing: `${up}_LANDING`,
      sink: (job) => `${up}_SINK_${job}`,
    },
    streamConsumer: (job) => `stream_${job}`,
    feedbackConsumer: "feedback_join",
    subjects: {
      invoke: (endpoint) => `${cluster}.invoke.${subjectToken(endpoint)}`,
      served: (endpoint, served) => `${cluster}.rt.${subjectToken(endpoint)}.${subjectToken(served)}`,
      api: (op) => `${cluster}.api.${op}`,
      replicaStats: (replicaId) => `${cluster}.stats.replica.${replicaId}`,
      routerStats: (routerId) => `${cluster}.stats.router.${routerId}`,
      allStats: `${cluster}.stats.>`,
      allReplicaStats: `${cluster}.stats.replica.*`,
      allRouterStats: `${cluster}.stats.router.*`,
      metricsSummary: `${cluster}.metrics.summary`,
      scaleWake: (endpoint) => `${cluster}.scale.wake.${subjectToken(endpoint)}`,
      allScaleWake: `${cluster}.scale.wake.*`,
      replicaDown: (endpoint) => `${cluster}.replica.down.${subjectToken(endpoint)}`,
      allReplicaDown: `${cluster}.replica.down.*`,
      batchTasks: (jobId) => `${cluster}.batch.task.${subjectToken(jobId)}`,
      allBatchTasks: `${cluster}.batch.task.>`,
      landing: (job, digest) => `${cluster}.landing.${subjectToken(job)}.${digest}`,
      landingOf: (job) => `${cluster}.landing.${subjectToken(job)}.>`,
      allLanding: `${cluster}.landing.>`,
      capture: (endpoint, requestId) => `${cluster}.capture.${subjectToken(endpoint)}.${ridToken(requestId)}`,
      captureOf: (endpoint) => `${cluster}.capture.${subjectToken(endpoint)}.>`,
      capturePrefix: (endpoint) => `${cluster}.capture.${subjectToken(endpoint)}`,
      captureShadow: (endpoint, requestId, served) =>
        `${cluster}.capture.${subjectToken(endpoint)}.${ridToken(requestId)}.${subjectToken(served)}`,
      feedback: (endpoint) => `${cluster}.feedback.${subjectToken(endpoint)}`,
      allFeedback: `${cluster}.feedback.>`,
      outcome: (endpoint, served, requestId) =>
        `${cluster}.outcome.${subjectToken(endpoint)}.${subjectToken(served)}.${ridToken(requestId)}`,
      outcomeOther: (endpoint, result) => `${cluster}.outcome.${subjectToken(endpoint)}._${result}`,
      allOutcomes: `${cluster}.outcome.>`,
      allCapture: `${cluster}.capture.>`,
      all: `${cluster}.>`,
    },
  };
}
