// @switchyard/bridge: the HTTP face of a cluster (Databricks/MLflow invocations and management API, Open
// Inference Protocol v2) with bearer-token auth, forwarding to the router and the coordinators over NATS.

export { type Access, accessOf, ROUTE_RULES, type RouteRule } from "./authz.js";
export {
  type BridgeOptions,
  createBridge,
  DEFAULT_BODY_LIMIT,
  listenBridge,
  type RunningBridge,
  registeredRoutes,
} from "./bridge.js";
export { DASHBOARD_PATHS } from "./dashboard/serve.js";
export { errorHeaders, RETRY_AFTER_SECONDS, statusOf, toClientError } from "./errors.js";
export { GrantStore } from "./grants.js";
export { RELOAD_MS } from "./kv-mirror.js";
export type { OipModelMetadata } from "./oip.js";
export { hashToken } from "./token-hashes.js";
export {
  type CreatedToken,
  type CreateTokenOptions,
  isTokenShaped,
  type TokenRecord,
  TokenStore,
} from "./tokens.js";
