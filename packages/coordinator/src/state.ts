// The coordinator's view of cluster state, read fresh from KV (never an in-memory-only truth): endpoint
// records with their revisions, routes, assignments, replica statuses and live nodes.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type ClusterNames,
  EndpointRecord,
  EndpointRoutes,
  keys,
  listKeys,
  NodeHeartbeat,
  openBucket,
  ReplicaSpec,
  ReplicaStatus,
} from "@switchyard/protocol";
import type { z } from "zod";

export interface Stores {
  endpoints: KV;
  cluster: KV;
  liveness: KV;
  models: KV;
}

/** Opens (creating if missing) the buckets the control plane uses. */
export async function openStores(nc: NatsConnection, names: ClusterNames): Promise<Stores> {
  const [endpoints, cluster, liveness, models] = await Promise.all([
    openBucket(nc, names, "endpoints"),
    openBucket(nc, names, "cluster"),
    openBucket(nc, names, "liveness"),
    openBucket(nc, names, "models"),
  ]);
  return { endpoints, cluster, liveness, models };
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

/** Every value under `filter` that parses with `schema`, with its key and revision (others are skipped). */
export async function readAll<S extends z.ZodType>(
  kv: KV,
  filter: string,
  schema: S,
): Promise<Array<{ key: string; value: z.infer<S>; revision: number }>> {
  const out: Array<{ key: string; value: z.infer<S>; revision: number }> = [];
  const list = await listKeys(kv, filter);
  const entries = await Promise.all(list.map((k) => kv.get(k)));
  for (const e of entries) {
    if (e?.operation !== "PUT") continue;
    const parsed = schema.safeParse(safeJson(e.string()));
    if (parsed.success) out.push({ key: e.key, value: parsed.data, revision: e.revision });
  }
  return out;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

export async function readRecord(stores: Stores, name: string): Promise<StoredRecord | undefined> {
  const e = await stores.endpoints.get(keys.endpoint(name));
  if (e?.operation !== "PUT") return undefined;
  const parsed = EndpointRecord.safeParse(safeJson(e.string()));
  if (!parsed.success) throw new Error(`endpoint record '${name}' is malformed: ${parsed.error.message}`);
  return { record: parsed.data, revision: e.revision };
}

export async function readAssignments(stores: Stores): Promise<Assignment[]> {
  const all = await readAll(stores.cluster, keys.assignments, ReplicaSpec);
  return all.map(({ key, value }) => {
    const [, node_id = "", replica_id = ""] = key.split(".");
    return { node_id, replica_id, spec: value };
  });
}

export async function readSnapshot(stores: Stores): Promise<ClusterSnapshot> {
  const [records, routes, assignments, statuses, nodes] = await Promise.all([
    readAll(stores.endpoints, ">", EndpointRecord),
    readAll(stores.cluster, keys.allRoutes, EndpointRoutes),
    readAssignments(stores),
    readAll(stores.cluster, keys.replicas, ReplicaStatus),
    readAll(stores.liveness, keys.nodes, NodeHeartbeat),
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
