// Listing the keys of a KV bucket reliably. `kv.keys()` walks an ordered consumer and stops after the count
// it saw when it started: a key rewritten during the walk (its old revision removed before the consumer
// reaches it, the new one landing past that count) is missed. A heartbeat renewed every second is then
// "missing" and a coordinator would declare a live node dead. Stream info with a subjects filter is one
// server-side snapshot of every key, so nothing live is ever left out.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";

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
