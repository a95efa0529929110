// A staged canary judged on live accuracy: two real ONNX models behind one endpoint with an inference table, a
// request loop that sends the true label of every answer back as feedback (by request id), and a canary whose
// accuracy guard compares the challenger's labelled accuracy with the champion's over each stage. The labelled
// set is computed here: truth = x1 + x2; model "exact" computes x1 + x2 (always right), model "rough" computes
// x1 + 2·x2 (right only where x2 = 0, 7 rows in 10). The rough challenger is rolled back at the first stage on
// `accuracy_ratio`; the exact challenger against the rough champion walks every stage and is promoted.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { createBridge } from "@switchyard/bridge";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import type { CanaryView } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildLinear, eventually, writeTempModel } from "@switchyard/testkit";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { injectJson } from "./helpers/inject.js";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });

let nc: NatsConnection;
let cluster: string;
let agent: NodeAgent;
let coordinator: Coordinator;
let bridge: FastifyInstance;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "canary-accuracy-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  const registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "exact", writeTempModel(buildLinear({ inputs: 2, weights: [1, 1] })));
  await registerModel(registry, "rough", writeTempModel(buildLinear({ inputs: 2, weights: [1, 2] })));
  coordinator = new Coordinator({ nc, cluster, id: "coord-a", logger: log });
  await coordinator.start();
  await eventually(() => coordinator.isLeader || undefined, "the coordinator leads");
  agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "n1",
    threads: 4,
    logger: log,
  });
  await agent.start();
  bridge = await createBridge({ nc, cluster, auth: false, logger: log });
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await agent?.stop();
  await coordinator?.stop();
  await nc?.close();
});

const call = (method: "GET" | "POST", url: string, body?: unknown) => injectJson(bridge, method, url, body);

/** An endpoint with champion `a` (all traffic) and challenger `b`, capturing every request, READY. */
async function endpointOf(name: string, a: string, b: string): Promise<void> {
  const created = await call("POST", "/api/2.0/serving-endpoints", {
    name,
    config: {
      served_entities: [
        { name: "a", entity_name: a, entity_version: "1" },
        { name: "b", entity_name: b, entity_version: "1" },
      ],
      traffic_config: {
        routes: [
          { served_model_name: "a", traffic_percentage: 100 },
          { served_model_name: "b", traffic_percentage: 0 },
        ],
      },
      auto_capture_config: { catalog_name: "main", schema_name: "ml" },
    },
  });
  expect(created.status, JSON.stringify(created.json)).toBe(200);
  await eventually(
    async () => {
      const r = await call("GET", `/api/2.0/serving-endpoints/${name}`);
      const served = r.json.config?.served_entities ?? [];
      return r.json.state?.ready === "READY" &&
        served.every((s: { replicas: { ready: number } }) => s.replicas.ready >= 1)
        ? true
        : undefined;
    },
    `${name} READY`,
    90_000,
  );
}

const truth = (x1: number, x2: number) => x1 + x2;
const MODELS: Record<string, (x1: number, x2: number) => number> = {
  exact: (x1, x2) => x1 + x2,
  rough: (x1, x2) => x1 + 2 * x2,
};

/**
 * Requests from 3 loops until stopped, each answer checked against its model's formula and its true label sent
 * back as feedback (in batches of 10, by the `x-request-id` of the reply).
 */
function labelledLoad(endpoint: string, models: Record<string, string>) {
  let stop = false;
  let n = 0;
  const wrong: string[] = [];
  const labels: Array<{ request_id: string; label: number }> = [];
  const send = async () => {
    const batch = labels.splice(0);
    if (!batch.length) return;
    const r = await call("POST", `/api/2.0/switchyard/endpoints/${endpoint}/feedback`, batch);
    if (r.status !== 200 || r.json.accepted !== batch.length)
      wrong.push(`feedback: ${JSON.stringify(r.json)}`);
  };
  const loop = async () => {
    while (!stop) {
      const i = n++;
      const x1 = (i % 13) + 1;
      const x2 = i % 10 < 7 ? 0 : (i % 5) + 1;
      const r = await call("POST", `/serving-endpoints/${endpoint}/invocations`, {
        dataframe_split: { columns: ["x1", "x2"], data: [[x1, x2]] },
      });
      const served = String(r.headers["x-served-model"] ?? "");
      const model = models[served];
      if (r.status !== 200 || !model || r.json.predictions?.[0] !== MODELS[model]!(x1, x2)) {
        wrong.push(`${served} (${x1}, ${x2}): ${r.status} ${JSON.stringify(r.json)}`);
        continue;
      }
      labels.push({ request_id: String(r.headers["x-request-id"]), label: truth(x1, x2) });
      if (labels.length >= 10) await send();
    }
  };
  const loops = [loop(), loop(), loop()];
  return {
    wrong,
    async stop() {
      stop = true;
      await Promise.all(loops);
      await send();
    },
  };
}

