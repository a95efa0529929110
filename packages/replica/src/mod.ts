// Public API of the replica package: the replica actor (admission, dynamic batcher, stats, the wire format of
// realtime requests) and the batching policy with its one default config. Its process entry is the package
// export `@switchyard/replica/main`, which node agents spawn without importing this.
export {
  type Admission,
  type BatchClock,
  type BatchConfig,
  Batcher,
  type BatchSink,
  type Pending,
  REPLICA_DEFAULTS,
} from "./batcher.js";
export { REAL_CLOCK, Replica, type ReplicaOptions } from "./replica.js";
export { ReplicaStats } from "./stats.js";
export { type DecodedRequest, decodeRequest, type ReplyFamily } from "./wire.js";
