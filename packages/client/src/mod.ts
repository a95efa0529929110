// @switchyard/client: the router (weighted split, sticky keys, retries, waiting for replicas), the TypeScript
// SDK (invoke, endpoints, batch and stream jobs over the management API) and the invoke actor that serves raw
// NATS clients.

export { BatchApi, type ScheduleView, type WaitOptions } from "./batch.js";
export {
  CAPTURE_DEFAULTS,
  type CaptureCounts,
  CaptureObserver,
  type CaptureOptions,
  captureRecord,
  type RoutesSource,
  startCapturingRouter,
} from "./capture.js";
export {
  type ClientInvokeOptions,
  type ClientOptions,
  EndpointsApi,
  type EndpointView,
  type MlflowBody,
  type MlflowResponse,
  SwitchyardClient,
} from "./client.js";
export { replyError } from "./errors.js";
export { FeedbackApi } from "./feedback.js";
export {
  errorReply,
  INVOKE_MAX_IN_FLIGHT,
  type InvokeActor,
  MAX_TIMEOUT_MS,
  parseTimeoutMs,
  serveInvoke,
} from "./invoke-actor.js";
export { API_TIMEOUT_MS, callApi, callJson } from "./management.js";
export { RolloutApi, type RolloutOverrides } from "./rollout.js";
export {
  INITIAL_BACKOFF_MS,
  type InvokeObserver,
  type InvokeOptions,
  type InvokeOutcome,
  type InvokeResult,
  MAX_BACKOFF_MS,
  Router,
  type RouterLogger,
  type RouterOptions,
} from "./router.js";
export {
  MAX_UNROUTED_ENDPOINTS,
  NO_SERVED_MODEL,
  OTHER_ENDPOINTS,
  ROUTER_STATS_INTERVAL_MS,
  RouterStats,
  type RouterStatsOptions,
} from "./router-stats.js";
export { buildSplit, pickRoute, routeKeyPoint, type TrafficSplit } from "./split.js";
export { StreamsApi } from "./streams.js";
