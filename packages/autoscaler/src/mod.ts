// @switchyard/autoscaler: the pure scaling policy (an injected clock, no I/O) and the aggregation of the
// stats replicas and routers publish over NATS, which both the autoscaler and the metrics read.
export * from "./feed.js";
export * from "./metrics.js";
export * from "./policy.js";
export * from "./policy-window.js";
