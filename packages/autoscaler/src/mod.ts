// @switchyard/autoscaler: the pure scaling policy (an injected clock, no I/O) and the aggregation of the
// stats replicas and routers publish over NATS, which both the autoscaler and the metrics read; and the live
// accuracy windows of feedback outcomes (accuracy.ts, pure; accuracy-feed.ts follows the outcome stream).
export * from "./accuracy.js";
export * from "./accuracy-feed.js";
export * from "./feed.js";
export * from "./metrics.js";
export * from "./policy.js";
export * from "./policy-window.js";
