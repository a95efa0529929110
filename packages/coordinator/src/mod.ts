// @switchyard/coordinator: the control plane — leader lease, management API, reconcile of endpoints into
// replica assignments and routes, firing batch schedules. Policies (placement, rollouts, generations, the GET
// view, schedule ticks, staged canaries) are pure and exported.
export { ManagementApi } from "./api.js";
export { AUTOSCALE_DEFAULTS, Autoscale, type AutoscaleOptions, type StreamLag } from "./autoscale.js";
export {
  type BatchFiles,
  BatchJobs,
  type PlannedFiles,
} from "./batch.js";
export {
  abortCanary,
  type CanaryAction,
  type CanaryDecision,
  type CanaryHoldReason,
  type CanaryObservation,
  type CanaryWindow,
  canaryRoutes,
  canarySpec,
  canaryView,
  decideCanary,
  type LabelledAccuracy,
  pauseCanary,
  readGuards,
  resumeCanary,
  routesOfCanary,
  startCanary,
} from "./canary.js";
export { activeCanaryConflict, CanaryApi } from "./canary-api.js";
export {
  type AccuracySource,
  CANARY_LOOP_DEFAULTS,
  CanaryLoop,
  type CanaryLoopOptions,
} from "./canary-loop.js";
export { ensureCaptureStream } from "./capture.js";
export {
  type AutoscalerOptions,
  COORDINATOR_DEFAULTS,
  Coordinator,
  type CoordinatorOptions,
} from "./coordinator.js";
export {
  ensureFeedbackStreams,
  FEEDBACK_JOIN_DEFAULTS,
  FeedbackJoin,
  type FeedbackJoinOptions,
} from "./feedback.js";
export { LEASE_TRUST_MS, LeaderLease } from "./lease.js";
export {
  capReplicas,
  groupKey,
  type PlacedReplica,
  type PlacementInput,
  type PlacementNode,
  type PlacementPlan,
  placeReplicas,
  type ReplicaGroup,
  threadsPerReplica,
} from "./placement.js";
export { Reconciler } from "./reconcile.js";
export {
  decideRollout,
  deploymentOf,
  type Observed,
  type Resolution,
  type RolloutDecision,
  type RolloutInput,
  type RolloutStep,
  type Wanted,
  wantedTargets,
} from "./rollout.js";
export { ScheduleRunner, type ScheduleRunnerOptions, type SubmitBatch } from "./schedule-runner.js";
export {
  checkZone,
  claimTicks,
  cronOf,
  DATE_PLACEHOLDER,
  MISSED_REASON,
  newSchedule,
  planTicks,
  recordOutcome,
  SCHEDULE_HISTORY,
  type ScheduleRequest,
  type ScheduleView,
  scheduleView,
  TICK_GRACE_MS,
  type TickOutcome,
  type TickPlan,
  tickAfter,
  tickDate,
  tickRequest,
} from "./schedules.js";
export {
  generationOf,
  routesOf,
  type ServedTarget,
  sameRoutes,
  scaledTarget,
  targetsOf,
} from "./targets.js";
export {
  DEPLOYMENT_STATES,
  type DeploymentState,
  type EndpointObservation,
  type EndpointView,
  endpointView,
  type ServedObservation,
} from "./view.js";
