// Staged canaries on a live cluster: in this process a real NATS, coordinators, a node agent running custom-model
// replicas and the HTTP bridge (its router sends the requests and reports the stats the canary judges). A steady
// request loop runs while each canary walks its stages with short holds: a healthy challenger is promoted and the
// registry aliases move; an erroring one and a slower one are rolled back at the first stage, with the guard and
// its value recorded; a leader that dies mid-rollout hands the canary over at the stage it reached; the API's
// errors name what is wrong.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { createBridge } from "@switchyard/bridge";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import type { CanaryView } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { eventually } from "@switchyard/testkit";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { injectJson } from "./helpers/inject.js";
import { cli } from "./helpers/up.js";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });

let nc: NatsConnection;
let cluster: string;
let registry: Registry;
let agent: NodeAgent;
let bridge: FastifyInstance;
const coordinators: Coordinator[] = [];

async function startCoordinator(id: string): Promise<Coordinator> {
  const c = new Coordinator({ nc, cluster, id, logger: log });
  await c.start();
  coordinators.push(c);
  return c;
}

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "canary-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  registry = await Registry.open(nc, { cluster });
  // dbl 1 and 2 answer alike (the champion and a healthy challenger); flaky throws on negatives; slow waits 40 ms.
  await registerModel(registry, "dbl", copyFixture("double"), { flavor: "custom", alias: "champion" });
  await registerModel(registry, "dbl", copyFixture("double"), { flavor: "custom", alias: "challenger" });
  await registerModel(registry, "flaky", copyFixture("flaky-double"), { flavor: "custom" });
  await registerModel(registry, "slow", copyFixture("slow-double"), { flavor: "custom" });
  const leader = await startCoordinator("coord-a");
  await eventually(() => leader.isLeader || undefined, "coord-a leads");
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
  for (const c of coordinators) await c.stop();
  await nc?.close();
});

const call = (method: "GET" | "POST" | "PUT" | "DELETE", url: string, body?: unknown) =>
  injectJson(bridge, method, url, body);

const rolloutUrl = (endpoint: string, op = "") => `/api/2.0/switchyard/endpoints/${endpoint}/rollout${op}`;
const status = async (endpoint: string): Promise<CanaryView> => {
  const r = await call("GET", rolloutUrl(endpoint));
  expect(r.status).toBe(200);
  return r.json as CanaryView;
};
const routesOf = async (endpoint: string) => {
  const r = await call("GET", `/api/2.0/serving-endpoints/${endpoint}`);
  return r.json.config.traffic_config.routes as { served_model_name: string; traffic_percentage: number }[];
};

/** An endpoint serving `a` (all traffic) and `b` (none), created and READY. */
async function endpointOf(
  name: string,
  a: [string, string],
  b: [string, string],
  extra: Record<string, unknown> = {},
): Promise<void> {
  const created = await call("POST", "/api/2.0/serving-endpoints", {
    name,
    config: {
      ...extra,
      served_entities: [
        { name: "a", entity_name: a[0], entity_version: a[1] },
        { name: "b", entity_name: b[0], entity_version: b[1] },
      ],
      traffic_config: {
        routes: [
          { served_model_name: "a", traffic_percentage: 100 },
          { served_model_name: "b", traffic_percentage: 0 },
        ],
      },
    },
  });
  expect(created.status, JSON.stringify(created.json)).toBe(200);
  await eventually(
    async () => {
      const r = await call("GET", `/api/2.0/serving-endpoints/${name}`);
      const served = r.json.config?.served_entities ?? [];
      return r.json.state?.ready === "READY" &&
        served.length === 2 &&
        served.every((s: { replicas: { ready: number } }) => s.replicas.ready >= 1)
        ? true
        : undefined;
    },
    `${name} READY with both served models`,
    90_000,
  );
}

/**
 * Requests, one after another from 3 loops, until stopped: x from 1 up (every third negative when `negatives`).
 * Every answer is checked against 2·x unless the served model is the one expected to fail.
 */
