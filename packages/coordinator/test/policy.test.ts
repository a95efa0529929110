// Pure policies of the coordinator: placement (budget cap, spreading, threads, moving a dead node's
// replicas), generations (change only when what a replica serves changes), and the Databricks GET body.
import {
  clusterNames,
  type EndpointRecord,
  normalizeEndpointConfig,
  REPLICA_DEFAULTS,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import {
  capReplicas,
  endpointView,
  generationOf,
  type PlacedReplica,
  placeReplicas,
  scaledTarget,
  targetsOf,
} from "../src/mod.js";

function ids() {
  let n = 0;
  return () => `r${++n}`;
}

const perNode = (rs: PlacedReplica[]) => {
  const m: Record<string, number> = {};
  for (const r of rs) m[r.node_id] = (m[r.node_id] ?? 0) + 1;
  return m;
};

describe("placement", () => {
  it("caps total replicas at the live nodes' thread budget, largest groups first, never below one unless zero is wanted", () => {
    const counts = capReplicas(
      [
        { key: "a", replicas: 4 },
        { key: "b", replicas: 2 },
        { key: "c", replicas: 1 },
      ],
      4,
    );
    expect(Object.fromEntries(counts)).toEqual({ a: 2, b: 1, c: 1 });
    expect(
      Object.fromEntries(
        capReplicas(
          [
            { key: "a", replicas: 4 },
            { key: "b", replicas: 4 },
          ],
          1,
        ),
      ),
    ).toEqual({
      a: 1,
      b: 1,
    });
    // A group scaled to zero gets none; the others still share the budget.
    expect(
      Object.fromEntries(
        capReplicas(
          [
            { key: "a", replicas: 0 },
            { key: "b", replicas: 3 },
          ],
          2,
        ),
      ),
    ).toEqual({ a: 0, b: 2 });
    const plan = placeReplicas({
      groups: [{ key: "e/s/g", replicas: 4 }],
      nodes: [{ node_id: "n1", threads: 3 }],
      current: [],
      retiring: new Set(),
      newId: ids(),
    });
    expect(plan.create).toHaveLength(3);
    expect(plan.create.every((r) => r.threads === 1)).toBe(true);
  });

  it("spreads a group across nodes and gives each replica floor(node threads / replicas on the node)", () => {
    const plan = placeReplicas({
      groups: [
        { key: "e/a/g1", replicas: 2 },
        { key: "e/b/g2", replicas: 2 },
      ],
      nodes: [
        { node_id: "n1", threads: 8 },
        { node_id: "n2", threads: 4 },
      ],
      current: [],
      retiring: new Set(),
      newId: ids(),
    });
    expect(plan.create).toHaveLength(4);
    for (const g of ["e/a/g1", "e/b/g2"]) {
      expect(Object.keys(perNode(plan.create.filter((r) => r.group === g))).sort()).toEqual(["n1", "n2"]);
    }
    expect(plan.create.filter((r) => r.node_id === "n1").map((r) => r.threads)).toEqual([4, 4]);
    expect(plan.create.filter((r) => r.node_id === "n2").map((r) => r.threads)).toEqual([2, 2]);
  });

  it("keeps placed replicas, removes extras and those of unwanted groups, and ignores retiring ones", () => {
    const current: PlacedReplica[] = [
      { node_id: "n1", replica_id: "x1", group: "e/a/g1", threads: 2 },
      { node_id: "n1", replica_id: "x2", group: "e/a/g1", threads: 2 },
      { node_id: "n2", replica_id: "x3", group: "e/a/g1", threads: 2 },
      { node_id: "n2", replica_id: "old", group: "e/a/g0", threads: 4 },
      { node_id: "n2", replica_id: "gone", group: "e/z/g9", threads: 4 },
    ];
    const plan = placeReplicas({
      groups: [{ key: "e/a/g1", replicas: 2 }],
      nodes: [
        { node_id: "n1", threads: 4 },
        { node_id: "n2", threads: 4 },
      ],
      current,
      retiring: new Set(["old"]),
      newId: ids(),
    });
    expect(plan.create).toEqual([]);
    expect(plan.remove.map((r) => r.replica_id).sort()).toEqual(["gone", "x1"]);
    expect(plan.keep.map((r) => r.replica_id).sort()).toEqual(["x2", "x3"]);
  });

  it("moves a dead node's replicas to live nodes under fresh ids", () => {
    const current: PlacedReplica[] = [
      { node_id: "dead", replica_id: "d1", group: "e/a/g1", threads: 4 },
      { node_id: "live", replica_id: "l1", group: "e/b/g2", threads: 4 },
    ];
    const plan = placeReplicas({
      groups: [
        { key: "e/a/g1", replicas: 1 },
        { key: "e/b/g2", replicas: 1 },
      ],
      nodes: [{ node_id: "live", threads: 4 }],
      current,
      retiring: new Set(),
      newId: ids(),
    });
    expect(plan.remove.map((r) => r.replica_id)).toEqual(["d1"]);
    expect(plan.create).toEqual([{ node_id: "live", replica_id: "r1", group: "e/a/g1", threads: 2 }]);
    expect(plan.keep.map((r) => r.replica_id)).toEqual(["l1"]);
  });
});

describe("generations and replica counts", () => {
  const base = {
    model_name: "m",
    model_version: 1,
    max_batch_size: 32,
    max_delay_us: REPLICA_DEFAULTS.max_delay_us,
    max_queue: 256,
  };
  it("changes with the version or batching settings, and only then", () => {
    const g = generationOf(base);
    expect(generationOf({ ...base })).toBe(g);
    expect(generationOf({ ...base, model_version: 2 })).not.toBe(g);
    expect(generationOf({ ...base, max_batch_size: 8 })).not.toBe(g);
    expect(generationOf({ ...base, max_delay_us: 250 })).not.toBe(g);
    expect(generationOf({ ...base, max_queue: 10 })).not.toBe(g);
    expect(generationOf({ ...base, model_name: "n" })).not.toBe(g);
    expect(g).toMatch(/^[0-9a-f]{12}$/);
  });

  it("ignores workload size and traffic: scaling or re-splitting never restarts replicas", () => {
    const names = clusterNames("tgen");
    const cfg = (size: string, pct: number[]) =>
      normalizeEndpointConfig({
        served_entities: [
          { name: "a", entity_name: "m", entity_version: "1", workload_size: size },
          { name: "b", entity_name: "m", entity_version: "@champion" },
        ],
        traffic_config: {
          routes: [
            { served_model_name: "a", traffic_percentage: pct[0] },
            { served_model_name: "b", traffic_percentage: pct[1] },
          ],
        },
      }).config!;
    const t1 = targetsOf(names, "ep", cfg("Small", [80, 20]), { a: 1, b: 3 });
    const t2 = targetsOf(names, "ep", cfg("Large", [50, 50]), { a: 1, b: 3 });
    expect(t1.map((t) => t.subject)).toEqual(t2.map((t) => t.subject));
    expect(t1[0]!.subject).toBe(`tgen.rt.ep.a.${generationOf(base)}`);
    expect([t1[0]!.replicas, t2[0]!.replicas]).toEqual([1, 4]);
    expect(t1[1]!.alias).toBe("champion");
    const t3 = targetsOf(names, "ep", cfg("Small", [80, 20]), { a: 1, b: 4 });
    expect(t3[1]!.generation).not.toBe(t1[1]!.generation);
    expect(t3[0]!.generation).toBe(t1[0]!.generation);
  });

  it("starts a served model at its minimum replicas, one when it may scale to zero, then follows the autoscaler", () => {
    const names = clusterNames("tgen");
    const served = (extra: Record<string, unknown>) =>
      normalizeEndpointConfig({ served_entities: [{ entity_name: "m", entity_version: "1", ...extra }] })
        .config!;
    const [medium] = targetsOf(names, "ep", served({ workload_size: "Medium" }), { "m-1": 1 });
    expect(medium!.replicas).toBe(2);
    expect(medium!.bounds).toMatchObject({ min: 2, max: 4 });
    const [zero] = targetsOf(names, "ep", served({ scale_to_zero_enabled: true }), { "m-1": 1 });
    expect([zero!.replicas, zero!.bounds.min]).toEqual([1, 0]);
    const [pc] = targetsOf(
      names,
      "ep",
      served({ min_provisioned_concurrency: 0, max_provisioned_concurrency: 20 }),
      { "m-1": 1 },
    );
    expect(pc!.bounds).toMatchObject({ min: 0, max: 5 });
    // The autoscaler's decision, held within the bounds; a generation not serving yet gets one to become READY.
    expect(scaledTarget(medium!, 3, true).replicas).toBe(3);
    expect(scaledTarget(medium!, 9, true).replicas).toBe(4);
    expect(scaledTarget(medium!, 0, true).replicas).toBe(2);
    expect(scaledTarget(zero!, 0, true).replicas).toBe(0);
    expect(scaledTarget(zero!, 0, false).replicas).toBe(1);
    expect(scaledTarget(zero!, undefined, true).replicas).toBe(1);
  });
});

describe("the Databricks GET body", () => {
  const config = normalizeEndpointConfig({
    served_entities: [
      {
        name: "champ",
        entity_name: "fraud",
        entity_version: "@champion",
        workload_size: "Small",
        scale_to_zero_enabled: false,
      },
      {
        name: "chall",
        entity_name: "fraud",
        entity_version: "2",
        workload_size: "Medium",
        scale_to_zero_enabled: true,
      },
    ],
    traffic_config: {
      routes: [
        { served_model_name: "champ", traffic_percentage: 90 },
        { served_model_name: "chall", traffic_percentage: 10 },
      ],
    },
  }).config!;
  const rec: EndpointRecord = {
    name: "fraud-ep",
    id: "abc",
    creator: "alice",
    creation_timestamp: 1000,
    last_updated_timestamp: 2000,
    extra: { tags: [{ key: "team", value: "risk" }] },
    config,
    config_version: 1,
    pending_config: { ...config, routes: [{ served_model_name: "champ", traffic_percentage: 100 }] },
    pending_config_version: 2,
    pending_start_time: 1500,
    state: { ready: "READY", config_update: "IN_PROGRESS", message: "" },
    resolved: { champ: 3, chall: 2 },
    rejected: {},
    deleted: false,
  };

  it("shows each served model's replicas and the autoscaler's last decision", () => {
    const decision = {
      desired: 0,
      wanted: 0,
      reason: "no requests for 30 min: scaled to zero; the next request starts a replica",
      limited_by: null,
      at: 5000,
      last_request_at: 3000,
    };
    const view = endpointView(rec, {
      config: {
        champ: {
          version: 3,
          deployment: "DEPLOYMENT_READY",
          message: "",
          replicas: { ready: 1, desired: 1 },
        },
        chall: {
          version: 2,
          deployment: "DEPLOYMENT_READY",
          message: "scaled to zero: the next request starts a replica",
          replicas: { ready: 0, desired: 0 },
          autoscaler: decision,
        },
      },
      pending: {},
    });
    const [champ, chall] = (view.config as { served_entities: Record<string, unknown>[] }).served_entities;
    expect(champ!.replicas).toEqual({ ready: 1, desired: 1 });
    expect(champ!.autoscaler).toBeUndefined();
    expect(chall!.replicas).toEqual({ ready: 0, desired: 0 });
    expect(chall!.state).toEqual({
      deployment: "DEPLOYMENT_READY",
      deployment_state_message: "scaled to zero: the next request starts a replica",
    });
    // The decision as people read it; when the last request was seen stays internal.
    expect(chall!.autoscaler).toEqual({
      desired: 0,
      wanted: 0,
      reason: "no requests for 30 min: scaled to zero; the next request starts a replica",
      limited_by: null,
      at: 5000,
    });
  });

  it("reports state, config with served entities (alias followed), pending_config and tags", () => {
    const view = endpointView(rec, {
      config: {
        champ: { version: 3, deployment: "DEPLOYMENT_READY", message: "" },
        chall: { version: 2, deployment: "DEPLOYMENT_READY", message: "" },
      },
      pending: { champ: { version: 3, deployment: "DEPLOYMENT_CREATING", message: "0/1 replicas ready" } },
    });
    expect(view).toEqual({
      name: "fraud-ep",
      id: "abc",
      creator: "alice",
      creation_timestamp: 1000,
      last_updated_timestamp: 2000,
      state: { ready: "READY", config_update: "IN_PROGRESS" },
      config: {
        served_entities: [
          {
            name: "champ",
            entity_name: "fraud",
            entity_version: "3",
            entity_alias: "champion",
            workload_size: "Small",
            scale_to_zero_enabled: false,
            state: { deployment: "DEPLOYMENT_READY", deployment_state_message: "" },
            creator: "alice",
            creation_timestamp: 1000,
          },
          {
            name: "chall",
            entity_name: "fraud",
            entity_version: "2",
            workload_size: "Medium",
            scale_to_zero_enabled: true,
            state: { deployment: "DEPLOYMENT_READY", deployment_state_message: "" },
            creator: "alice",
            creation_timestamp: 1000,
          },
        ],
        traffic_config: {
          routes: [
            { served_model_name: "champ", traffic_percentage: 90 },
            { served_model_name: "chall", traffic_percentage: 10 },
          ],
        },
        config_version: 1,
      },
      pending_config: expect.objectContaining({
        config_version: 2,
        start_time: 1500,
        traffic_config: { routes: [{ served_model_name: "champ", traffic_percentage: 100 }] },
      }),
      tags: [{ key: "team", value: "risk" }],
      permission_level: "CAN_MANAGE",
    });
    const pending = view.pending_config as { served_entities: Array<{ state: unknown }> };
    expect(pending.served_entities[0]!.state).toEqual({
      deployment: "DEPLOYMENT_CREATING",
      deployment_state_message: "0/1 replicas ready",
    });
  });

  it("answers in the served_models form when the config came in it, with the failure message after a failed update", () => {
    const legacy = normalizeEndpointConfig({
      served_models: [
        { model_name: "fraud", model_version: "1", workload_size: "Small", scale_to_zero_enabled: false },
      ],
    }).config!;
    const view = endpointView(
      {
        ...rec,
        config: legacy,
        pending_config: null,
        pending_config_version: null,
        state: { ready: "READY", config_update: "UPDATE_FAILED", message: "model could not be loaded" },
      },
      { config: {}, pending: {} },
    );
    expect(view.state).toEqual({
      ready: "READY",
      config_update: "UPDATE_FAILED",
      message: "model could not be loaded",
    });
    expect(view.pending_config).toBeUndefined();
    const cfg = view.config as { served_models: Array<Record<string, unknown>> };
    expect(cfg.served_models[0]).toMatchObject({ name: "fraud-1", model_name: "fraud", model_version: "1" });
  });
});
