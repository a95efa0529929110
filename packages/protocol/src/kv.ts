// Listing the keys of a KV bucket reliably. `kv.keys()` walks an ordered consumer and stops after the count
// it saw when it started: a key rewritten during the walk (its old revision removed before the consumer
// reaches it, the new one landing past that count) is missed. A heartbeat renewed every second is then
// "missing" and a coordinator would declare a live node dead. Stream info with a subjects filter is one
// server-side snapshot of every key, so nothing live is ever left out.
import type { JetStreamManager } from "@nats-io/jetstream";
import { type KV, Kvm, type KvOptions } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ClusterNames } from "./cluster.js";
import { LIVENESS_TTL_MS } from "./placement.js";

/** The parts of nats.js's KV implementation (`Bucket`) this needs; its interface does not expose them. */
interface BucketInternals {
  jsm: JetStreamManager;
  stream: string;
  prefix: string;
}

/** Every key of `kv` matching `filter` (NATS wildcards), deleted ones included until their markers age out. */
export async function listKeys(kv: KV, filter = ">"): Promise<string[]> {
  const bucket = kv as unknown as BucketInternals;
  const info = await bucket.jsm.streams.info(bucket.stream, {
    subjects_filter: `${bucket.prefix}.${filter}`,
  });
  const skip = bucket.prefix.length + 1;
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(skip));
}

type BucketName = "models" | "endpoints" | "cluster" | "liveness" | "jobs";

/**
 * The settings of every KV bucket, in one place: whichever component starts first creates a bucket, and
 * nats-server refuses a create whose settings differ from the existing bucket's.
 */
export const BUCKET_OPTIONS: Record<BucketName, Partial<KvOptions>> = {
  /** A few revisions, to see the last alias moves with `nats kv history`. */
  models: { history: 5 },
  endpoints: { history: 5 },
  cluster: { history: 1 },
  /** Heartbeats and the leader lease expire with the bucket's age limit (no per-key TTL in 2.10). */
  liveness: { history: 1, ttl: LIVENESS_TTL_MS },
  jobs: { history: 5 },
};

/** Opens one of the cluster's KV buckets, creating it with its settings if missing. */
export function openBucket(nc: NatsConnection, names: ClusterNames, bucket: BucketName): Promise<KV> {
  return new Kvm(nc).create(names.buckets[bucket], BUCKET_OPTIONS[bucket]);
}
