// The rollout policy alone (no NATS, the time passed in): an update that becomes ready and flips, one that
// times out into UPDATE_FAILED with the old config serving, an alias that moves again mid-rollout, a leader
// that takes over mid-rollout from the record alone, and a node lost while the new generation starts.
import {
  clusterNames,
  type EndpointRecord,
  EndpointRecord as EndpointRecordSchema,
  normalizeEndpointConfig,
  type ReplicaStatus,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { placeReplicas } from "../src/placement.js";
import {
  decideRollout,
  deploymentOf,
  groupOf,
  type Observed,
  type Resolution,
  type RolloutDecision,
  wantedTargets,
} from "../src/rollout.js";
import type { Assignment } from "../src/state.js";
import { routesOf, type ServedTarget, targetsOf } from "../src/targets.js";

const names = clusterNames("t");
const TIMEOUT = 60_000;
const T0 = 1_700_000_000_000;

const configOf = (version: string) =>
  normalizeEndpointConfig({
    served_entities: [{ name: "champ", entity_name: "fraud", entity_version: version }],
  }).config!;
const targetOf = (version: string, resolved: number) =>
  targetsOf(names, "ep", configOf(version), { champ: resolved })[0]!;

/** An endpoint serving `version` (resolved to `resolved`) since `since`, nothing pending. */
function serving(version: string, resolved: number, since = T0 - 600_000): EndpointRecord {
  return {
    name: "ep",
    id: "id1",
    creator: "test",
    creation_timestamp: since,
    last_updated_timestamp: since,
    extra: {},
    config: configOf(version),
    config_version: 1,
    pending_config: null,
    pending_config_version: null,
    pending_start_time: null,
    state: { ready: "READY", config_update: "NOT_UPDATING", message: "" },
    resolved: { champ: resolved },
    rejected: {},
    deleted: false,
  };
}

/** The same endpoint after the API accepted an update to `version` at `at`. */
const updating = (rec: EndpointRecord, version: string, at: number): EndpointRecord => ({
  ...rec,
  last_updated_timestamp: at,
  pending_config: configOf(version),
  pending_config_version: rec.config_version + 1,
  pending_start_time: at,
  state: { ...rec.state, config_update: "IN_PROGRESS", message: "" },
});

interface Replica {
  id: string;
  node: string;
  t: ServedTarget;
  /** Its last reported state, if it reported one. */
  state?: ReplicaStatus["state"];
  message?: string;
}

/** What is observed: these replicas, live routes serving `live`, and the nodes with a heartbeat. */
function observe(live: ServedTarget[], replicas: Replica[], liveNodes = ["n1", "n2"]): Observed {
  const assignments: Assignment[] = replicas.map((r) => ({
    node_id: r.node,
    replica_id: r.id,
    spec: {
      replica_id: r.id,
      endpoint: r.t.endpoint,
      served_model: r.t.served_model,
      subject: r.t.subject,
      model_name: r.t.model_name,
      model_version: r.t.model_version,
      threads: 1,
      max_batch_size: r.t.max_batch_size,
      max_delay_us: r.t.max_delay_us,
      max_queue: r.t.max_queue,
      generation: r.t.generation,
    },
  }));
  const statuses = new Map<string, ReplicaStatus>();
  for (const r of replicas) {
    if (!r.state) continue;
    statuses.set(r.id, {
      replica_id: r.id,
      node_id: r.node,
      endpoint: r.t.endpoint,
      served_model: r.t.served_model,
      generation: r.t.generation,
      pid: 100,
      state: r.state,
      message: r.message ?? "",
      restarts: 0,
      updated_at: T0,
    });
  }
  return {
    routes: live.length ? routesOf("ep", 1, live, T0 - 600_000) : undefined,
    assignments,
    statuses,
    liveNodes: new Set(liveNodes),
  };
}

/** One pass of the policy, as the reconcile shell runs it (no budget cap: counts are the wanted replicas). */
function decide(record: EndpointRecord, versions: Resolution, observed: Observed, now: number) {
  const want = wantedTargets(names, record, observed.routes, versions);
  const counts = new Map(want.target.map((t) => [t.group, t.replicas]));
  return decideRollout({ record, want, observed, counts, now, timeoutMs: TIMEOUT });
}

/** The record as a new leader reads it back from KV. */
const fromKv = (d: RolloutDecision) => EndpointRecordSchema.parse(JSON.parse(JSON.stringify(d.record)));

/** What placement does with a decision: the replica ids it removes. */
function removed(d: RolloutDecision, observed: Observed): string[] {
  const plan = placeReplicas({
    groups: d.targets.map((t) => ({ key: t.group, replicas: t.replicas })),
    nodes: [...observed.liveNodes].map((node_id) => ({ node_id, threads: 4 })),
    current: observed.assignments.map((a) => ({
      node_id: a.node_id,
      replica_id: a.replica_id,
      group: groupOf(a),
      threads: 1,
    })),
    retiring: new Set(d.retiring),
    newId: () => "fresh",
  });
  return plan.remove.map((r) => r.replica_id);
}

const v1 = targetOf("1", 1);
const v2 = targetOf("2", 2);
const old: Replica = { id: "r-old", node: "n1", t: v1, state: "READY" };

describe("rollout of an update", () => {
  it("waits while the new generation starts, flips once it is READY, then retires the old one", () => {
    const rec = updating(serving("1", 1), "2", T0);
    const versions = { versions: { champ: 2 } };

    const starting = observe([v1], [old, { id: "r-new", node: "n2", t: v2, state: "STARTING" }]);
    const wait = decide(rec, versions, starting, T0 + 5_000);
    expect(wait).toEqual({
      step: { kind: "wait", started: T0, deadline: T0 + TIMEOUT },
      targets: [v2],
      retiring: ["r-old"],
    });
    expect(removed(wait, starting)).toEqual([]);

    const ready = observe([v1], [old, { id: "r-new", node: "n2", t: v2, state: "READY" }]);
    const flip = decide(rec, versions, ready, T0 + 8_000);
    expect(flip.step).toEqual({ kind: "flip", routes: routesOf("ep", 2, [v2], T0 + 8_000) });
    expect(flip.record).toEqual({
      ...rec,
      config: configOf("2"),
      config_version: 2,
      pending_config: null,
      pending_config_version: null,
      pending_start_time: null,
      last_updated_timestamp: T0 + 8_000,
      state: { ready: "READY", config_update: "NOT_UPDATING", message: "" },
      resolved: { champ: 2 },
      rejected: {},
    });
    // The old replica serves until routers have seen the flip…
    expect(flip.retiring).toEqual(["r-old"]);
    expect(removed(flip, ready)).toEqual([]);

    // …and goes on the next pass.
    const flipped = { ...ready, routes: flip.step.kind === "flip" ? flip.step.routes : undefined };
    const steady = decide(flip.record!, versions, flipped, T0 + 9_000);
    expect(steady).toEqual({ step: { kind: "steady" }, targets: [v2], retiring: [] });
    expect(removed(steady, flipped)).toEqual(["r-old"]);
  });

  it("fails at the deadline with UPDATE_FAILED, the old config serving and the new replicas removed", () => {
    const rec = updating(serving("1", 1), "2", T0);
    const versions = { versions: { champ: 2 } };
    const observed = observe([v1], [old, { id: "r-new", node: "n2", t: v2, state: "STARTING" }]);

    expect(decide(rec, versions, observed, T0 + TIMEOUT).step).toEqual({
      kind: "wait",
      started: T0,
      deadline: T0 + TIMEOUT,
    });
    const failed = decide(rec, versions, observed, T0 + TIMEOUT + 1);
    const reason = "replicas not ready within 60 s (champ 0/1 ready)";
    expect(failed).toEqual({
      step: { kind: "fail", reason },
      record: {
        ...rec,
        config: configOf("1"),
        config_version: 1,
        pending_config: null,
        pending_config_version: null,
        pending_start_time: null,
        last_updated_timestamp: T0 + TIMEOUT + 1,
        state: { ready: "READY", config_update: "UPDATE_FAILED", message: reason },
      },
      targets: [v1],
      retiring: [],
    });
    expect(removed(failed, observed)).toEqual(["r-new"]);
  });

  it("fails at once, with the replica's reason, when a replica of the new generation FAILED", () => {
    const rec = updating(serving("1", 1), "2", T0);
    const observed = observe(
      [v1],
      [old, { id: "r-new", node: "n2", t: v2, state: "FAILED", message: "model file is corrupted" }],
    );
    const failed = decide(rec, { versions: { champ: 2 } }, observed, T0 + 1_000);
    expect(failed.step).toEqual({ kind: "fail", reason: "served model 'champ': model file is corrupted" });
    expect(failed.record?.state).toEqual({
      ready: "READY",
      config_update: "UPDATE_FAILED",
      message: "served model 'champ': model file is corrupted",
    });
    expect(failed.targets).toEqual([v1]);
  });
});

describe("rollout of an alias that moved", () => {
  const v3 = targetOf("@champion", 3);
  const live = targetOf("@champion", 1);
  const oldLive: Replica = { id: "r-old", node: "n1", t: live, state: "READY" };

  it("restarts the deadline when the alias moves again mid-rollout, and flips to where it points now", () => {
    const rec = serving("@champion", 1);
    const to2 = targetOf("@champion", 2);
    const first = decide(rec, { versions: { champ: 2 } }, observe([live], [oldLive]), T0);
    expect(first).toEqual({
      step: { kind: "wait", started: T0, deadline: T0 + TIMEOUT },
      record: { ...rec, alias_rollout: { generations: { champ: to2.generation }, start_time: T0 } },
      targets: [to2],
      retiring: ["r-old"],
    });

    const at = T0 + 30_000;
    const starting2: Replica = { id: "r-2", node: "n2", t: to2, state: "STARTING" };
    const moved = decide(
      fromKv(first),
      { versions: { champ: 3 } },
      observe([live], [oldLive, starting2]),
      at,
    );
    expect(moved).toEqual({
      step: { kind: "wait", started: at, deadline: at + TIMEOUT },
      record: { ...rec, alias_rollout: { generations: { champ: v3.generation }, start_time: at } },
      targets: [v3],
      retiring: ["r-old"],
    });
    // The generation the alias left goes; the live one keeps serving.
    expect(removed(moved, observe([live], [oldLive, starting2]))).toEqual(["r-2"]);

    // Past the first move's deadline the rollout to v3 still waits (its own deadline counts).
    const starting3 = observe([live], [oldLive, { id: "r-3", node: "n2", t: v3, state: "STARTING" }]);
    expect(decide(fromKv(moved), { versions: { champ: 3 } }, starting3, T0 + TIMEOUT + 1)).toEqual({
      step: { kind: "wait", started: at, deadline: at + TIMEOUT },
      targets: [v3],
      retiring: ["r-old"],
    });

    const ready3 = observe([live], [oldLive, { id: "r-3", node: "n2", t: v3, state: "READY" }]);
    const flip = decide(fromKv(moved), { versions: { champ: 3 } }, ready3, T0 + 70_000);
    expect(flip).toEqual({
      step: { kind: "flip", routes: routesOf("ep", 1, [v3], T0 + 70_000) },
      record: {
        ...rec,
        last_updated_timestamp: T0 + 70_000,
        resolved: { champ: 3 },
      },
      targets: [v3],
      retiring: ["r-old"],
    });
  });

  it("keeps the deadline of the record when a new leader takes over mid-rollout", () => {
    const to2 = targetOf("@champion", 2);
    const started = decide(
      serving("@champion", 1),
      { versions: { champ: 2 } },
      observe([live], [oldLive]),
      T0,
    );
    // The old leader is gone; the new one has only what it reads from KV.
    const persisted = fromKv(started);
    const observed = observe([live], [oldLive, { id: "r-2", node: "n2", t: to2, state: "STARTING" }]);

    const takeover = T0 + 50_000;
    expect(decide(persisted, { versions: { champ: 2 } }, observed, takeover)).toEqual({
      step: { kind: "wait", started: T0, deadline: T0 + TIMEOUT },
      targets: [to2],
      retiring: ["r-old"],
    });

    const failed = decide(persisted, { versions: { champ: 2 } }, observed, T0 + TIMEOUT + 1);
    const reason = "replicas not ready within 60 s (champ 0/1 ready)";
    expect(failed).toEqual({
      step: { kind: "fail", reason },
      record: {
        ...serving("@champion", 1),
        last_updated_timestamp: T0 + TIMEOUT + 1,
        state: { ready: "READY", config_update: "UPDATE_FAILED", message: reason },
        rejected: { [to2.generation]: reason },
      },
      targets: [live],
      retiring: [],
    });
    // A rejected generation is not retried: the live one serves on, with nothing to write.
    expect(decide(fromKv(failed), { versions: { champ: 2 } }, observed, T0 + TIMEOUT + 2)).toEqual({
      step: { kind: "steady" },
      targets: [live],
      retiring: [],
    });
  });

  it("forgets the rollout when the alias moves back before it ends", () => {
    const started = decide(
      serving("@champion", 1),
      { versions: { champ: 2 } },
      observe([live], [oldLive]),
      T0,
    );
    const back = decide(fromKv(started), { versions: { champ: 1 } }, observe([live], [oldLive]), T0 + 1_000);
    expect(back).toEqual({
      step: { kind: "steady" },
      record: serving("@champion", 1),
      targets: [live],
      retiring: [],
    });
  });
});

describe("rollout across a node loss", () => {
  it("does not flip onto replicas of a lost node, and the replacements keep the original deadline", () => {
    const rec = updating(serving("1", 1), "2", T0);
    const versions = { versions: { champ: 2 } };
    // n2 died right after its replica reported READY: its status is stale.
    const lost = observe([v1], [old, { id: "r-new", node: "n2", t: v2, state: "READY" }], ["n1"]);
    expect(deploymentOf(lost, v2)).toEqual({
      deployment: "DEPLOYMENT_CREATING",
      message: "0/1 replicas ready",
      ready: 0,
      total: 1,
    });
    const wait = decide(rec, versions, lost, T0 + 20_000);
    expect(wait).toEqual({
      step: { kind: "wait", started: T0, deadline: T0 + TIMEOUT },
      targets: [v2],
      retiring: ["r-old"],
    });
    // Placement moves the lost replica to the surviving node.
    expect(removed(wait, lost)).toEqual(["r-new"]);

    const moved = observe([v1], [old, { id: "r-moved", node: "n1", t: v2, state: "STARTING" }], ["n1"]);
    expect(decide(rec, versions, moved, T0 + 40_000).step).toEqual({
      kind: "wait",
      started: T0,
      deadline: T0 + TIMEOUT,
    });
    const ready = observe([v1], [old, { id: "r-moved", node: "n1", t: v2, state: "READY" }], ["n1"]);
    expect(decide(rec, versions, ready, T0 + 45_000).step).toEqual({
      kind: "flip",
      routes: routesOf("ep", 2, [v2], T0 + 45_000),
    });
  });
});

describe("shadow traffic", () => {
  it("flips the routes when only the shadow settings change, then holds steady", () => {
    const rec = serving("1", 1);
    const observed = observe([v1], [old]);
    const want = wantedTargets(names, rec, observed.routes, { versions: { champ: 1 } });
    const pass = (w: typeof want, o: Observed) =>
      decideRollout({
        record: rec,
        want: w,
        observed: o,
        counts: new Map([[v1.group, v1.replicas]]),
        now: T0,
        timeoutMs: TIMEOUT,
      });
    expect(pass(want, observed).step).toEqual({ kind: "steady" });
    const shadow = { routes: [{ served_model_name: "champ", mirror_percentage: 12.5 }], max_in_flight: 8 };
    const flip = pass({ ...want, shadow }, observed);
    expect(flip.step).toEqual({ kind: "flip", routes: { ...routesOf("ep", 1, [v1], T0), shadow } });
    if (flip.step.kind !== "flip") return;
    expect(pass({ ...want, shadow }, { ...observed, routes: flip.step.routes }).step).toEqual({
      kind: "steady",
    });
    // Turned off again (`routesShadowOf` gives undefined for none, or every route at 0 %): routes flip back.
    expect(pass(want, { ...observed, routes: flip.step.routes }).step.kind).toBe("flip");
  });
});
