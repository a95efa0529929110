// The coordinator's view of cluster state, read fresh from KV (never an in-memory-only truth): endpoint
// records with their revisions, routes, assignments, replica statuses and live nodes; batch jobs and schedules.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { openBucket, readAll as readEvery, readValue, type Schema, type Stored } from "@switchyard/nats";
import {
  type ClusterNames,
  EndpointRecord,
  EndpointRoutes,
  isJobWorker,
  type JobWorkerSpec,
  keys,
  NodeHeartbeat,
  type ReplicaSpec,
  ReplicaStatus,
  ScaleDecision,
  WorkSpec,
} from "@switchyard/protocol";

export interface Stores {
  endpoints: KV;
  cluster: KV;
  liveness: KV;
  models: KV;
  jobs: KV;
}

/** Opens (creating if missing) the buckets the control plane uses. */
export async function openStores(nc: NatsConnection, names: ClusterNames): Promise<Stores> {
  const [endpoints, cluster, liveness, models, jobs] = await Promise.all([
    openBucket(nc, names, "endpoints"),
    openBucket(nc, names, "cluster"),
    openBucket(nc, names, "liveness"),
    openBucket(nc, names, "models"),
    openBucket(nc, names, "jobs"),
  ]);
  return { endpoints, cluster, liveness, models, jobs };
}

export interface Assignment {
  node_id: string;
  replica_id: string;
  spec: ReplicaSpec;
}

/** A job's process assignment (`assign.<node>.<worker>` holding a batch worker's or stream scorer's spec). */
export interface WorkerAssignment {
  node_id: string;
  worker_id: string;
  spec: JobWorkerSpec;
}

export interface StoredRecord {
  record: EndpointRecord;
  revision: number;
}

export interface ClusterSnapshot {
  records: Map<string, StoredRecord>;
  routes: Map<string, EndpointRoutes>;
  assignments: Assignment[];
  workers: WorkerAssignment[];
  statuses: Map<string, ReplicaStatus>;
  nodes: NodeHeartbeat[];
  /** The autoscaler's decisions by their key (`keys.scale(endpoint, served)`). */
  scales: Map<string, ScaleDecision>;
}

/** The autoscaler's stored decisions (all, or one endpoint's), by key (`keys.scale(endpoint, served)`). */
export async function readScales(stores: Stores, endpoint?: string): Promise<Map<string, ScaleDecision>> {
  const filter = endpoint === undefined ? keys.scales : keys.scalesOf(endpoint);
  const all = await readAll(stores.cluster, filter, ScaleDecision, "scale decision");
  return new Map(all.map((d) => [d.key, d.value]));
}

/**
 * Every value under `filter` that parses with `schema`, with its key and revision. Control loops skip a record
 * they cannot read, so one bad record never stops the others.
 */
export function readAll<T>(kv: KV, filter: string, schema: Schema<T>, what: string): Promise<Stored<T>[]> {
  return readEvery(kv, filter, schema, what, { invalid: "skip" });
}

export async function readRecord(stores: Stores, name: string): Promise<StoredRecord | undefined> {
  const found = await readValue(stores.endpoints, keys.endpoint(name), EndpointRecord, `endpoint '${name}'`);
  return found ? { record: found.value, revision: found.revision } : undefined;
}

/** Replica assignments. */
export async function readAssignments(stores: Stores): Promise<Assignment[]> {
  return (await readWork(stores)).replicas;
}

/** Every assignment, split by kind: replicas, and jobs' processes (batch workers, stream scorers). */
export async function readWork(
  stores: Stores,
): Promise<{ replicas: Assignment[]; workers: WorkerAssignment[] }> {
  const all = await readAll(stores.cluster, keys.assignments, WorkSpec, "assignment");
  const replicas: Assignment[] = [];
  const workers: WorkerAssignment[] = [];
  for (const { key, value } of all) {
    const [, node_id = "", id = ""] = key.split(".");
    if (isJobWorker(value)) workers.push({ node_id, worker_id: id, spec: value });
    else replicas.push({ node_id, replica_id: id, spec: value });
  }
  return { replicas, workers };
}

export async function readSnapshot(stores: Stores): Promise<ClusterSnapshot> {
  const [records, routes, work, statuses, nodes, scales] = await Promise.all([
    readAll(stores.endpoints, ">", EndpointRecord, "endpoint record"),
    readAll(stores.cluster, keys.allRoutes, EndpointRoutes, "routes record"),
    readWork(stores),
    readAll(stores.cluster, keys.replicas, ReplicaStatus, "replica status"),
    readAll(stores.liveness, keys.nodes, NodeHeartbeat, "node heartbeat"),
    readScales(stores),
  ]);
  return {
    records: new Map(records.map((r) => [r.value.name, { record: r.value, revision: r.revision }])),
    routes: new Map(routes.map((r) => [r.value.endpoint, r.value])),
    assignments: work.replicas,
    workers: work.workers,
    statuses: new Map(statuses.map((s) => [s.value.replica_id, s.value])),
    nodes: nodes.map((n) => n.value),
    scales,
  };
}

/** Deletes an endpoint's routes, then its assignments and scale decisions, then its record. */
export async function cleanupEndpoint(stores: Stores, name: string): Promise<void> {
  await stores.cluster.delete(keys.routes(name));
  for (const a of await readAssignments(stores)) {
    if (a.spec.endpoint === name) await stores.cluster.delete(keys.assignment(a.node_id, a.replica_id));
  }
  for (const key of (await readScales(stores, name)).keys()) await stores.cluster.delete(key);
  await stores.cluster.delete(keys.canary(name));
  // Permission grants (the bridge's permissions API) die with the endpoint: a new one of that name starts bare.
  await stores.cluster.delete(keys.grants(name));
  await stores.endpoints.delete(keys.endpoint(name));
}
