// The canary loop against a real nats-server, fed router stats this test publishes and labelled accuracy from an
// AccuracySource it controls: a stage is judged on the traffic after its mark (never what routers counted
// before), holds until enough labels arrived, advances when the challenger is as accurate (routes move), and a
// less accurate challenger is rolled back with the accuracy guard and its value recorded.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, readValue } from "@switchyard/nats";
import {
  CanaryRollout,
  type ClusterNames,
  clusterNames,
  type EndpointRecord,
  EndpointRecord as EndpointRecordSchema,
  keys,
  LATENCY_BUCKETS_US,
  normalizeEndpointConfig,
  type RouterStatsSnapshot,
  StoredCanary,
  type TimeSummary,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { eventually } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startCanary } from "../src/canary.js";
import { type AccuracySource, CanaryLoop } from "../src/canary-loop.js";
import { openStores, type Stores } from "../src/state.js";

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "canary-loop-test" });
});
afterAll(async () => {
  await nc?.close();
});

/** `n` requests all in the 1–2.5 ms bucket: champion and challenger equally fast. */
function latency(n: number): TimeSummary {
  const counts = new Array<number>(LATENCY_BUCKETS_US.length + 1).fill(0);
  counts[5] = n;
  return {
    count: n,
    sum_us: n * 2_000,
    le_us: [...LATENCY_BUCKETS_US, null],
    counts,
    p50_us: 0,
    p99_us: 0,
    max_us: 0,
  };
}

/** `n` requests in the 2.5–5 s bucket: requests that waited for a replica to start. */
function coldStart(n: number): TimeSummary {
  const counts = new Array<number>(LATENCY_BUCKETS_US.length + 1).fill(0);
  counts[15] = n;
  return { ...latency(0), count: n, sum_us: n * 4_000_000, counts };
}

const plus = (x: TimeSummary, y: TimeSummary): TimeSummary => ({
  ...x,
  count: x.count + y.count,
  sum_us: x.sum_us + y.sum_us,
  counts: x.counts.map((n, i) => n + y.counts[i]!),
});

/** One router's cumulative counts for the endpoint's two served models; `bHeld` of b's waited for a replica. */
function publishRouter(names: ClusterNames, uptimeMs: number, a: number, b: number, bHeld = 0): void {
  const served = (n: number) => ({ requests: n, errors: {}, total_us: latency(n), held: 0, held_total: 0 });
  const challenger = {
    ...served(b),
    total_us: plus(latency(b - bHeld), coldStart(bHeld)),
    held_total: bHeld,
    held_us: coldStart(bHeld),
  };
  const s: RouterStatsSnapshot = {
    router_id: "r1",
    role: "bridge",
    host: "test",
    pid: 1,
    at: Date.now(),
    uptime_ms: uptimeMs,
    endpoints: { ep: { a: served(a), b: challenger } },
  };
  nc.publish(names.subjects.routerStats("r1"), JSON.stringify(s));
}

/** Labels as the test says: per served model, how many and how accurate; every call is recorded. */
class Labels implements AccuracySource {
  readonly calls: [string, string, number][] = [];
  constructor(public by: Record<string, { labelled: number; accuracy: number }>) {}
  since(endpoint: string, served: string, sinceMs: number) {
    this.calls.push([endpoint, served, sinceMs]);
    return this.by[served];
  }
}

async function setup(stages: number[], labels: Labels) {
  const names = clusterNames(`cl${randomBytes(4).toString("hex")}`);
  const stores = await openStores(nc, names);
  const registry = await Registry.open(nc, { cluster: names.cluster });
  const normalized = normalizeEndpointConfig({
    served_entities: [
      { name: "a", entity_name: "m", entity_version: "1" },
      { name: "b", entity_name: "m", entity_version: "2" },
    ],
    traffic_config: { routes: [{ served_model_name: "a", traffic_percentage: 100 }] },
  });
  const now = Date.now();
  const record: EndpointRecord = EndpointRecordSchema.parse({
    name: "ep",
    id: "e1",
    creator: "test",
    creation_timestamp: now,
    last_updated_timestamp: now,
    config: normalized.config,
    config_version: 1,
    pending_config: null,
    pending_config_version: null,
    pending_start_time: null,
    state: { ready: "READY", config_update: "NOT_UPDATING" },
    resolved: { a: 1, b: 2 },
  });
  await stores.endpoints.put(keys.endpoint("ep"), JSON.stringify(record));
  const spec = CanaryRollout.parse({
    champion: "a",
    challenger: "b",
    stages,
    hold: { duration: 0, min_requests: 50 },
    guards: { min_accuracy: { ratio: 0.95, min_labels: 50 } },
  });
  const { state } = startCanary(spec, now);
  await stores.cluster.put(keys.canary("ep"), JSON.stringify({ spec, state, readings: null }));
  const loop = new CanaryLoop({
    nc,
    names,
    stores,
    registry,
    log: pino({ level: process.env.SY_TEST_LOG ?? "silent" }),
    isLeader: () => true,
    intervalMs: 100,
    warmupMs: 300,
    accuracy: labels,
  });
  loop.start();
  // Counts from before the canary, heard within the warm-up: the stage's mark must leave them out.
  publishRouter(names, 60_000, 1_000, 0);
  return { names, stores, loop, stageStartedAt: state.stage_started_at };
}

