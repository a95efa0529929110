// Header names shared by HTTP responses and NATS messages, so a raw NATS client sees what curl sees.

export const H = {
  /** Request: relative timeout in milliseconds (HTTP and raw NATS clients). */
  timeoutMs: "x-switchyard-timeout-ms",
  /** Request, router → replica: absolute deadline, epoch milliseconds. */
  deadline: "x-switchyard-deadline",
  /** Request: sticky routing key; the same key lands on the same served model. */
  routeKey: "x-switchyard-route-key",
  /** Request: body format for the replica: "mlflow" (default) or "oip" (Open Inference Protocol v2). */
  format: "x-switchyard-format",
  contentType: "content-type",
  requestId: "x-request-id",
  /** Response: which served model answered. */
  servedModel: "x-served-model",
  modelName: "x-model-name",
  modelVersion: "x-model-version",
  queueUs: "x-switchyard-queue-us",
  computeUs: "x-switchyard-compute-us",
  batchSize: "x-switchyard-batch-size",
  /** Router ↔ replica: the message is a batch envelope of this many requests or replies (protocol/envelope.ts). */
  batch: "x-switchyard-batch",
  /** Request, management API: who asks (the bridge sets it from the token); recorded as an endpoint's creator. */
  user: "x-switchyard-user",
  /** Response: set on errors, with the catalog code (the body carries `error_code` too). */
  errorCode: "x-switchyard-error-code",
  /** Response: on REQUEST_LIMIT_EXCEEDED and TEMPORARILY_UNAVAILABLE, seconds to wait before retrying. */
  retryAfter: "retry-after",
} as const;

export const DEFAULT_TIMEOUT_MS = 30_000;
export const MSGPACK = "application/msgpack";
export const JSON_TYPE = "application/json";
export const CSV_TYPE = "text/csv";
