// @switchyard/client: the router (weighted split, sticky keys, retries, waiting for replicas), the TypeScript
// SDK (invoke + management API over NATS) and the invoke actor that serves raw NATS clients.
export {
  API_TIMEOUT_MS,
  type ClientInvokeOptions,
  type ClientOptions,
  EndpointsApi,
  type EndpointView,
  type MlflowBody,
  type MlflowResponse,
  replyError,
  SwitchyardClient,
} from "./client.js";
export {
  errorReply,
  INVOKE_MAX_IN_FLIGHT,
  type InvokeActor,
  MAX_TIMEOUT_MS,
  parseTimeoutMs,
  serveInvoke,
} from "./invoke-actor.js";
export {
  INITIAL_BACKOFF_MS,
  type InvokeOptions,
  type InvokeResult,
  MAX_BACKOFF_MS,
  Router,
  type RouterLogger,
  type RouterOptions,
} from "./router.js";
export { buildSplit, pickRoute, routeKeyPoint, type TrafficSplit } from "./split.js";