const canaryOf = async (stores: Stores) =>
  (await readValue(stores.cluster, keys.canary("ep"), StoredCanary, "canary"))!.value;
const routesOf = async (stores: Stores) =>
  (await readValue(stores.endpoints, keys.endpoint("ep"), EndpointRecordSchema, "endpoint"))!.value.config!
    .routes;

describe("canary loop", () => {
  it("holds for labels, then advances a challenger as accurate as the champion", async () => {
    const labels = new Labels({ a: { labelled: 400, accuracy: 0.9 }, b: { labelled: 10, accuracy: 0.9 } });
    const { names, stores, loop, stageStartedAt } = await setup([5, 50, 100], labels);
    try {
      // The loop marked the stage: the router's earlier 1000 requests are not the stage's.
      await eventually(async () => ((await canaryOf(stores)).readings ? true : undefined), "first readings");
      expect(await routesOf(stores)).toEqual([
        { served_model_name: "a", traffic_percentage: 95 },
        { served_model_name: "b", traffic_percentage: 5 },
      ]);
      publishRouter(names, 61_000, 1_000 + 950, 60);
      const held = await eventually(async () => {
        const r = (await canaryOf(stores)).readings;
        return r?.requests.challenger === 60 ? r : undefined;
      }, "readings of the published traffic");
      expect(held.requests).toEqual({ champion: 950, challenger: 60 });
      expect(held.message).toBe("stage 1 of 3 (5%) holds for labels: 10 of 50 labelled challenger rows");
      expect(held.guards.find((g) => g.guard === "accuracy_ratio")).toMatchObject({
        state: "waiting",
        value: null,
      });
      // Labels count from the stage's start, whoever leads.
      expect(labels.calls.at(-1)).toEqual(["ep", "b", stageStartedAt]);

      labels.by.b = { labelled: 80, accuracy: 0.9 };
      const advanced = await eventually(async () => {
        const c = await canaryOf(stores);
        return c.state.stage === 1 ? c : undefined;
      }, "the advance");
      expect(advanced.state.history.at(-1)).toMatchObject({ event: "advanced", stage: 0, percent: 5 });
      expect(advanced.state.history.at(-1)!.guards.at(-1)).toEqual({
        guard: "accuracy_ratio",
        state: "ok",
        value: 1,
        limit: 0.95,
        note: "0.9 against 0.9 of the champion over this stage",
      });
      await eventually(async () => {
        const r = await routesOf(stores);
        return r.find((x) => x.served_model_name === "b")?.traffic_percentage === 50 ? true : undefined;
      }, "routes at 50%");
    } finally {
      await loop.stop();
    }
  });

  it("leaves requests that waited for a replica to start out of the latency guards", async () => {
    const labels = new Labels({ a: { labelled: 400, accuracy: 0.9 }, b: { labelled: 60, accuracy: 0.9 } });
    const { names, stores, loop } = await setup([50, 100], labels);
    try {
      await eventually(async () => ((await canaryOf(stores)).readings ? true : undefined), "first readings");
      // 5 of the challenger's 100 requests waited ~4 s for its first replica: with them its p99 would be ~1,500×
      // the champion's; without them both answer in 1–2.5 ms.
      publishRouter(names, 61_000, 1_000 + 100, 100, 5);
      const advanced = await eventually(async () => {
        const c = await canaryOf(stores);
        return c.state.stage === 1 || c.state.phase !== "running" ? c : undefined;
      }, "a decision");
      const last = advanced.state.history.at(-1)!;
      expect(last.message).toMatch(/advances/);
      expect(last.guards.find((g) => g.guard === "p99_latency_ratio")).toMatchObject({
        state: "ok",
        value: 1,
      });
    } finally {
      await loop.stop();
    }
  });

  it("rolls a less accurate challenger back, recording the accuracy ratio", async () => {
    const labels = new Labels({ a: { labelled: 400, accuracy: 0.9 }, b: { labelled: 60, accuracy: 0.6 } });
    const { stores, loop } = await setup([5, 100], labels);
    try {
      // Enough labels are a verdict of their own: no need to wait for min_requests.
      const done = await eventually(async () => {
        const c = await canaryOf(stores);
        return c.state.phase === "rolled_back" ? c : undefined;
      }, "the rollback");
      const last = done.state.history.at(-1)!;
      expect(last).toMatchObject({ event: "rolled_back", stage: 0, percent: 5 });
      expect(last.message).toBe(
        "b rolled back at stage 1 of 2 (5%): accuracy_ratio 0.667 (limit 0.95: 0.6 against 0.9 of the champion over this stage)",
      );
      await eventually(async () => {
        const r = await routesOf(stores);
        return r.find((x) => x.served_model_name === "a")?.traffic_percentage === 100 ? r : undefined;
      }, "routes back to the champion");
      expect(await routesOf(stores)).toEqual([
        { served_model_name: "a", traffic_percentage: 100 },
        { served_model_name: "b", traffic_percentage: 0 },
      ]);
    } finally {
      await loop.stop();
    }
  });
});
