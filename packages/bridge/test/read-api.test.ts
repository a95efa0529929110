// The read APIs (models, nodes) and the dashboard's public files, against a real NATS server: records are
// written where the registry, agents and coordinator write them, and read back through the bridge over HTTP.
import { statSync } from "node:fs";
import { registerModel } from "@switchyard/ingest";
import { openBucket } from "@switchyard/nats";
import {
  type BatchWorkerSpec,
  clusterNames,
  keys,
  type NodeHeartbeat,
  type ReplicaSpec,
  type ReplicaStatus,
  type StreamScorerSpec,
  type WorkerStatus,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildLinear, writeTempModel } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import { natsPerFile, uniqueCluster } from "../../client/test/fixtures/doubles.js";
import { listenBridge } from "../src/bridge.js";
import { TokenStore } from "../src/tokens.js";

const files = natsPerFile();
const cleanups = files.cleanups;

async function setup(opts: { auth?: boolean } = {}) {
  const cluster = uniqueCluster();
  const tokens = await TokenStore.open(files.nc(), { cluster });
  cleanups.push(() => tokens.close());
  const { token } = await tokens.createToken({ scopes: ["admin"] });
  const bridge = await listenBridge({ nc: files.nc(), cluster, auth: opts.auth ?? true });
  cleanups.push(() => bridge.close());
  const get = (path: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }) =>
    fetch(bridge.url + path, { headers });
  return { cluster, url: bridge.url, get };
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(((await res.json()) as { error_code: string }).error_code).toBe(code);
}

describe("GET /api/2.0/switchyard/models", () => {
  it("lists every model with its versions, flavors and the aliases on each version", async () => {
    const s = await setup();
    const registry = await Registry.open(files.nc(), { cluster: s.cluster });
    const small = writeTempModel(buildLinear({ inputs: 2 }));
    const large = writeTempModel(buildLinear({ inputs: 8, outputs: 3 }));
    await registerModel(registry, "cat.sch.fraud", small);
    await registerModel(registry, "cat.sch.fraud", large, { alias: "champion" });
    await registry.setAlias("cat.sch.fraud", "challenger", 1);
    await registry.setAlias("cat.sch.fraud", "baseline", 1);
    await registerModel(registry, "churn", small);

    const res = await s.get("/api/2.0/switchyard/models");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { models: any[] };
    expect(body.models.map((m) => m.name)).toEqual(["cat.sch.fraud", "churn"]);
    const [fraud, churn] = body.models;
    expect(fraud).toMatchObject({
      name: "cat.sch.fraud",
      latest_version: 2,
      aliases: { champion: 2, challenger: 1, baseline: 1 },
    });
    expect(fraud.versions).toEqual([
      expect.objectContaining({
        version: 1,
        flavor: "onnx",
        aliases: ["baseline", "challenger"],
        source: small,
        size_bytes: statSync(small).size,
      }),
      expect.objectContaining({
        version: 2,
        flavor: "onnx",
        aliases: ["champion"],
        source: large,
        size_bytes: statSync(large).size,
      }),
    ]);
    expect(churn.versions).toEqual([expect.objectContaining({ version: 1, aliases: [] })]);

    const one = await s.get("/api/2.0/switchyard/models/cat.sch.fraud");
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual(fraud);
    await expectError(await s.get("/api/2.0/switchyard/models/nope"), 404, "RESOURCE_DOES_NOT_EXIST");
    await expectError(await s.get("/api/2.0/switchyard/models/bad..name"), 400, "INVALID_PARAMETER_VALUE");
  });

  it("requires a token like every API route", async () => {
    const s = await setup();
    await expectError(await s.get("/api/2.0/switchyard/models", {}), 401, "UNAUTHENTICATED");
    await expectError(await s.get("/api/2.0/switchyard/nodes", {}), 401, "UNAUTHENTICATED");
    await expectError(
      await s.get("/api/2.0/switchyard/nodes", { authorization: `Bearer syt_${"w".repeat(43)}` }),
      403,
      "PERMISSION_DENIED",
    );
  });
});