/** Stages short enough for a test; latency allowed to vary (two tiny models on a busy 2-core machine). */
const ROLLOUT = {
  stages: [10, 50, 100],
  hold: { duration: "1s", min_requests: 30 },
  guards: {
    max_latency_ratio: { p95: 5, p99: 10 },
    min_accuracy: { ratio: 0.95, min_labels: 20 },
  },
};

const ended = (endpoint: string) =>
  eventually(
    async () => {
      const r = await call("GET", `/api/2.0/switchyard/endpoints/${endpoint}/rollout`);
      expect(r.status).toBe(200);
      const s = r.json as CanaryView;
      return s.phase === "running" || s.phase === "paused" ? undefined : s;
    },
    `the canary of ${endpoint} to end`,
    120_000,
  );

describe("a staged canary with an accuracy guard", () => {
  it("rolls back a less accurate challenger at the first stage, on accuracy_ratio", async () => {
    await endpointOf("worse", "exact", "rough");
    const traffic = labelledLoad("worse", { a: "exact", b: "rough" });
    let done: CanaryView;
    try {
      const started = await call("POST", "/api/2.0/switchyard/endpoints/worse/rollout", ROLLOUT);
      expect(started.status, JSON.stringify(started.json)).toBe(200);
      done = await ended("worse");
    } finally {
      await traffic.stop();
    }
    expect(traffic.wrong).toEqual([]);
    expect(done.phase).toBe("rolled_back");
    const event = done.history.at(-1)!;
    expect([event.event, event.stage, event.percent]).toEqual(["rolled_back", 0, 10]);
    const guard = event.guards.find((g) => g.guard === "accuracy_ratio")!;
    // The champion is always right, the challenger right on 7 rows in 10: far below 0.95.
    expect(guard).toMatchObject({ state: "failed", limit: 0.95 });
    expect(guard.value!).toBeLessThan(0.95);
    expect(guard.value!).toBeGreaterThan(0.3);
    expect(event.message).toContain("accuracy_ratio");
    const routes = (await call("GET", "/api/2.0/serving-endpoints/worse")).json.config.traffic_config.routes;
    expect(routes).toEqual([
      { served_model_name: "a", traffic_percentage: 100 },
      { served_model_name: "b", traffic_percentage: 0 },
    ]);
  }, 180_000);

  it("promotes a more accurate challenger through every stage", async () => {
    await endpointOf("better", "rough", "exact");
    const traffic = labelledLoad("better", { a: "rough", b: "exact" });
    let done: CanaryView;
    try {
      const started = await call("POST", "/api/2.0/switchyard/endpoints/better/rollout", ROLLOUT);
      expect(started.status, JSON.stringify(started.json)).toBe(200);
      done = await ended("better");
    } finally {
      await traffic.stop();
    }
    expect(traffic.wrong).toEqual([]);
    expect(done.phase, done.history.at(-1)?.message).toBe("promoted");
    expect(done.history.map((e) => [e.event, e.stage])).toEqual([
      ["started", 0],
      ["advanced", 0],
      ["advanced", 1],
      ["promoted", 2],
    ]);
    // Every decision past the start read the accuracy guard from labels, and found the challenger ahead.
    for (const e of done.history.slice(1)) {
      const g = e.guards.find((x) => x.guard === "accuracy_ratio")!;
      expect(g.state, g.note).toBe("ok");
      expect(g.value!).toBeGreaterThanOrEqual(1);
    }
  }, 180_000);
});
