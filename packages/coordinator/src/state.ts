// The coordinator's view of cluster state, read fresh from KV (never an in-memory-only truth): endpoint
// records with their revisions, routes, assignments, replica statuses and live nodes; batch jobs and schedules.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { openBucket, readAll as readEvery, readValue, type Schema, type Stored } from "@switchyard/nats";
import {
  type ClusterNames,
  EndpointRecord,
  EndpointRoutes,
  keys,
  NodeHeartbeat,
  ReplicaSpec,
  ReplicaStatus,
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

export interface StoredRecord {
  record: EndpointRecord;
  revision: number;
}

export interface ClusterSnapshot {
  records: Map<string, StoredRecord>;
  routes: Map<string, EndpointRoutes>;
  assignments: Assignment[];
  statuses: Map<string, ReplicaStatus>;
  nodes: NodeHeartbeat[];
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

export async function readAssignments(stores: Stores): Promise<Assignment[]> {
  const all = await readAll(stores.cluster, keys.assignments, ReplicaSpec, "assignment");
  return all.map(({ key, value }) => {
    const [, node_id = "", replica_id = ""] = key.split(".");
    return { node_id, replica_id, spec: value };
  });
}

export async function readSnapshot(stores: Stores): Promise<ClusterSnapshot> {
  const [records, routes, assignments, statuses, nodes] = await Promise.all([
    readAll(stores.endpoints, ">", EndpointRecord, "endpoint record"),
    readAll(stores.cluster, keys.allRoutes, EndpointRoutes, "routes record"),
    readAssignments(stores),
    readAll(stores.cluster, keys.replicas, ReplicaStatus, "replica status"),
    readAll(stores.liveness, keys.nodes, NodeHeartbeat, "node heartbeat"),
  ]);
  return {
    records: new Map(records.map((r) => [r.value.name, { record: r.value, revision: r.revision }])),
    routes: new Map(routes.map((r) => [r.value.endpoint, r.value])),
    assignments,
    statuses: new Map(statuses.map((s) => [s.value.replica_id, s.value])),
    nodes: nodes.map((n) => n.value),
  };
}

/** Deletes an endpoint's routes, then its assignments, then its record. */
export async function cleanupEndpoint(stores: Stores, name: string): Promise<void> {
  await stores.cluster.delete(keys.routes(name));
  for (const a of await readAssignments(stores)) {
    if (a.spec.endpoint === name) await stores.cluster.delete(keys.assignment(a.node_id, a.replica_id));
  }
  await stores.endpoints.delete(keys.endpoint(name));
}
