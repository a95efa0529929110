// The capture stream of inference tables: created when missing at coordinator start, with the limits in
// protocol's CAPTURE_STREAM_LIMITS. It never changes an existing stream's limits, so limits an operator set stay;
// only its replica count follows the replication setting.
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { ensureStream, type ReplicationSetting } from "@switchyard/nats";
import { CAPTURE_STREAM_LIMITS, type ClusterNames } from "@switchyard/protocol";

const NS_PER_MS = 1_000_000;

/** Creates `<C>_CAPTURE` (subjects `<c>.capture.>`) unless it exists; a concurrent creation is not an error. */
export async function ensureCaptureStream(
  nc: NatsConnection,
  names: ClusterNames,
  replication?: ReplicationSetting,
): Promise<void> {
  await ensureLimitsStream(
    nc,
    names.streams.capture,
    names.subjects.allCapture,
    CAPTURE_STREAM_LIMITS,
    replication,
  );
}

/**
 * Creates a file stream of `subjects` limited by age and bytes unless it exists (then only its replica count
 * follows `replication`); a concurrent creation is not an error. A full stream drops its oldest messages rather than refusing new ones.
 */
export async function ensureLimitsStream(
  nc: NatsConnection,
  name: string,
  subjects: string,
  limits: { maxAgeMs: number; maxBytes: number },
  replication?: ReplicationSetting,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await ensureStream(
    jsm,
    {
      name,
      subjects: [subjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: limits.maxAgeMs * NS_PER_MS,
      max_bytes: limits.maxBytes,
    },
    replication,
  );
}
