// @switchyard/bridge: the HTTP face of a cluster (Databricks/MLflow invocations and management API, Open
// Inference Protocol v2) with bearer-token auth, forwarding to the router and the coordinators over NATS.
export {
  type BridgeOptions,
  createBridge,
  DEFAULT_BODY_LIMIT,
  listenBridge,
  type RunningBridge,
} from "./bridge.js";
export { errorHeaders, RETRY_AFTER_SECONDS, statusOf, toClientError } from "./errors.js";
export type { OipModelMetadata } from "./oip.js";
export {
  type CreatedToken,
  hashToken,
  TOKEN_SCOPES,
  type TokenRecord,
  type TokenScope,
  TokenStore,
} from "./tokens.js";
