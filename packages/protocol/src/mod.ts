// @switchyard/protocol: the contract at the bottom of the graph — subject, bucket, header and queue-group
// names, the error catalog, name and URI rules, and the zod schemas of every record kept in NATS. No I/O.
// `@switchyard/protocol/errors` is the catalog alone (no zod), for the light data-types package.

export * from "./access.js";
export * from "./apply.js";
export * from "./batch.js";
export * from "./canary.js";
export * from "./capture.js";
export * from "./cluster.js";
export * from "./config.js";
export * from "./duration.js";
export * from "./endpoint.js";
export * from "./envelope.js";
export * from "./errors.js";
export * from "./features.js";
export * from "./feedback.js";
export * from "./headers.js";
export * from "./launch.js";
export * from "./limits.js";
export * from "./model.js";
export * from "./names.js";
export * from "./placement.js";
export * from "./rate-limit.js";
export * from "./shadow.js";
export * from "./stats.js";
export * from "./stream.js";
export * from "./uri.js";
