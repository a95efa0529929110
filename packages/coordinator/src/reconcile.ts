// The leader's reconcile pass: endpoint records → served targets (aliases resolved) → replica assignments
// → routes, with zero-downtime rollouts (new generation READY, then flip, then retire the old). Every step
// reads KV afresh and writes with compare-and-set where records are concerned; each endpoint's step is
// caught and logged so one bad endpoint never stops the others.
import { randomBytes } from "node:crypto";
import {
  type ClusterNames,
  type EndpointRecord,
  type EndpointRoutes,
  keys,
  type ReplicaSpec,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { Logger } from "pino";
import { capReplicas, groupKey, type PlacedReplica, placeReplicas, type ReplicaGroup } from "./placement.js";
import { ModelLookup, resolveVersions } from "./resolve.js";
import {
  type Assignment,
  type ClusterSnapshot,
  cleanupEndpoint,
  readSnapshot,
  type StoredRecord,
  type Stores,
} from "./state.js";
import { liveTargets, routesOf, type ServedTarget, sameRoutes, targetsOf } from "./targets.js";

export interface ReconcilerOptions {
  names: ClusterNames;
  stores: Stores;
  registry: Registry;
  log: Logger;
  /** A new generation not READY within this is abandoned (UPDATE_FAILED). */
  rolloutTimeoutMs: number;
  now?: () => number;
}

/** What one endpoint wants from placement this pass. */
interface EndpointPlan {
  endpoint: string;
  targets: ServedTarget[];
  /** Replicas kept untouched (old generation serving during a rollout, or an endpoint whose step failed). */
  retiring: string[];
}

const newReplicaId = () => `r${randomBytes(6).toString("hex")}`;

export class Reconciler {
  /** First time a generation was wanted by an alias rollout (pending updates use pending_start_time). */
  private readonly firstWanted = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? Date.now;
  }

  async pass(): Promise<void> {
    const snap = await readSnapshot(this.o.stores);
    const lookup = new ModelLookup(this.o.registry);
    const budget = snap.nodes.reduce((a, n) => a + n.threads, 0);

    // Phase 1: what each endpoint asks for (tentative), so readiness can be judged against capped counts.
    const tentative = new Map<string, { stored: StoredRecord; want: Wanted }>();
    for (const [name, stored] of snap.records) {
      try {
        if (stored.record.deleted) {
          await cleanupEndpoint(this.o.stores, name);
          continue;
        }
        tentative.set(name, { stored, want: await this.wanted(stored.record, snap, lookup) });
      } catch (err) {
        this.o.log.error({ err, endpoint: name }, "reconcile: reading endpoint failed");
      }
    }
    const allGroups: ReplicaGroup[] = [];
    for (const { want } of tentative.values()) {
      for (const t of want.target) allGroups.push({ key: t.group, replicas: t.replicas });
    }
    const counts = capReplicas(allGroups, Math.max(budget, 1));

    // Phase 2: per endpoint, decide flip / fail / wait.
    const plans: EndpointPlan[] = [];
    for (const [name, { stored, want }] of tentative) {
      try {
        plans.push(await this.decide(name, stored.record, stored.revision, want, snap, counts));
      } catch (err) {
        this.o.log.error({ err, endpoint: name }, "reconcile: endpoint step failed");
        plans.push({
          endpoint: name,
          targets: [],
          retiring: snap.assignments.filter((a) => a.spec.endpoint === name).map((a) => a.replica_id),
        });
      }
    }
    // Endpoints whose record could not be read keep their replicas untouched.
    for (const a of snap.assignments) {
      if (
        snap.records.has(a.spec.endpoint) &&
        !tentative.has(a.spec.endpoint) &&
        !snap.records.get(a.spec.endpoint)!.record.deleted
      ) {
        plans.push({ endpoint: a.spec.endpoint, targets: [], retiring: [a.replica_id] });
      }
    }

    // Phase 3: placement over every endpoint at once (the thread budget is shared).
    try {
      await this.place(plans, snap);
    } catch (err) {
      this.o.log.error({ err }, "reconcile: placement failed");
    }
    try {
      await this.collectGarbage(snap);
    } catch (err) {
      this.o.log.error({ err }, "reconcile: garbage collection failed");
    }
  }

  /** The targets an endpoint wants now, and the ones serving now (from its routes). */
  private async wanted(rec: EndpointRecord, snap: ClusterSnapshot, lookup: ModelLookup): Promise<Wanted> {
    const routes = snap.routes.get(rec.name);
    const live = liveTargets(rec, routes);
    const inProgress = rec.state.config_update === "IN_PROGRESS" && rec.pending_config !== null;
    if (inProgress) {
      try {
        const versions = await resolveVersions(lookup, rec.pending_config!);
        return {
          target: targetsOf(this.o.names, rec.name, rec.pending_config!, versions),
          live,
          routes,
          pending: true,
          versions,
        };
      } catch (err) {
        return { target: live, live, routes, pending: true, versions: {}, failure: messageOf(err) };
      }
    }
    if (!rec.config) return { target: [], live, routes, pending: false, versions: {} };
    try {
      const versions = await resolveVersions(lookup, rec.config);
      const target = targetsOf(this.o.names, rec.name, rec.config, versions);
      // A generation that failed before is not retried: the live one keeps serving.
      if (target.some((t) => rec.rejected[t.generation] !== undefined) && live.length) {
        return { target: live, live, routes, pending: false, versions: rec.resolved };
      }
      return { target, live, routes, pending: false, versions };
    } catch (err) {
      // An alias or model that vanished from the registry: keep serving what serves now.
      this.o.log.warn(
        { endpoint: rec.name, err: messageOf(err) },
        "cannot resolve config; keeping live routes",
      );
      return { target: live, live, routes, pending: false, versions: rec.resolved };
    }
  }

  private async decide(
    name: string,
    rec: EndpointRecord,
    revision: number,
    want: Wanted,
    snap: ClusterSnapshot,
    counts: Map<string, number>,
  ): Promise<EndpointPlan> {
    const mine = snap.assignments.filter((a) => a.spec.endpoint === name);
    const liveGroups = new Set(want.live.map((t) => t.group));
    const targetGroups = new Set(want.target.map((t) => t.group));
    const oldReplicas = mine.filter((a) => !targetGroups.has(groupOf(a)) && liveGroups.has(groupOf(a)));
    const keepOld = { endpoint: name, targets: want.target, retiring: oldReplicas.map((a) => a.replica_id) };

    if (want.failure) {
      await this.failRollout(name, rec, revision, want, want.failure);
      return { endpoint: name, targets: want.live, retiring: [] };
    }
    if (want.target.length === 0) return { endpoint: name, targets: [], retiring: [] };

    const now = this.now();
    const fresh = want.target.filter((t) => !liveGroups.has(t.group));
    const status = want.target.map((t) => groupStatus(t, mine, snap, counts.get(t.group) ?? 1));
    const failed = status.find((s) => s.failed !== undefined);
    const allReady = status.every((s) => s.ready);
    const routesMatch = sameRoutes(want.routes, want.target);

    if (routesMatch && !want.pending) {
      return { endpoint: name, targets: want.target, retiring: [] };
    }

    // A rollout: a pending update, or an alias that moved (new generations wanted).
    let started = want.pending ? (rec.pending_start_time ?? rec.last_updated_timestamp) : now;
    if (!want.pending) {
      const key = want.target.map((t) => t.group).join(",");
      started = this.firstWanted.get(key) ?? now;
      this.firstWanted.set(key, started);
    }
    const relevantFailure =
      failed && (fresh.some((t) => t.group === failed.group) || want.pending) ? failed.failed : undefined;
    const timedOut = now - started > this.o.rolloutTimeoutMs;
    if (relevantFailure !== undefined || (timedOut && !allReady)) {
      const notReady = status
        .filter((s) => !s.ready)
        .map((s) => `${s.served} ${s.readyCount}/${s.want} ready`);
      const reason =
        relevantFailure !== undefined
          ? relevantFailure
          : `replicas not ready within ${Math.round(this.o.rolloutTimeoutMs / 1000)} s (${notReady.join(", ")})`;
      await this.failRollout(name, rec, revision, want, reason);
      return { endpoint: name, targets: want.live, retiring: [] };
    }
    if (!allReady) return keepOld;

    // Every replica of every target is READY: flip the routes, then record it, then retire the old.
    const configVersion = want.pending
      ? (rec.pending_config_version ?? rec.config_version + 1)
      : rec.config_version;
    if (!routesMatch || want.pending) {
      const routes = routesOf(name, configVersion, want.target, now);
      await this.o.stores.cluster.put(keys.routes(name), JSON.stringify(routes));
      this.o.log.info(
        {
          endpoint: name,
          routes: routes.routes.map(
            (r) => `${r.served_model_name}=${r.model_version}:${r.traffic_percentage}%`,
          ),
        },
        "routes flipped",
      );
    }
    const next: EndpointRecord = want.pending
      ? {
          ...rec,
          config: rec.pending_config,
          config_version: configVersion,
          pending_config: null,
          pending_config_version: null,
          pending_start_time: null,
          last_updated_timestamp: now,
          state: { ready: "READY", config_update: "NOT_UPDATING", message: "" },
          resolved: want.versions,
          rejected: {},
        }
      : {
          ...rec,
          last_updated_timestamp: now,
          state: { ready: "READY", config_update: "NOT_UPDATING", message: "" },
          resolved: want.versions,
          rejected: {},
        };
    await this.o.stores.endpoints.update(keys.endpoint(name), JSON.stringify(next), revision);
    this.firstWanted.delete(want.target.map((x) => x.group).join(","));
    // The old generation goes on the next pass, after routers have seen the flip.
    return keepOld;
  }

  private async failRollout(
    name: string,
    rec: EndpointRecord,
    revision: number,
    want: Wanted,
    reason: string,
  ) {
    const now = this.now();
    const ready = want.routes && rec.config ? "READY" : "NOT_READY";
    const next: EndpointRecord = want.pending
      ? {
          ...rec,
          pending_config: null,
          pending_config_version: null,
          pending_start_time: null,
          last_updated_timestamp: now,
          state: { ready, config_update: "UPDATE_FAILED", message: reason },
        }
      : {
          ...rec,
          last_updated_timestamp: now,
          state: { ready, config_update: "UPDATE_FAILED", message: reason },
          rejected: {
            ...rec.rejected,
            ...Object.fromEntries(
              want.target
                .filter((t) => !want.live.some((l) => l.group === t.group))
                .map((t) => [t.generation, reason]),
            ),
          },
        };
    await this.o.stores.endpoints.update(keys.endpoint(name), JSON.stringify(next), revision);
    this.o.log.warn({ endpoint: name, reason }, "rollout failed; old config keeps serving");
  }

  private async place(plans: EndpointPlan[], snap: ClusterSnapshot): Promise<void> {
    const templates = new Map<string, ServedTarget>();
    for (const p of plans) for (const t of p.targets) templates.set(t.group, t);
    const retiring = new Set(plans.flatMap((p) => p.retiring));
    const current: PlacedReplica[] = snap.assignments.map((a) => ({
      node_id: a.node_id,
      replica_id: a.replica_id,
      group: groupOf(a),
      threads: a.spec.threads,
    }));
    const plan = placeReplicas({
      groups: [...templates.values()].map((t) => ({ key: t.group, replicas: t.replicas })),
      nodes: snap.nodes.map((n) => ({ node_id: n.node_id, threads: n.threads })),
      current,
      retiring,
      newId: newReplicaId,
    });
    for (const r of plan.create) {
      const t = templates.get(r.group)!;
      const spec: ReplicaSpec = {
        replica_id: r.replica_id,
        endpoint: t.endpoint,
        served_model: t.served_model,
        subject: t.subject,
        model_name: t.model_name,
        model_version: t.model_version,
        threads: r.threads,
        max_batch_size: t.max_batch_size,
        max_delay_us: t.max_delay_us,
        max_queue: t.max_queue,
        generation: t.generation,
      };
      await this.o.stores.cluster.put(keys.assignment(r.node_id, r.replica_id), JSON.stringify(spec));
      this.o.log.info(
        {
          endpoint: t.endpoint,
          servedModel: t.served_model,
          replicaId: r.replica_id,
          node: r.node_id,
          threads: r.threads,
        },
        "replica assigned",
      );
    }
    for (const r of plan.remove) {
      await this.o.stores.cluster.delete(keys.assignment(r.node_id, r.replica_id));
      this.o.log.info({ replicaId: r.replica_id, node: r.node_id, group: r.group }, "replica unassigned");
    }
  }

  /** Routes of endpoints that no longer exist, statuses of replicas on dead nodes with no assignment. */
  private async collectGarbage(snap: ClusterSnapshot): Promise<void> {
    for (const endpoint of snap.routes.keys()) {
      if (!snap.records.has(endpoint)) await this.o.stores.cluster.delete(keys.routes(endpoint));
    }
    const liveNodes = new Set(snap.nodes.map((n) => n.node_id));
    const assigned = new Set(snap.assignments.map((a) => a.replica_id));
    for (const s of snap.statuses.values()) {
      if (!assigned.has(s.replica_id) && !liveNodes.has(s.node_id)) {
        await this.o.stores.cluster.delete(keys.replica(s.replica_id));
      }
    }
  }
}

interface Wanted {
  target: ServedTarget[];
  live: ServedTarget[];
  routes: EndpointRoutes | undefined;
  pending: boolean;
  versions: Record<string, number>;
  /** Set when the pending config cannot be resolved any more (a model or alias vanished). */
  failure?: string;
}

const groupOf = (a: Assignment) => groupKey(a.spec.endpoint, a.spec.served_model, a.spec.generation);

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function groupStatus(t: ServedTarget, mine: Assignment[], snap: ClusterSnapshot, want: number) {
  const replicas = mine.filter((a) => groupOf(a) === t.group);
  const sts = replicas.map((a) => snap.statuses.get(a.replica_id));
  const readyCount = sts.filter((s) => s?.state === "READY" && s.generation === t.generation).length;
  const failedStatus = sts.find((s) => s?.state === "FAILED");
  return {
    group: t.group,
    served: t.served_model,
    want,
    readyCount,
    ready: replicas.length >= want && readyCount === replicas.length,
    failed: failedStatus
      ? `served model '${t.served_model}': ${failedStatus.message || "replica failed"}`
      : undefined,
  };
}
