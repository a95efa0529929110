// Replication: how many servers of a NATS cluster keep each JetStream stream, KV bucket and object store the
// cluster creates. One setting (cluster.replication, SWITCHYARD_REPLICATION, --replication) decides it for all of
// them; the roles create what is missing with it and bring an existing stream with another count to it.
import { type JetStreamManager, jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { type ClusterNames, invalid, MAX_REPLICATION } from "@switchyard/protocol";
import { BUCKET_OPTIONS, type BucketName } from "./kv.js";

/** One server keeps everything: what a single nats-server (`switchyard up`) can do. */
export const DEFAULT_REPLICATION = 1;

/** How long a role waits for a NATS cluster that is still forming before its start fails. */
export const CLUSTER_FORMING_WAIT_MS = 60_000;

/**
 * Runs `create` again while the servers say the cluster has too few peers yet: JetStream answers as soon as a
 * meta leader exists, which can be before it has heard from the other servers ("no suitable peers for
 * placement"), so roles started together with their NATS cluster would otherwise fail their first creation.
 */
export async function whileClusterForms<T>(
  create: () => Promise<T>,
  waitMs = CLUSTER_FORMING_WAIT_MS,
): Promise<T> {
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      return await create();
    } catch (err) {
      const forming = /no suitable peers|insufficient resources/i.test((err as Error).message ?? "");
      if (!forming || Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
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
  await reconcileReplicas(await jetstreamManager(nc, { checkAPI: false }), stream, replicas, log);
}

/** The replication setting as the code that creates streams takes it: the count, and where to say what differs. */
export interface ReplicationSetting {
  replicas: number;
  log: ReplicationLog;
}

/**
 * Creates stream `cfg.name` unless it exists; an existing one keeps its settings except its replica count, which
 * `setting` brings to its own (see reconcileReplicas). Without a setting a new stream has one replica and an
 * existing one is left as it is. A concurrent creation by another role is not an error.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
  setting?: ReplicationSetting,
): Promise<void> {
  const replicas = setting?.replicas ?? DEFAULT_REPLICATION;
  if (!(await jsm.streams.info(cfg.name).catch(() => undefined))) {
    const created = await whileClusterForms(() => jsm.streams.add({ ...cfg, num_replicas: replicas })).then(
      () => true,
      async (err: unknown) => {
        if (!(await jsm.streams.info(cfg.name).catch(() => undefined))) throw err;
        return false;
      },
    );
    if (created) return;
  }
  if (setting) await reconcileReplicas(jsm, cfg.name, setting.replicas, setting.log);
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
      // A client that opened the bucket at the same moment created it with the default count: not an error.
      const create = () => kvm.create(name, { ...BUCKET_OPTIONS[bucket], replicas });
      await whileClusterForms(create).catch(async (err: unknown) => {
        if (!(await jsm.streams.info(`KV_${name}`).catch(() => undefined))) throw err;
      });
      await reconcileReplicas(jsm, `KV_${name}`, replicas, log);
    }),
  );
}
