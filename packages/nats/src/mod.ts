// @switchyard/nats: the NATS mechanisms every component shares — connecting with any credential form to one server
// or a cluster (and hearing when a connection moved to another server), the replication setting of what the cluster creates, opening
// a bucket with its one set of settings, listing keys reliably, reading every value through a schema, and
// compare-and-set updates. One helper per mechanism; no component talks to KV another way.
export * from "./connect.js";
export * from "./kv.js";
export * from "./replication.js";