function load(endpoint: string, o: { negatives?: boolean; failing?: string } = {}) {
  let stop = false;
  const counts = new Map<string, number>();
  const wrong: string[] = [];
  let n = 0;
  const loop = async () => {
    while (!stop) {
      const i = n++;
      const x = o.negatives && i % 3 === 0 ? -(i % 7) - 1 : (i % 11) + 1;
      const r = await call("POST", `/serving-endpoints/${endpoint}/invocations`, {
        dataframe_split: { columns: ["x"], data: [[x]] },
      });
      const served = String(r.headers["x-served-model"] ?? "");
      counts.set(served, (counts.get(served) ?? 0) + 1);
      if (served === o.failing) continue;
      if (r.status !== 200 || r.json.predictions?.[0] !== 2 * x) {
        wrong.push(`${served} x=${x}: ${r.status} ${JSON.stringify(r.json)}`);
      }
    }
  };
  const loops = [loop(), loop(), loop()];
  return {
    counts,
    wrong,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

const SHORT = { stages: [10, 50, 100], hold: { duration: "1s", min_requests: 30 } };
/** Two identical fast models differ by noise on a busy 2-core machine: healthy runs allow for it. */
const NOISY = { guards: { max_latency_ratio: { p95: 3, p99: 5 } } };

const ended = (endpoint: string, ms = 60_000) =>
  eventually(
    async () => {
      const s = await status(endpoint);
      return s.phase === "running" || s.phase === "paused" ? undefined : s;
    },
    `the canary of ${endpoint} to end`,
    ms,
  );

describe("staged canary", () => {
  it("walks a healthy challenger through every stage, promotes it and moves the aliases", async () => {
    // The headline case: served models that follow @champion and @challenger.
    await endpointOf("healthy", ["dbl", "@champion"], ["dbl", "@challenger"]);
    const traffic = load("healthy");
    try {
      const started = await call("POST", rolloutUrl("healthy"), { ...SHORT, ...NOISY, promote_alias: true });
      expect(started.status, JSON.stringify(started.json)).toBe(200);
      // Nothing named: of two served models the busier is the champion.
      expect(started.json).toMatchObject({
        champion: "a",
        challenger: "b",
        phase: "running",
        stage: 0,
        percent: 10,
      });
      expect(await routesOf("healthy")).toEqual([
        { served_model_name: "a", traffic_percentage: 90 },
        { served_model_name: "b", traffic_percentage: 10 },
      ]);
      const done = await ended("healthy");
      expect(done.phase, done.message).toBe("promoted");
      expect(done.history.map((e) => [e.event, e.stage, e.percent])).toEqual([
        ["started", 0, 10],
        ["advanced", 0, 10],
        ["advanced", 1, 50],
        ["promoted", 2, 100],
      ]);
      for (const e of done.history.slice(1)) {
        expect(e.guards.map((g) => g.state)).toEqual(["ok", "ok", "ok", "ok"]);
        expect(e.guards[1]).toMatchObject({ guard: "non_retryable_error_rate", value: 0, limit: 0.01 });
      }
    } finally {
      await traffic.stop();
    }
    expect(traffic.wrong).toEqual([]);
    expect(traffic.counts.get("b")).toBeGreaterThan(0);
    expect(await routesOf("healthy")).toEqual([
      { served_model_name: "a", traffic_percentage: 0 },
      { served_model_name: "b", traffic_percentage: 100 },
    ]);
    // The promotion is stored first and the aliases move right after it (by whichever coordinator leads).
    await eventually(async () => {
      const { aliases } = await registry.getModel("dbl");
      return aliases.champion === 2 && !("challenger" in aliases) ? true : undefined;
    }, "@champion on version 2 and @challenger gone");
    expect((await registry.getModel("dbl")).aliases).toEqual({ champion: 2 });
    // `b` followed @challenger, which is gone: the config drops it and `a`, following @champion, now serves
    // version 2 and takes all traffic once its replicas are ready (b serves until then).
    const rewritten = await eventually(async () => {
      const r = await call("GET", "/api/2.0/serving-endpoints/healthy");
      return r.json.state?.config_update === "NOT_UPDATING" && r.json.config?.config_version === 2
        ? r.json
        : undefined;
    }, "the config rewritten after promotion");
    expect(
      rewritten.config.served_entities.map((s: Record<string, unknown>) => [
        s.name,
        String(s.entity_version),
        s.entity_alias,
      ]),
    ).toEqual([["a", "2", "champion"]]);
    expect(rewritten.config.traffic_config.routes).toEqual([
      { served_model_name: "a", traffic_percentage: 100 },
    ]);
    const after = load("healthy");
    await eventually(
      () => ((after.counts.get("a") ?? 0) >= 20 ? true : undefined),
      "requests after promotion",
    );
    await after.stop();
    expect([...after.counts.keys()]).toEqual(["a"]);
    expect(after.wrong).toEqual([]);
    expect((await call("DELETE", "/api/2.0/serving-endpoints/healthy")).status).toBe(200);
  }, 150_000);

  it("rolls an erroring challenger back at the first stage, with the guard and its value", async () => {
    await endpointOf("erroring", ["dbl", "1"], ["flaky", "1"]);
    const traffic = load("erroring", { negatives: true, failing: "b" });
    try {
      const started = await call("POST", rolloutUrl("erroring"), SHORT);
      expect(started.status, JSON.stringify(started.json)).toBe(200);
      const done = await ended("erroring");
      expect(done.phase, done.message).toBe("rolled_back");
      expect(done.stage).toBe(0);
      const last = done.history.at(-1)!;
      expect(last).toMatchObject({ event: "rolled_back", stage: 0, percent: 10 });
      const guard = last.guards.find((g) => g.guard === "non_retryable_error_rate")!;
      expect(guard.state).toBe("failed");
      expect(guard.limit).toBe(0.01);
      // A third of the requests carry a negative x: about a third of the challenger's fail.
      expect(guard.value).toBeGreaterThan(0.15);
      expect(guard.value).toBeLessThan(0.55);
      expect(guard.note).toMatch(/^\d+ of \d+ requests$/);
      expect(last.message).toContain("b rolled back at stage 1 of 3 (10%): non_retryable_error_rate");
      expect(await routesOf("erroring")).toEqual([
        { served_model_name: "a", traffic_percentage: 100 },
        { served_model_name: "b", traffic_percentage: 0 },
      ]);
    } finally {
      await traffic.stop();
    }
    expect(traffic.wrong).toEqual([]);
    expect((await call("DELETE", "/api/2.0/serving-endpoints/erroring")).status).toBe(200);
  }, 150_000);

  it("rolls a slower challenger back on its latency against the champion's", async () => {
    await endpointOf("slower", ["dbl", "1"], ["slow", "1"]);
    const traffic = load("slower");
    try {
      const started = await call("POST", rolloutUrl("slower"), SHORT);
      expect(started.status, JSON.stringify(started.json)).toBe(200);
      const done = await ended("slower");
      expect(done.phase, done.message).toBe("rolled_back");
      expect(done.stage).toBe(0);
      const last = done.history.at(-1)!;
      const failed = last.guards.filter((g) => g.state === "failed").map((g) => g.guard);
      expect(failed).toContain("p95_latency_ratio");
      const p95 = last.guards.find((g) => g.guard === "p95_latency_ratio")!;
      // It waits 40 ms a request; the champion answers in a few.
      expect(p95.value).toBeGreaterThan(1.2);
      expect(p95.note).toMatch(/ ms against .* ms of the champion over this stage$/);
      expect(await routesOf("slower")).toEqual([
        { served_model_name: "a", traffic_percentage: 100 },
        { served_model_name: "b", traffic_percentage: 0 },
      ]);
    } finally {
      await traffic.stop();
    }
    expect(traffic.wrong).toEqual([]);
    expect((await call("DELETE", "/api/2.0/serving-endpoints/slower")).status).toBe(200);
  }, 150_000);

  it("answers API errors with their codes and the field at fault", async () => {
    // The config's rollout section, with its defaults filled in, is what GET returns and what start reads.
    const section = { champion: "a", challenger: "b", stages: [5, 100], hold: { min_requests: 50 } };
    await endpointOf("api", ["dbl", "1"], ["dbl", "2"], { rollout: section });
    const got = await call("GET", "/api/2.0/serving-endpoints/api");
    expect(got.json.config.rollout).toEqual({
      ...section,
      hold: { duration: 300_000, min_requests: 50 },
      guards: {
        max_error_rate: { retryable: 0.05, non_retryable: 0.01 },
        max_latency_ratio: { p95: 1.2, p99: 1.2 },
      },
      promote_alias: false,
    });
    const badSection = await call("POST", "/api/2.0/serving-endpoints", {
      name: "api-bad",
      config: {
        served_entities: [{ name: "a", entity_name: "dbl", entity_version: "1" }],
        rollout: { champion: "a", challenger: "c", hold: { duration: "soon" } },
      },
    });
    expect(badSection.status).toBe(400);
    expect(badSection.json.message).toBe(
      "invalid endpoint config (1 problem): config.rollout.hold.duration: expected a duration such as 30s, 30m, " +
        '2h, 500ms or a number of milliseconds, got "soon"',
    );
    const none = await call("GET", rolloutUrl("api"));
    expect(none.status).toBe(404);
    expect(none.json).toEqual({
      error_code: "RESOURCE_DOES_NOT_EXIST",
      message: "endpoint 'api' has no canary (start one with rollout start)",
    });
    const missing = await call("POST", rolloutUrl("nope"), {});
    expect(missing.status).toBe(404);
    expect(missing.json.error_code).toBe("RESOURCE_DOES_NOT_EXIST");
    const bad = await call("POST", rolloutUrl("api"), { stages: [10, 50] });
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({
      error_code: "INVALID_PARAMETER_VALUE",
      message:
        "invalid rollout (1 problem): stages.1: the last stage must be 100 (the challenger takes all traffic " +
        "before promotion), got 50",
    });
    const zero = await call("POST", rolloutUrl("api"), { hold: { min_requests: 0 } });
    expect(zero.status).toBe(400);
    expect(zero.json.message).toMatch(/^invalid rollout \(1 problem\): hold\.min_requests: /);
    const unknown = await call("POST", rolloutUrl("api"), { champion: "z" });
    expect(unknown.json.message).toBe(
      "invalid rollout (1 problem): champion: 'z' is not a served model of this endpoint (served models: 'a', 'b')",
    );
    // Long holds: this canary stays at its first stage while the errors below are checked.
    const started = await call("POST", rolloutUrl("api"), { hold: { duration: "1h" } });
    expect(started.status).toBe(200);
    expect(started.json).toMatchObject({
      stages: [5, 100],
      percent: 5,
      hold: { duration_ms: 3_600_000, min_requests: 50 },
    });
    // The CLI: status as a table (guards waiting for traffic), as JSON, and a bad flag named.
    const g = ["--nats", inject("natsUrl"), "--cluster", cluster];
    const shown = await cli([...g, "endpoints", "rollout", "status", "api"]);
    expect(shown.stderr).toBe("");
    expect(shown.stdout).toContain("canary of api: running — b at 5% against a, stage 1 of 2 (5 → 100%)");
    expect(shown.stdout).toMatch(
      /non_retryable_error_rate\s+waiting\s+-\s+0\.01\s+\d+ of 50 challenger requests/,
    );
    expect(shown.stdout).toMatch(/started\s+5%\s+b starts at 5% against a/);
    const json = await cli([...g, "--json", "endpoints", "rollout", "status", "api"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ endpoint: "api", phase: "running", stages: [5, 100] });
    const badFlag = await cli([...g, "endpoints", "rollout", "start", "api", "--stages", "5,x"]);
    expect(badFlag.code).not.toBe(0);
    expect(badFlag.stderr).toContain(
      "--stages: expected percentages separated by commas such as 5,20,50,100, got '5,x'",
    );
    const cliTwice = await cli([...g, "endpoints", "rollout", "start", "api", "--hold", "1h"]);
    expect(cliTwice.code).not.toBe(0);
    expect(cliTwice.stderr).toContain("endpoint 'api' already has a canary running");
    const twice = await call("POST", rolloutUrl("api"), {});
    expect(twice.status).toBe(409);
    expect(twice.json).toEqual({
      error_code: "RESOURCE_CONFLICT",
      message: "endpoint 'api' already has a canary running (b at 5% against a); abort it first",
    });
    const update = await call("PUT", "/api/2.0/serving-endpoints/api/config", {
      served_entities: [{ name: "a", entity_name: "dbl", entity_version: "1" }],
    });
    expect(update.status).toBe(409);
    expect(update.json.message).toBe(
      "endpoint 'api' has a canary running (b at 5% against a); abort it first (switchyard endpoints rollout abort api)",
    );
    const paused = await cli([...g, "endpoints", "rollout", "pause", "api"]);
    expect(paused.stderr).toBe("");
    expect(paused.stdout).toContain("canary of api: paused — b at 5% against a");
    const again = await call("POST", rolloutUrl("api", "/pause"));
    expect(again.status).toBe(409);
    expect(again.json.message).toBe("the canary is paused, not running");
    expect((await call("POST", rolloutUrl("api", "/resume"))).json.phase).toBe("running");
    const aborted = await call("POST", rolloutUrl("api", "/abort"));
    expect(aborted.status).toBe(200);
    expect(aborted.json.phase).toBe("aborted");
    expect(aborted.json.history.map((e: { event: string }) => e.event)).toEqual([
      "started",
      "paused",
      "resumed",
      "aborted",
    ]);
    expect(await routesOf("api")).toEqual([
      { served_model_name: "a", traffic_percentage: 100 },
      { served_model_name: "b", traffic_percentage: 0 },
    ]);
    expect((await call("POST", rolloutUrl("api", "/abort"))).status).toBe(409);
    // Once it is over the endpoint takes updates again.
    const later = await call("PUT", "/api/2.0/serving-endpoints/api/config", {
      served_entities: [{ name: "a", entity_name: "dbl", entity_version: "1" }],
    });
    expect(later.status, JSON.stringify(later.json)).toBe(200);
    expect((await call("DELETE", "/api/2.0/serving-endpoints/api")).status).toBe(200);
  }, 150_000);

  it("continues from the stored stage when the leader dies mid-rollout", async () => {
    const standby = await startCoordinator("coord-b");
    const leader = coordinators.find((c) => c.isLeader)!;
    expect(leader.id).toBe("coord-a");
    await endpointOf("failover", ["dbl", "1"], ["dbl", "2"]);
    const traffic = load("failover");
    try {
      // Stage 2 holds long enough to stop the leader inside it; stage 1 at 20% fills quickly on a busy machine.
      const started = await call("POST", rolloutUrl("failover"), {
        ...NOISY,
        stages: [20, 50, 100],
        hold: { duration: "6s", min_requests: 30 },
      });
      expect(started.status, JSON.stringify(started.json)).toBe(200);
      const atStage2 = await eventually(
        async () => {
          const s = await status("failover");
          return s.stage === 1 || s.phase !== "running" ? s : undefined;
        },
        "stage 2",
        90_000,
      );
      expect([atStage2.phase, atStage2.stage], atStage2.message).toEqual(["running", 1]);
      await leader.stop();
      await eventually(() => standby.isLeader || undefined, "coord-b leads", 30_000);
      const done = await ended("failover", 90_000);
      expect(done.phase, done.message).toBe("promoted");
      // One start, stage 2 left once: coord-b went on from where coord-a was.
      expect(done.history.map((e) => [e.event, e.stage])).toEqual([
        ["started", 0],
        ["advanced", 0],
        ["advanced", 1],
        ["promoted", 2],
      ]);
      expect(done.history[2]!.at).toBeGreaterThan(atStage2.stage_started_at);
      expect(done.started_at).toBe(atStage2.started_at);
    } finally {
      await traffic.stop();
    }
    expect(traffic.wrong).toEqual([]);
  }, 180_000);
});
