// Replication: how many servers of a NATS cluster keep each JetStream stream, KV bucket and object store the
// cluster creates. One setting (cluster.replication, SWITCHYARD_REPLICATION, --replication) decides it for all of
// them; the roles create what is missing with it and bring an existing stream with another count to it.
import {
  type JetStreamManager,
  jetstreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { type ClusterNames, invalid, MAX_REPLICATION, SwitchyardError } from "@switchyard/protocol";
import { BUCKET_OPTIONS, type BucketName } from "./kv.js";

/** One server keeps everything: what a single nats-server (`switchyard up`) can do. */
export const DEFAULT_REPLICATION = 1;

/** How long a role waits for a NATS cluster that is still settling before its start fails. */
export const CLUSTER_SETTLING_WAIT_MS = 60_000;

/** What a cluster that loses a server or a stream leader answers for a few seconds: no answer in time, or none. */
const UNSETTLED =
  /timeout|jetstream (is )?not enabled|no responders|no suitable peers|insufficient resources/i;

/**
 * What a NATS cluster answers while it is still settling, never for good: JetStream answers as soon as a meta
 * leader exists, possibly before it has heard from the other servers ("no suitable peers for placement"); a
 * stream just created may not be known yet to the server a request lands on ("stream not found"); a server
 * whose JetStream has not caught up, or a stream electing its leader, does not answer in time.
 */
const SETTLING = new RegExp(`${UNSETTLED.source}|stream not found`, "i");

/**
 * A failure of the NATS cluster under a request (a server of three died and its streams elect new leaders) as
 * the retryable error a caller should see instead of an internal one; undefined for anything else.
 */
export function clusterUnsettled(err: unknown): SwitchyardError | undefined {
  if (err instanceof SwitchyardError || !(err instanceof Error) || !UNSETTLED.test(err.message))
    return undefined;
  return new SwitchyardError(
    "TEMPORARILY_UNAVAILABLE",
    `the NATS cluster did not answer (${err.message}): a server or a stream leader may be changing; try again`,
    { cause: err },
  );
}

/** JetStream found fewer servers than a stream's replica count. */
const PLACEMENT = /no suitable peers|insufficient resources/i;

/** The server's words, and what an operator checks (docs/deploy.md, "The JetStream meta group"). */
function placementError(message: string, cause: unknown): Error {
  return new Error(
    `${message}: JetStream has fewer servers to place the stream on than its replica count (the replication ` +
      "setting). Check that every nats-server runs and that the JetStream meta group holds them all (monitoring " +
      "/jsz, meta_cluster.cluster_size); nats-server 2.10 may leave one out on a first start, and restarting it " +
      "brings it in",
    { cause },
  );
}

/**
 * Runs `op` (idempotent: create if missing, then check) again while the cluster is settling, for up to `waitMs`,
 * so roles started together with their NATS cluster, or with each other, do not fail their start.
 */
export async function whileClusterSettles<T>(
  op: () => Promise<T>,
  waitMs = CLUSTER_SETTLING_WAIT_MS,
): Promise<T> {
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      const message = String((err as Error)?.message ?? err);
      if (!SETTLING.test(message)) throw err;
      if (Date.now() > end) throw PLACEMENT.test(message) ? placementError(message, err) : err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The stream's info, or undefined when the server says it does not exist (any other error propagates). */
async function infoOrNone(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  return jsm.streams.info(name).catch((err: unknown) => {
    if (/stream not found/i.test((err as Error).message ?? "")) return undefined;
    throw err;
  });
}

/** The replica count from a flag or variable (`field` names it in the error): an integer 1..5. */
export function parseReplication(value: string | number, field: string): number {
  const n = typeof value === "number" ? value : value.trim() === "" ? Number.NaN : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_REPLICATION) {
    throw invalid(`${field}: expected an integer from 1 to ${MAX_REPLICATION}, got '${value}'`);
  }
  return n;
}

/** What a role logs about replication: pino's `info`/`warn` signature, so a pino logger fits. */
export interface ReplicationLog {
  info(detail: object, msg: string): void;
  warn(detail: object, msg: string): void;
}

/**
 * Makes stream `name` kept by `replicas` servers: nothing when it already is, else a stream update (nats-server
 * 2.10 moves a clustered stream between counts; a single server refuses any count above 1). A refused update is
 * logged with both counts and the server's reason, and the stream is used as it is: losing availability of a
 * running cluster over a replica count would be worse than running it with the old one.
 */
export async function reconcileReplicas(
  jsm: JetStreamManager,
  name: string,
  replicas: number,
  log: ReplicationLog,
): Promise<void> {
  const info = await jsm.streams.info(name);
  const have = info.config.num_replicas || 1;
  if (have === replicas) return;
  try {
    await jsm.streams.update(name, { ...info.config, num_replicas: replicas });
    log.info(
      { stream: name, from: have, to: replicas },
      "stream replica count changed to the replication setting",
    );
  } catch (err) {
    log.warn(
      { stream: name, replicas: have, replication: replicas, err: (err as Error).message },
      "stream keeps its replica count: the server refused to change it to the replication setting",
    );
  }
}

/** reconcileReplicas for a caller that holds a connection, not a JetStream manager (the object store's owner). */
export async function followReplication(
  nc: NatsConnection,
  stream: string,
  { replicas, log }: ReplicationSetting,
): Promise<void> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  await whileClusterSettles(() => reconcileReplicas(jsm, stream, replicas, log));
}

/** The replication setting as the code that creates streams takes it: the count, and where to say what differs. */
export interface ReplicationSetting {
  replicas: number;
  log: ReplicationLog;
}

/**
 * Creates stream `cfg.name` unless it exists; an existing one keeps its settings except its replica count, which
 * `setting` brings to its own (see reconcileReplicas). Without a setting a new stream has one replica and an
 * existing one is left as it is. It returns once the stream answers, so a consumer can be added at once.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
  setting?: ReplicationSetting,
): Promise<void> {
  await whileClusterSettles(async () => {
    if (!(await infoOrNone(jsm, cfg.name))) {
      await jsm.streams
        .add({ ...cfg, num_replicas: setting?.replicas ?? DEFAULT_REPLICATION })
        .catch(async (err: unknown) => {
          // Another role created it at the same moment.
          if (!(await infoOrNone(jsm, cfg.name))) throw err;
        });
    }
    if (setting) await reconcileReplicas(jsm, cfg.name, setting.replicas, setting.log);
    else await jsm.streams.info(cfg.name);
  });
}

/**
 * Every KV bucket of the cluster, created with `replicas` when missing and brought to it when not: each role
 * runs this first, so whichever starts first creates the buckets with the setting, and the clients and
 * processes that open a bucket later (with openBucket) find it as the setting made it.
 */
export async function provisionBuckets(
  nc: NatsConnection,
  names: ClusterNames,
  { replicas, log }: ReplicationSetting,
): Promise<void> {
  const kvm = new Kvm(nc);
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  await Promise.all(
    (Object.keys(BUCKET_OPTIONS) as BucketName[]).map(async (bucket) => {
      const name = names.buckets[bucket];
      await whileClusterSettles(async () => {
        // A client that opened the bucket at the same moment created it with the default count: not an error.
        await kvm.create(name, { ...BUCKET_OPTIONS[bucket], replicas }).catch(async (err: unknown) => {
          if (!(await infoOrNone(jsm, `KV_${name}`))) throw err;
        });
        await reconcileReplicas(jsm, `KV_${name}`, replicas, log);
      });
    }),
  );
}
