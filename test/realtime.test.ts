// Realtime serving end to end, as a Databricks user drives it: `switchyard up`, models registered with the
// CLI, endpoints created with Databricks bodies over HTTP, invocations with the notes' curl bodies.
// References come from raw onnxruntime-node on the same model bytes, never from Switchyard code.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { connectNats } from "@switchyard/nats";
import { clusterNames, type ReplicaStatsSnapshot } from "@switchyard/protocol";
import {
  buildLinear,
  buildMlp,
  buildMultiInput,
  linearPredict,
  prng,
  tempDir,
  writeTempModel,
} from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alive, childrenMatching, cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

type Cluster = ReturnType<typeof clusterClient>;

const LR1 = buildLinear({ inputs: 2, sigmoid: true });
const LR2 = buildLinear({ inputs: 2, sigmoid: true, bias: [0.75] });
const MULTI = buildMultiInput();
const SLOW = buildMlp([256, 1024, 1024, 1024, 1], { seed: 7 });

async function reference(model: Uint8Array, feeds: Record<string, { data: number[]; dims: number[] }>) {
  const session = await ort.InferenceSession.create(model);
  const input: Record<string, ort.Tensor> = {};
  for (const [name, f] of Object.entries(feeds))
    input[name] = new ort.Tensor("float32", Float32Array.from(f.data), f.dims);
  const out = await session.run(input);
  await session.release();
  return out;
}

async function lrReference(model: Uint8Array, rows: number[][]): Promise<number[]> {
  const out = await reference(model, { input: { data: rows.flat(), dims: [rows.length, 2] } });
  return Array.from(out.output!.data as Float32Array);
}

function expectClose(actual: unknown, expected: number[], tol = 1e-5) {
  expect(Array.isArray(actual)).toBe(true);
  const a = actual as number[];
  expect(a).toHaveLength(expected.length);
  a.forEach((v, i) => {
    expect(Math.abs(v - expected[i]!)).toBeLessThan(tol);
  });
}

