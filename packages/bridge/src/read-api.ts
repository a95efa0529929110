// Read-only JSON under /api/2.0/switchyard/ for the dashboard and other tools: the registry's models (versions,
// flavors, aliases) and the cluster's nodes with every process assigned to them. It only reads; never writes.
import type { NatsConnection } from "@nats-io/transport-node";
import { openBucket, readAll } from "@switchyard/nats";
import {
  type ClusterNames,
  isBatchWorker,
  isStreamScorer,
  keys,
  type ModelVersion,
  NodeHeartbeat,
  type RegisteredModel,
  ReplicaStatus,
  WorkerStatus,
  WorkSpec,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import type { FastifyInstance } from "fastify";

export interface ModelVersionView {
  version: number;
  flavor: ModelVersion["flavor"];
  /** The aliases that point at this version now. */
  aliases: string[];
  source: string;
  description: string;
  created_at: number;
  /** Every artifact of the version, in bytes. */
  size_bytes: number;
}

export interface ModelView {
  name: string;
  description: string;
  latest_version: number;
  aliases: Record<string, number>;
  tags: Record<string, string>;
  created_at: number;
  updated_at: number;
  versions: ModelVersionView[];
}

/** What runs (or should run) on a node: one assignment and what its process last reported. */
export type WorkView = {
  id: string;
  threads: number;
  /** The reported state, or PENDING while the process has not reported yet. */
  state: string;
  pid: number | null;
  restarts: number;
  message: string;
  updated_at: number | null;
} & (
  | {
      kind: "replica";
      endpoint: string;
      served_model: string;
      model_name: string;
      model_version: number;
      generation: string;
    }
  | { kind: "batch_worker"; job_id: string; model_name: string; model_version: number }
  | { kind: "stream_scorer"; job_id: string }
);

export interface NodeView {
  node_id: string;
  /** Whether its heartbeat is current; a node that stopped beating still lists what is assigned to it. */
  live: boolean;
  host: string | null;
  pid: number | null;
  /** Its thread budget, and the threads its assignments draw from it. */
  threads: { budget: number | null; assigned: number };
  started_at: number | null;
  updated_at: number | null;
  work: WorkView[];
}

export function modelView(model: RegisteredModel, versions: readonly ModelVersion[]): ModelView {
  const aliasesOf = new Map<number, string[]>();
  for (const [alias, version] of Object.entries(model.aliases).sort()) {
    aliasesOf.set(version, [...(aliasesOf.get(version) ?? []), alias]);
  }
  return {
    name: model.name,
    description: model.description,
    latest_version: model.latest_version,
    aliases: model.aliases,
    tags: model.tags,
    created_at: model.created_at,
    updated_at: model.updated_at,
    versions: versions.map((v) => ({
      version: v.version,
      flavor: v.flavor,
      aliases: aliasesOf.get(v.version) ?? [],
      source: v.source,
      description: v.description,
      created_at: v.created_at,
      size_bytes: v.artifacts.reduce((sum, a) => sum + a.size, 0),
    })),
  };
}

function workView(id: string, spec: WorkSpec, status: ReplicaStatus | WorkerStatus | undefined): WorkView {
  const reported = {
    id,
    threads: spec.threads,
    state: status?.state ?? "PENDING",
    pid: status?.pid ?? null,
    restarts: status?.restarts ?? 0,
    message: status?.message ?? "",
    updated_at: status?.updated_at ?? null,
  };
  if (isBatchWorker(spec)) {
    return {
      ...reported,
      kind: "batch_worker",
      job_id: spec.job_id,
      model_name: spec.model_name,
      model_version: spec.model_version,
    };
  }
  if (isStreamScorer(spec)) return { ...reported, kind: "stream_scorer", job_id: spec.job_id };
  return {
    ...reported,
    kind: "replica",
    endpoint: spec.endpoint,
    served_model: spec.served_model,
    model_name: spec.model_name,
    model_version: spec.model_version,
    generation: spec.generation,
  };
}

/**
 * Nodes from their heartbeats and the assignments (`assign.<node>.<id>`), each assignment with the status its
 * process reported (`replica.<id>` or `worker.<id>`). Pure: the caller reads KV.
 */
export function nodesView(
  heartbeats: readonly NodeHeartbeat[],
  assignments: ReadonlyArray<{ key: string; value: WorkSpec }>,
  statuses: ReadonlyMap<string, ReplicaStatus | WorkerStatus>,
): NodeView[] {
  const nodes = new Map<string, NodeView>();
  for (const h of heartbeats) {
    nodes.set(h.node_id, {
      node_id: h.node_id,
      live: true,
      host: h.host,
      pid: h.pid,
      threads: { budget: h.threads, assigned: 0 },
      started_at: h.started_at,
      updated_at: h.updated_at,
      work: [],
    });
  }
  for (const { key, value } of assignments) {
    const [, nodeId = "", id = ""] = key.split(".");
    let node = nodes.get(nodeId);
    if (!node) {
      node = {
        node_id: nodeId,
        live: false,
        host: null,
        pid: null,
        threads: { budget: null, assigned: 0 },
        started_at: null,
        updated_at: null,
        work: [],
      };
      nodes.set(nodeId, node);
    }
    node.threads.assigned += value.threads;
    node.work.push(workView(id, value, statuses.get(id)));
  }
  const kindOrder = { replica: 0, batch_worker: 1, stream_scorer: 2 } as const;
  for (const node of nodes.values()) {
    node.work.sort((a, b) => kindOrder[a.kind] - kindOrder[b.kind] || (a.id < b.id ? -1 : 1));
  }
  return [...nodes.values()].sort((a, b) => (a.node_id < b.node_id ? -1 : 1));
}

/** Registers `GET /api/2.0/switchyard/models[/{name}]` and `GET /api/2.0/switchyard/nodes`. */
export async function registerReadApi(
  app: FastifyInstance,
  opts: { nc: NatsConnection; names: ClusterNames },
): Promise<void> {
  const [registry, cluster, liveness] = await Promise.all([
    Registry.open(opts.nc, { cluster: opts.names.cluster }),
    openBucket(opts.nc, opts.names, "cluster"),
    openBucket(opts.nc, opts.names, "liveness"),
  ]);

  const oneModel = async (model: RegisteredModel) =>
    modelView(model, await registry.listVersions(model.name));

  app.get("/api/2.0/switchyard/models", async () => {
    const models = await registry.listModels();
    return { models: await Promise.all(models.map(oneModel)) };
  });
  app.get<{ Params: { name: string } }>("/api/2.0/switchyard/models/:name", async (req) =>
    oneModel(await registry.getModel(req.params.name)),
  );

  app.get("/api/2.0/switchyard/nodes", async () => {
    const [heartbeats, assignments, replicas, workers] = await Promise.all([
      readAll(liveness, keys.nodes, NodeHeartbeat, "node heartbeat"),
      readAll(cluster, keys.assignments, WorkSpec, "assignment"),
      readAll(cluster, keys.replicas, ReplicaStatus, "replica status"),
      readAll(cluster, keys.workers, WorkerStatus, "worker status"),
    ]);
    const statuses = new Map<string, ReplicaStatus | WorkerStatus>();
    for (const { value } of replicas) statuses.set(value.replica_id, value);
    for (const { value } of workers) statuses.set(value.worker_id, value);
    return {
      nodes: nodesView(
        heartbeats.map((h) => h.value),
        assignments,
        statuses,
      ),
    };
  });
}
