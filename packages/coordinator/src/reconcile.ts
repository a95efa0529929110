// The leader's reconcile pass: endpoint records → served targets (aliases resolved) → replica assignments
// → routes, with zero-downtime rollouts (new generation READY, then flip, then retire the old). The shell
// around pure policies (rollout.ts decides each endpoint's step, placement.ts where replicas run): every pass
// reads KV afresh, writes records with compare-and-set, and catches and logs each endpoint's step so one bad
// endpoint never stops the others. It keeps no state between passes, so a new leader continues any rollout.
import { randomBytes } from "node:crypto";
import { batchWorkers } from "@switchyard/autoscaler";
import {
  type BatchJob,
  type BatchWorkerSpec,
  type ClusterNames,
  type EndpointRecord,
  keys,
  type ReplicaSpec,
  routesCaptureOf,
  routesShadowOf,
  type StreamJob,
  type StreamScorerSpec,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { Logger } from "pino";
import { capReplicas, type PlacedReplica, placeReplicas, type ReplicaGroup } from "./placement.js";
import { ModelLookup, resolveVersions } from "./resolve.js";
import {
  decideRollout,
  groupOf,
  type Observed,
  type Resolution,
  type RolloutDecision,
  type Wanted,
  wantedConfig,
  wantedTargets,
} from "./rollout.js";
import {
  type ClusterSnapshot,
  cleanupEndpoint,
  readSnapshot,
  type StoredRecord,
  type Stores,
} from "./state.js";
import { type ServedTarget, scaledTarget } from "./targets.js";

/** Running batch jobs, whose workers are placed beside replicas (the thread budget is shared). */
export interface BatchWork {
  running(): Promise<BatchJob[]>;
  /** Shards of a running job still queued or running: its workers follow them. */
  shardsLeft(job: BatchJob): Promise<number>;
}

/** Running stream jobs, whose scorers are placed the same way. */
export interface StreamWork {
  running(): Promise<StreamJob[]>;
}

export interface ReconcilerOptions {
  names: ClusterNames;
  batch?: BatchWork;
  streams?: StreamWork;
  stores: Stores;
  registry: Registry;
  log: Logger;
  /** A new generation not READY within this is abandoned (UPDATE_FAILED). */
  rolloutTimeoutMs: number;
  /** The clock rollout deadlines are judged by (injected in tests). */
  now?: () => number;
  /** Scorers the autoscaler wants for a running stream job (undefined: none decided yet, so `parallelism`). */
  scorers?: (job: StreamJob) => number | undefined;
}

/** What one endpoint wants from placement this pass. */
interface EndpointPlan {
  endpoint: string;
  targets: ServedTarget[];
  /** Replicas kept untouched (old generation serving during a rollout, or an endpoint whose step failed). */
  retiring: string[];
}

const newReplicaId = () => `r${randomBytes(6).toString("hex")}`;
const batchGroup = (jobId: string) => `batch/${jobId}`;
const streamGroup = (name: string) => `stream/${name}`;
/** A job's process group; the same for an assignment as for the job (`<kind>/<job id>`). */
export type JobGroup = ReplicaGroup & ({ job: BatchJob } | { stream: StreamJob });

export class Reconciler {
  private readonly now: () => number;

  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? Date.now;
  }

  async pass(): Promise<void> {
    const snap = await readSnapshot(this.o.stores);
    const lookup = new ModelLookup(this.o.registry);
    const budget = snap.nodes.reduce((a, n) => a + n.threads, 0);
    const cluster: Omit<Observed, "routes"> = {
      assignments: snap.assignments,
      statuses: snap.statuses,
      liveNodes: new Set(snap.nodes.map((n) => n.node_id)),
    };

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
    let jobs: BatchJob[] = [];
    try {
      jobs = (await this.o.batch?.running()) ?? [];
    } catch (err) {
      this.o.log.error({ err }, "reconcile: reading batch jobs failed");
    }
    let streams: StreamJob[] = [];
    try {
      streams = (await this.o.streams?.running()) ?? [];
    } catch (err) {
      this.o.log.error({ err }, "reconcile: reading stream jobs failed");
    }
    const batchGroups: JobGroup[] = [
      ...(await Promise.all(
        jobs.map(async (j) => ({
          key: batchGroup(j.id),
          replicas: batchWorkers({
            asked: (j.request as { workers?: number }).workers,
            budget,
            shardsLeft: await this.shardsLeft(j),
          }),
          job: j,
        })),
      )),
      ...streams.map((s) => ({
        key: streamGroup(s.name),
        replicas: this.o.scorers?.(s) ?? (s.request as { parallelism?: number }).parallelism ?? 1,
        stream: s,
      })),
    ];
    allGroups.push(...batchGroups);
    const counts = capReplicas(allGroups, Math.max(budget, 1));

    // Phase 2: per endpoint, decide flip / fail / wait and write what the decision says.
    const plans: EndpointPlan[] = [];
    for (const [name, { stored, want }] of tentative) {
      try {
        const decision = decideRollout({
          record: stored.record,
          want,
          observed: { ...cluster, routes: snap.routes.get(name) },
          counts,
          now: this.now(),
          timeoutMs: this.o.rolloutTimeoutMs,
        });
        await this.perform(stored, decision);
        plans.push({ endpoint: name, targets: decision.targets, retiring: decision.retiring });
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
      await this.place(plans, batchGroups, snap);
    } catch (err) {
      this.o.log.error({ err }, "reconcile: placement failed");
    }
    try {
      await this.collectGarbage(snap);
    } catch (err) {
      this.o.log.error({ err }, "reconcile: garbage collection failed");
    }
  }

  /** The targets an endpoint wants now (its config resolved against the registry), and the live ones. */
  private async wanted(rec: EndpointRecord, snap: ClusterSnapshot, lookup: ModelLookup): Promise<Wanted> {
    let resolution: Resolution = { versions: {} };
    const config = wantedConfig(rec);
    if (config) {
      try {
        resolution = { versions: await resolveVersions(lookup, config) };
      } catch (err) {
        resolution = { error: err instanceof Error ? err.message : String(err) };
      }
    }
    const want = scaled(wantedTargets(this.o.names, rec, snap.routes.get(rec.name), resolution), snap.scales);
    want.capture = routesCaptureOf(this.o.names, rec.name, config?.auto_capture_config);
    want.shadow = routesShadowOf(config?.shadow_config);
    if ("error" in resolution && !want.pending) {
      // An alias or model that vanished from the registry.
      this.o.log.warn(
        { endpoint: rec.name, err: resolution.error },
        "cannot resolve config; keeping live routes",
      );
    }
    return want;
  }

  /** Writes what a rollout step decided: routes before the record, so READY never precedes the flip. */
  private async perform(stored: StoredRecord, d: RolloutDecision): Promise<void> {
    const endpoint = stored.record.name;
    if (d.step.kind === "flip") {
      const routes = d.step.routes;
      await this.o.stores.cluster.put(keys.routes(endpoint), JSON.stringify(routes));
      this.o.log.info(
        {
          endpoint,
          routes: routes.routes.map(
            (r) => `${r.served_model_name}=${r.model_version}:${r.traffic_percentage}%`,
          ),
        },
        "routes flipped",
      );
    }
    if (d.record) {
      await this.o.stores.endpoints.update(
        keys.endpoint(endpoint),
        JSON.stringify(d.record),
        stored.revision,
      );
    }
    if (d.step.kind === "fail") {
      this.o.log.warn({ endpoint, reason: d.step.reason }, "rollout failed; old config keeps serving");
    } else if (d.step.kind === "wait" && d.record?.alias_rollout) {
      this.o.log.info(
        { endpoint, generations: d.record.alias_rollout.generations, deadline: d.step.deadline },
        "alias rollout started",
      );
    }
  }

  private async place(plans: EndpointPlan[], batchGroups: JobGroup[], snap: ClusterSnapshot): Promise<void> {
    const jobs = new Map(batchGroups.map((g) => [g.key, g]));
    const templates = new Map<string, ServedTarget>();
    for (const p of plans) for (const t of p.targets) templates.set(t.group, t);
    const retiring = new Set(plans.flatMap((p) => p.retiring));
    const current: PlacedReplica[] = [
      ...snap.assignments.map((a) => ({
        node_id: a.node_id,
        replica_id: a.replica_id,
        group: groupOf(a),
        threads: a.spec.threads,
      })),
      ...snap.workers.map((w) => ({
        node_id: w.node_id,
        replica_id: w.worker_id,
        group: `${w.spec.kind}/${w.spec.job_id}`,
        threads: w.spec.threads,
      })),
    ];
    const plan = placeReplicas({
      groups: [
        ...[...templates.values()].map((t) => ({ key: t.group, replicas: t.replicas })),
        ...batchGroups.map((g) => ({ key: g.key, replicas: g.replicas })),
      ],
      nodes: snap.nodes.map((n) => ({ node_id: n.node_id, threads: n.threads })),
      current,
      retiring,
      newId: newReplicaId,
    });
    for (const r of plan.create) {
      const group = jobs.get(r.group);
      if (group && "stream" in group) {
        const spec: StreamScorerSpec = {
          kind: "stream",
          worker_id: r.replica_id,
          job_id: group.stream.name,
          threads: 1,
        };
        await this.o.stores.cluster.put(keys.assignment(r.node_id, r.replica_id), JSON.stringify(spec));
        this.o.log.info(
          { stream: spec.job_id, workerId: r.replica_id, node: r.node_id },
          "stream scorer assigned",
        );
        continue;
      }
      if (group) {
        const job = group.job;
        const spec: BatchWorkerSpec = {
          kind: "batch",
          worker_id: r.replica_id,
          job_id: job.id,
          model_name: job.model.name,
          model_version: job.model.version,
          threads: 1,
        };
        await this.o.stores.cluster.put(keys.assignment(r.node_id, r.replica_id), JSON.stringify(spec));
        this.o.log.info({ jobId: job.id, workerId: r.replica_id, node: r.node_id }, "batch worker assigned");
        continue;
      }
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

  /** Shards of a running job still to score, or all of them when they cannot be counted now. */
  private async shardsLeft(job: BatchJob): Promise<number> {
    try {
      return (await this.o.batch?.shardsLeft(job)) ?? job.shards;
    } catch (err) {
      this.o.log.warn({ err, jobId: job.id }, "reconcile: counting finished shards failed");
      return job.shards;
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

/**
 * The autoscaler's desired replicas applied to what an endpoint wants: the serving generations follow the
 * decision (down to zero), a generation being rolled out gets at least one.
 */
function scaled(want: Wanted, scales: ClusterSnapshot["scales"]): Wanted {
  const serving = new Set(want.live.map((t) => t.group));
  const apply = (t: ServedTarget) =>
    scaledTarget(t, scales.get(keys.scale(t.endpoint, t.served_model))?.desired, serving.has(t.group));
  return { ...want, target: want.target.map(apply), live: want.live.map(apply) };
}