describe("realtime serving through switchyard up", () => {
  let up: Up;
  let http: string;
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  let call: Cluster["call"];
  let invoke: Cluster["invoke"];
  let waitReady: Cluster["waitReady"];
  let replicaPids: Cluster["replicaPids"];
  const register = async (name: string, bytes: Uint8Array, extra: string[] = []) => {
    const r = await cli(["models", "register", name, writeTempModel(bytes), "--json", ...extra], env());
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout).version as number;
  };

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-rt-"), "data"));
    const info = up.info();
    expect(info.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.token).toBeTruthy();
    http = info.httpUrl!;
    ({ call, invoke, waitReady, replicaPids } = clusterClient(up));
    expect(await register("catalog.schema.my_model", LR1)).toBe(1);
    expect(await register("catalog.schema.my_model", LR2)).toBe(2);
    expect(await register("multi", MULTI)).toBe(1);
    // The notes' create body, as is.
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "my-endpoint",
      config: {
        served_models: [
          {
            model_name: "catalog.schema.my_model",
            model_version: "1",
            workload_size: "Small",
            traffic_percentage: 100,
          },
        ],
      },
    });
    expect(created.status).toBe(200);
    expect(created.json.name).toBe("my-endpoint");
    const multi = await call("POST", "/api/2.0/serving-endpoints", {
      name: "multi-ep",
      config: { served_entities: [{ entity_name: "multi", entity_version: "1", workload_size: "Small" }] },
    });
    expect(multi.status).toBe(200);
    await waitReady("my-endpoint");
    await waitReady("multi-ep");
  });

  afterAll(async () => {
    if (!up) return;
    // A replica restarted by a test (kill -9) may be between processes at this instant: wait for them.
    const replicas = await eventually(() => {
      const found = childrenMatching(up!.proc.pid!, "replica");
      return found.length ? found : undefined;
    }, "replica processes of up");
    expect(await up.stop()).toBe(0);
    // Stopping `up` drains and stops every replica process it started, and its nats-server.
    for (const pid of replicas) expect(alive(pid)).toBe(false);
  });

  it("answers the notes' curl body with MLflow predictions and the served model's headers", async () => {
    const r = await invoke("my-endpoint", {
      dataframe_split: { columns: ["feature1", "feature2"], data: [[1.0, 3.5]] },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/application\/json/);
    expectClose(r.json.predictions, await lrReference(LR1, [[1.0, 3.5]]));
    expect(r.headers.get("x-served-model")).toBe("catalog_schema_my_model-1");
    expect(r.headers.get("x-model-name")).toBe("catalog.schema.my_model");
    expect(r.headers.get("x-model-version")).toBe("1");
    expect(r.headers.get("x-request-id")).toBeTruthy();
  });

  it("runs a logistic regression's batches on the replica's own thread, with the reference's predictions", async () => {
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    const latest = new Map<string, ReplicaStatsSnapshot>();
    const sub = nc.subscribe(clusterNames(up.info().cluster).subjects.replicaStats("*"), {
      callback: (err, msg) => {
        const s = err ? undefined : msg.json<ReplicaStatsSnapshot>();
        if (s?.endpoint === "my-endpoint") latest.set(s.replica_id, s);
      },
    });
    const inlineBatches = () => [...latest.values()].reduce((n, s) => n + (s.batch_sites?.inline ?? 0), 0);
    try {
      // Requests one after another, every reply checked, until the replicas' stats count 20 batches run inline
      // (a replica starts in its worker threads and moves once it has measured both costs).
      const rand = prng(11);
      const deadline = Date.now() + 60_000;
      while (inlineBatches() < 20 && Date.now() < deadline) {
        const rows = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => [
          rand() * 8 - 4,
          rand() * 8 - 4,
        ]);
        const r = await invoke("my-endpoint", { dataframe_split: { columns: ["a", "b"], data: rows } });
        expect(r.status).toBe(200);
        expectClose(r.json.predictions, linearPredict({ inputs: 2, sigmoid: true }, rows).flat());
      }
      expect(inlineBatches()).toBeGreaterThanOrEqual(20);
      for (const s of latest.values()) {
        // Every batch ran on exactly one site.
        expect(s.batch_sites!.inline + s.batch_sites!.pool).toBe(s.batches);
      }
      expect([...latest.values()].some((s) => s.batch_sites!.site === "inline")).toBe(true);
    } finally {
      sub.unsubscribe();
      await nc.close();
    }
  });

  it("gives the same predictions for every MLflow body form and CSV", async () => {
    const rows = [
      [0.5, -1.25],
      [2, 0.25],
      [-3, 1],
    ];
    const want = await lrReference(LR1, rows);
    const bodies: unknown[] = [
      { dataframe_split: { columns: ["x1", "x2"], data: rows } },
      { dataframe_records: rows.map(([a, b]) => ({ x1: a, x2: b })) },
      { instances: rows },
      { inputs: rows },
      { inputs: { input: rows } },
      { instances: rows, params: {} },
    ];
    for (const body of bodies) {
      const r = await invoke("my-endpoint", body);
      expect(r.status, JSON.stringify(body)).toBe(200);
      expectClose(r.json.predictions, want);
    }
    const csv = await invoke("my-endpoint", `x1,x2\n${rows.map((r) => r.join(",")).join("\n")}\n`, {
      "content-type": "text/csv",
    });
    expect(csv.status).toBe(200);
    expectClose(csv.json.predictions, want);
  });

  it("matches named inputs by name and returns several outputs as records", async () => {
    const a = [[0.5], [-1]];
    const b = [
      [1, 2],
      [0.25, -0.5],
    ];
    const ref = await reference(MULTI, {
      a: { data: a.flat(), dims: [2, 1] },
      b: { data: b.flat(), dims: [2, 2] },
    });
    const labels = Array.from(ref.label!.data as BigInt64Array, Number);
    const probs = Array.from(ref.probabilities!.data as Float32Array);
    for (const body of [{ inputs: { a, b } }, { inputs: { b, a } }]) {
      const r = await invoke("multi-ep", body);
      expect(r.status).toBe(200);
      const preds = r.json.predictions as { label: number; probabilities: number[] }[];
      expect(preds.map((p) => p.label)).toEqual(labels);
      expectClose(
        preds.flatMap((p) => p.probabilities),
        probs,
      );
    }
  });

  it("speaks Open Inference Protocol v2", async () => {
    expect((await fetch(`${http}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${http}/v2/health/ready`)).status).toBe(200);
    const meta = await call("GET", "/v2/models/my-endpoint");
    expect(meta.status).toBe(200);
    expect(meta.json.inputs).toEqual([{ name: "input", datatype: "FP32", shape: [-1, 2] }]);
    const ready = await call("GET", "/v2/models/my-endpoint/ready");
    expect(ready.status).toBe(200);
    const rows = [
      [1, 2],
      [3, 4],
    ];
    const r = await call("POST", "/v2/models/my-endpoint/infer", {
      inputs: [{ name: "input", shape: [2, 2], datatype: "FP32", data: rows.flat() }],
    });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].name).toBe("output");
    expect(r.json.outputs[0].shape).toEqual([2, 1]);
    expectClose(r.json.outputs[0].data, await lrReference(LR1, rows));
  });

  it("answers raw NATS clients with the same JSON bodies", async () => {
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    try {
      const subject = clusterNames("sy").subjects.invoke("my-endpoint");
      const body = JSON.stringify({ dataframe_split: { columns: ["a", "b"], data: [[1.0, 3.5]] } });
      const reply = await nc.request(subject, body, { timeout: 10_000 });
      expectClose(reply.json<{ predictions: number[] }>().predictions, await lrReference(LR1, [[1.0, 3.5]]));
      expect(reply.headers?.get("x-served-model")).toBe("catalog_schema_my_model-1");
      const bad = await nc.request(clusterNames("sy").subjects.invoke("nope"), body, { timeout: 10_000 });
      expect(bad.json<{ error_code: string }>().error_code).toBe("RESOURCE_DOES_NOT_EXIST");
      expect(bad.headers?.get("x-switchyard-error-code")).toBe("RESOURCE_DOES_NOT_EXIST");
    } finally {
      await nc.close();
    }
  });

  it("answers every error with MLflow's body and status", async () => {
    const ok = { dataframe_split: { columns: ["a", "b"], data: [[1, 2]] } };
    const cases: [string, () => Promise<{ status: number; json: Record<string, any> }>, number, string][] = [
      [
        "no token",
        () => call("POST", "/serving-endpoints/my-endpoint/invocations", ok, { authorization: "" }),
        401,
        "UNAUTHENTICATED",
      ],
      [
        "malformed token",
        () => invoke("my-endpoint", ok, { authorization: "Bearer nope" }),
        401,
        "UNAUTHENTICATED",
      ],
      [
        "unknown token",
        () => invoke("my-endpoint", ok, { authorization: `Bearer syt_${"n".repeat(43)}` }),
        403,
        "PERMISSION_DENIED",
      ],
      ["malformed JSON", () => invoke("my-endpoint", "{not json"), 400, "BAD_REQUEST"],
      ["not an object", () => invoke("my-endpoint", "[1,2]"), 400, "BAD_REQUEST"],
      ["no input key", () => invoke("my-endpoint", { params: {} }), 400, "BAD_REQUEST"],
      ["two input keys", () => invoke("my-endpoint", { ...ok, instances: [[1, 2]] }), 400, "BAD_REQUEST"],
      [
        "wrong column count",
        () => invoke("my-endpoint", { dataframe_split: { columns: ["a"], data: [[1]] } }),
        400,
        "INVALID_PARAMETER_VALUE",
      ],
      [
        "ragged rows",
        () => invoke("my-endpoint", { instances: [[1, 2], [3]] }),
        400,
        "INVALID_PARAMETER_VALUE",
      ],
      [
        "string in a float column",
        () => invoke("my-endpoint", { dataframe_split: { columns: ["a", "b"], data: [[1, "x"]] } }),
        400,
        "INVALID_PARAMETER_VALUE",
      ],
      ["unknown endpoint", () => invoke("nope", ok), 404, "RESOURCE_DOES_NOT_EXIST"],
      [
        "unknown served model",
        () => call("POST", "/serving-endpoints/my-endpoint/served-models/nope/invocations", ok),
        404,
        "RESOURCE_DOES_NOT_EXIST",
      ],
      [
        "unsupported media type",
        () => invoke("my-endpoint", "hello", { "content-type": "text/plain" }),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      ],
      [
        "too large",
        () => invoke("my-endpoint", `{"instances": [${"1,".repeat(9_000_000)}1]}`),
        413,
        "REQUEST_TOO_LARGE",
      ],
      [
        "deadline",
        // 20,000 rows take longer than 1 ms to parse and score, so the deadline always passes first.
        () =>
          invoke(
            "my-endpoint",
            { instances: Array.from({ length: 20_000 }, () => [1, 2]) },
            { "x-switchyard-timeout-ms": "1" },
          ),
        504,
        "DEADLINE_EXCEEDED",
      ],
      [
        "unknown endpoint GET",
        () => call("GET", "/api/2.0/serving-endpoints/nope"),
        404,
        "RESOURCE_DOES_NOT_EXIST",
      ],
    ];
    for (const [what, run, status, code] of cases) {
      const r = await run();
      expect(r.status, what).toBe(status);
      expect(r.json?.error_code, what).toBe(code);
      expect(typeof r.json?.message, what).toBe("string");
      expect(JSON.stringify(r.json), what).not.toMatch(/\n\s+at /);
    }
    const ragged = await invoke("my-endpoint", {
      dataframe_split: { columns: ["a", "b"], data: [[1, "x"]] },
    });
    expect(ragged.json.message).toMatch(/b/);
    // The replica survived every bad request.
    expect((await invoke("my-endpoint", ok)).status).toBe(200);
  });

  it("lists every problem of a bad config at once and keeps the old config serving", async () => {
    const r = await call("PUT", "/api/2.0/serving-endpoints/my-endpoint/config", {
      served_entities: [
        { name: "a", entity_name: "catalog.schema.my_model", entity_version: "99" },
        { name: "a", entity_name: "no.such.model", entity_version: "1" },
        { name: "c", entity_name: "catalog.schema.my_model", entity_version: "@nope" },
      ],
      traffic_config: {
        routes: [
          { served_model_name: "a", traffic_percentage: 50 },
          { served_model_name: "c", traffic_percentage: 40 },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.json.error_code).toBe("INVALID_PARAMETER_VALUE");
    for (const part of ["99", "no.such.model", "alias 'nope'", "twice", "100"])
      expect(r.json.message).toContain(part);
    const after = await invoke("my-endpoint", { instances: [[1, 2]] });
    expect(after.status).toBe(200);
    expect(after.headers.get("x-model-version")).toBe("1");
  });

  it("splits traffic by traffic_percentage", async () => {
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "ab",
      config: {
        served_entities: [
          {
            name: "champion",
            entity_name: "catalog.schema.my_model",
            entity_version: "1",
            workload_size: "Small",
          },
          {
            name: "challenger",
            entity_name: "catalog.schema.my_model",
            entity_version: "2",
            workload_size: "Small",
          },
        ],
        traffic_config: {
          routes: [
            { served_model_name: "champion", traffic_percentage: 80 },
            { served_model_name: "challenger", traffic_percentage: 20 },
          ],
        },
      },
    });
    expect(created.status).toBe(200);
    await waitReady("ab");
    const counts: Record<string, number> = {};
    const n = 1000;
    const [ref1, ref2] = [await lrReference(LR1, [[1, 1]]), await lrReference(LR2, [[1, 1]])];
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, () => invoke("ab", { instances: [[1, 1]] })),
      );
      for (const r of batch) {
        expect(r.status).toBe(200);
        const served = r.headers.get("x-served-model")!;
        counts[served] = (counts[served] ?? 0) + 1;
        expectClose(r.json.predictions, served === "champion" ? ref1 : ref2);
      }
    }
    expect((counts.champion ?? 0) + (counts.challenger ?? 0)).toBe(n);
    // 80/20 over 1,000 requests: the standard deviation is 1.3 points; 5 points is a generous bound.
    expect(Math.abs((counts.champion ?? 0) / n - 0.8)).toBeLessThan(0.05);
    const one = await call("POST", "/serving-endpoints/ab/served-models/challenger/invocations", {
      instances: [[1, 1]],
    });
    expect(one.headers.get("x-served-model")).toBe("challenger");
  });

  it("follows an alias: moving @champion rolls the endpoint to the new version", async () => {
    expect(
      (await cli(["models", "alias", "set", "catalog.schema.my_model", "champion", "1"], env())).code,
    ).toBe(0);
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "by-alias",
      config: {
        served_entities: [
          { name: "main", entity_name: "catalog.schema.my_model", entity_version: "@champion" },
        ],
      },
    });
    expect(created.status).toBe(200);
    await waitReady("by-alias");
    expect((await invoke("by-alias", { instances: [[1, 1]] })).headers.get("x-model-version")).toBe("1");
    expect(
      (await cli(["models", "alias", "set", "catalog.schema.my_model", "champion", "2"], env())).code,
    ).toBe(0);
    await eventually(
      async () =>
        (await invoke("by-alias", { instances: [[1, 1]] })).headers.get("x-model-version") === "2"
          ? true
          : undefined,
      "the alias move to roll the endpoint",
      90_000,
    );
    const got = await waitReady("by-alias");
    expect(JSON.stringify(got.config)).toContain('"2"');
  });

  it("updates without losing a request under a steady load", async () => {
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "rolling",
      config: { served_entities: [{ entity_name: "catalog.schema.my_model", entity_version: "1" }] },
    });
    expect(created.status).toBe(200);
    await waitReady("rolling");
    let stop = false;
    const results: { status: number; version: string | null }[] = [];
    const loop = async () => {
      while (!stop) {
        const r = await invoke("rolling", { instances: [[0.5, 0.5]] });
        results.push({ status: r.status, version: r.headers.get("x-model-version") });
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await eventually(() => (results.length >= 16 ? true : undefined), "version 1 to answer the load");
    const put = await call("PUT", "/api/2.0/serving-endpoints/rolling/config", {
      served_entities: [{ entity_name: "catalog.schema.my_model", entity_version: "2" }],
    });
    expect(put.status).toBe(200);
    const conflict = await call("PUT", "/api/2.0/serving-endpoints/rolling/config", {
      served_entities: [{ entity_name: "catalog.schema.my_model", entity_version: "1" }],
    });
    expect(conflict.status).toBe(409);
    expect(conflict.json.error_code).toBe("RESOURCE_CONFLICT");
    await waitReady("rolling");
    // Keep the load on until version 2 answers it: one round of every loop in a row from version 2.
    await eventually(
      () => {
        const tail = results.slice(-16);
        return tail.length === 16 && tail.every((r) => r.version === "2") ? true : undefined;
      },
      "version 2 to answer the load",
      60_000,
    );
    stop = true;
    await Promise.all(loops);
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.at(-1)!.version).toBe("2");
    expect(results.some((r) => r.version === "1")).toBe(true);
  });

  it("survives kill -9 of a replica under load: every request succeeds or fails retryably, none hangs", async () => {
    // The previous test's update may still be retiring its old replica: wait until one serves.
    const pids = await eventually(async () => {
      const now = await replicaPids("my-endpoint");
      return now.length === 1 ? now : undefined;
    }, "exactly one READY replica of my-endpoint");
    let stop = false;
    const results: { status: number; ms: number; code?: string }[] = [];
    const loop = async () => {
      while (!stop) {
        const t0 = Date.now();
        const r = await invoke("my-endpoint", { instances: [[1, 2]] }, { "x-switchyard-timeout-ms": "5000" });
        results.push({ status: r.status, ms: Date.now() - t0, code: r.json?.error_code });
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await eventually(() => (results.length >= 16 ? true : undefined), "the load to be answered");
    process.kill(pids[0]!, "SIGKILL");
    // The load goes on through the outage until the agent has a new replica READY in place of the killed one.
    await eventually(
      async () => {
        const now = await replicaPids("my-endpoint");
        return now.length === 1 && now[0] !== pids[0] ? true : undefined;
      },
      "a new replica in place of the killed one",
      60_000,
    );
    await eventually(
      async () => ((await invoke("my-endpoint", { instances: [[1, 2]] })).status === 200 ? true : undefined),
      "the replica to come back",
      60_000,
    );
    stop = true;
    await Promise.all(loops);
    expect(results.length).toBeGreaterThan(20);
    for (const r of results) {
      expect([200, 503, 504]).toContain(r.status);
      expect(r.ms).toBeLessThan(5000 + 2000);
    }
  });

  it("refuses overload fast with 503 and Retry-After", async () => {
    expect(await register("slow", SLOW)).toBe(1);
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "tiny",
      config: {
        served_entities: [{ entity_name: "slow", entity_version: "1", max_queue: 1, max_batch_size: 1 }],
      },
    });
    expect(created.status).toBe(200);
    await waitReady("tiny");
    const row = Array.from({ length: 256 }, (_, i) => (i % 7) / 7);
    const all = await Promise.all(Array.from({ length: 64 }, () => invoke("tiny", { instances: [row] })));
    const refused = all.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(all.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
    for (const r of refused) {
      expect(r.json.error_code).toBe("TEMPORARILY_UNAVAILABLE");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    }
  });

  it("manages endpoints from the CLI", async () => {
    const file = path.join(tempDir("sy-cfg-"), "endpoint.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "cli-ep",
        config: {
          served_models: [
            { model_name: "catalog.schema.my_model", model_version: "2", workload_size: "Small" },
          ],
        },
      }),
    );
    const created = await cli(["endpoints", "create", "--config", file, "--wait", "--json"], env());
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout).state.ready).toBe("READY");
    const listed = JSON.parse((await cli(["endpoints", "list", "--json"], env())).stdout);
    expect(listed.endpoints.map((e: { name: string }) => e.name)).toContain("cli-ep");
    const inv = await cli(["invoke", "cli-ep", "--data", '{"instances": [[1, 2]]}'], env());
    expect(inv.code).toBe(0);
    expectClose(JSON.parse(inv.stdout).predictions, await lrReference(LR2, [[1, 2]]));
    const bad = await cli(["invoke", "cli-ep", "--data", '{"instances": [[1]]}'], env());
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: /);
    expect((await cli(["endpoints", "delete", "cli-ep"], env())).code).toBe(0);
    await eventually(
      async () => ((await invoke("cli-ep", { instances: [[1, 2]] })).status === 404 ? true : undefined),
      "delete",
    );
  });
});