describe("GET /api/2.0/switchyard/nodes", () => {
  it("lists nodes with their thread budgets and every assignment with its reported status", async () => {
    const s = await setup();
    const names = clusterNames(s.cluster);
    const [cluster, liveness] = await Promise.all([
      openBucket(files.nc(), names, "cluster"),
      openBucket(files.nc(), names, "liveness"),
    ]);
    const now = Date.now();
    const heartbeat: NodeHeartbeat = {
      node_id: "n1",
      host: "host-a",
      pid: 4242,
      threads: 4,
      started_at: now - 60_000,
      updated_at: now,
    };
    await liveness.put(keys.node("n1"), JSON.stringify(heartbeat));
    const replica: ReplicaSpec = {
      replica_id: "r1",
      endpoint: "fraud",
      served_model: "fraud-2",
      subject: "sy.replica.fraud.fraud-2.g1",
      model_name: "cat.sch.fraud",
      model_version: 2,
      threads: 2,
      max_batch_size: 32,
      max_delay_us: 0,
      max_queue: 256,
      generation: "g1",
    };
    const replicaStatus: ReplicaStatus = {
      replica_id: "r1",
      node_id: "n1",
      endpoint: "fraud",
      served_model: "fraud-2",
      generation: "g1",
      pid: 5151,
      state: "READY",
      message: "",
      restarts: 1,
      updated_at: now,
    };
    const worker: BatchWorkerSpec = {
      kind: "batch",
      worker_id: "w1",
      job_id: "job1",
      model_name: "churn",
      model_version: 1,
      threads: 1,
    };
    // A scorer on a node whose heartbeat expired: still listed, under a node marked not live.
    const scorer: StreamScorerSpec = { kind: "stream", worker_id: "s1", job_id: "tx", threads: 1 };
    const scorerStatus: WorkerStatus = {
      worker_id: "s1",
      node_id: "n2",
      job_id: "tx",
      pid: 6161,
      state: "RUNNING",
      message: "",
      restarts: 0,
      updated_at: now,
    };
    await cluster.put(keys.assignment("n1", "r1"), JSON.stringify(replica));
    await cluster.put(keys.replica("r1"), JSON.stringify(replicaStatus));
    await cluster.put(keys.assignment("n1", "w1"), JSON.stringify(worker));
    await cluster.put(keys.assignment("n2", "s1"), JSON.stringify(scorer));
    await cluster.put(keys.worker("s1"), JSON.stringify(scorerStatus));

    const res = await s.get("/api/2.0/switchyard/nodes");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      nodes: [
        {
          node_id: "n1",
          live: true,
          host: "host-a",
          pid: 4242,
          threads: { budget: 4, assigned: 3 },
          started_at: now - 60_000,
          updated_at: now,
          work: [
            {
              kind: "replica",
              id: "r1",
              endpoint: "fraud",
              served_model: "fraud-2",
              model_name: "cat.sch.fraud",
              model_version: 2,
              generation: "g1",
              threads: 2,
              state: "READY",
              pid: 5151,
              restarts: 1,
              message: "",
              updated_at: now,
            },
            {
              kind: "batch_worker",
              id: "w1",
              job_id: "job1",
              model_name: "churn",
              model_version: 1,
              threads: 1,
              state: "PENDING",
              pid: null,
              restarts: 0,
              message: "",
              updated_at: null,
            },
          ],
        },
        {
          node_id: "n2",
          live: false,
          host: null,
          pid: null,
          threads: { budget: null, assigned: 1 },
          started_at: null,
          updated_at: null,
          work: [
            {
              kind: "stream_scorer",
              id: "s1",
              job_id: "tx",
              threads: 1,
              state: "RUNNING",
              pid: 6161,
              restarts: 0,
              message: "",
              updated_at: now,
            },
          ],
        },
      ],
    });
  });

  it("answers an empty list for a cluster with no nodes, without a token when auth is off", async () => {
    const s = await setup({ auth: false });
    const res = await s.get("/api/2.0/switchyard/nodes", {});
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ nodes: [] });
  });
});

describe("the dashboard's files", () => {
  it("serves the page and its assets without a token, and nothing else", async () => {
    const s = await setup();
    const page = await s.get("/", {});
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<input name="token" type="password"');
    expect(html).toContain('src="/dashboard/app.js"');
    expect(html).toContain('href="/dashboard/style.css"');
    for (const asset of ["/dashboard/app.js", "/dashboard/uPlot.esm.js", "/dashboard/style.css"]) {
      const res = await s.get(asset, {});
      expect({ asset, status: res.status }).toEqual({ asset, status: 200 });
    }
    expect((await s.get("/dashboard/uPlot.esm.js", {})).headers.get("content-type")).toBe(
      "text/javascript; charset=utf-8",
    );
    expect((await s.get("/?from=bookmark", {})).status).toBe(200);

    // Unchanged files are revalidated, not downloaded again.
    const etag = page.headers.get("etag")!;
    expect((await s.get("/", { "if-none-match": etag })).status).toBe(304);

    // Only those exact paths and methods are public: anything else still needs a token.
    await expectError(await s.get("/dashboard/other.js", {}), 401, "UNAUTHENTICATED");
    await expectError(await s.get("/dashboard/", {}), 401, "UNAUTHENTICATED");
    await expectError(await s.get("/index.html", {}), 401, "UNAUTHENTICATED");
    await expectError(await fetch(`${s.url}/`, { method: "POST", body: "{}" }), 401, "UNAUTHENTICATED");
  });
});
