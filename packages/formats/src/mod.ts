// @switchyard/formats: the body formats every serving mode reads and writes, split by job — request bodies
// → Payload (MLflow, CSV, OIP v2), Payload → a model's feeds (fitted to its signature), outputs → replies.
// The bridge, replicas, batch workers and stream scorers all go through here, so a body means one thing.
export * from "./columns.js";
export * from "./csv.js";
export * from "./feeds.js";
export * from "./model-batch.js";
export * from "./oip.js";
export * from "./outputs.js";
export * from "./reply.js";
export * from "./reply-json.js";
export * from "./request.js";
