// Custom models end to end, as the notes' user drives them: one `switchyard up`, model directories outside the
// repo registered with the CLI (`--flavor custom`), endpoints created with Databricks bodies, invocations over
// HTTP. References are hand-computed or come from raw onnxruntime-node, never from Switchyard code.
import path from "node:path";
import { tempDir } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFixture, ENSEMBLE_LR, ENSEMBLE_MLP, ensembleDir } from "./helpers/custom.js";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

type Cluster = ReturnType<typeof clusterClient>;

const noStack = (body: unknown) => expect(JSON.stringify(body)).not.toMatch(/\n\s+at |\\n\s+at /);

describe("custom models through switchyard up", () => {
  let up: Up;
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  let call: Cluster["call"];
  let invoke: Cluster["invoke"];
  let waitReady: Cluster["waitReady"];
  let replicaPids: Cluster["replicaPids"];
  const endpointState = async (name: string) =>
    (await call("GET", `/api/2.0/serving-endpoints/${name}`)).json?.state as
      | { ready: string; config_update: string; message?: string }
      | undefined;
  const register = async (name: string, dir: string) => {
    const r = await cli(["models", "register", name, dir, "--flavor", "custom", "--json"], env());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { version: number; flavor: string };
  };
  const createEndpoint = async (name: string, entity: string, extra: Record<string, unknown> = {}) => {
    const r = await call("POST", "/api/2.0/serving-endpoints", {
      name,
      config: { served_entities: [{ entity_name: entity, entity_version: "1", ...extra }] },
    });
    expect(r.status).toBe(200);
  };
  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-custom-up-"), "data"));
    ({ call, invoke, waitReady, replicaPids } = clusterClient(up));
    const registered = await Promise.all([
      register("catalog.schema.custom_model", copyFixture("sentiment")),
      register("ensemble", ensembleDir()),
      register("scorer", copyFixture("text-two-outputs")),
      register("throws", copyFixture("throws")),
      register("hangs", copyFixture("hangs")),
      register("crashes", copyFixture("crashes")),
      register("load-fails", copyFixture("load-fails")),
    ]);
    for (const v of registered) expect(v).toMatchObject({ version: 1, flavor: "custom" });
    // The notes' create body, as is.
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "custom-model-endpoint",
      config: {
        served_models: [
          {
            name: "custom-model",
            model_name: "catalog.schema.custom_model",
            model_version: "1",
            workload_size: "Small",
          },
        ],
      },
    });
    expect(created.status).toBe(200);
    // A 20 ms batching window, so concurrent requests share a predict() call.
    await createEndpoint("ensemble-ep", "ensemble", { max_delay_us: 20_000 });
    await createEndpoint("scorer-ep", "scorer");
    await createEndpoint("throws-ep", "throws");
    await createEndpoint("hangs-ep", "hangs");
    await createEndpoint("crashes-ep", "crashes");
    for (const ep of [
      "custom-model-endpoint",
      "ensemble-ep",
      "scorer-ep",
      "throws-ep",
      "hangs-ep",
      "crashes-ep",
    ])
      await waitReady(ep);
  }, 120_000);

  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
  });

  it("serves the notes' example: dataframe_split and instances of strings → OK/BAD", async () => {
    const split = await invoke("custom-model-endpoint", {
      dataframe_split: { columns: ["text"], data: [["This is GOOD"], ["bad movie"]] },
    });
    expect(split.status).toBe(200);
    expect(split.json).toEqual({ predictions: ["OK", "BAD"] });
    expect(split.headers.get("x-served-model")).toBe("custom-model");
    expect(split.headers.get("x-model-name")).toBe("catalog.schema.custom_model");
    const instances = await invoke("custom-model-endpoint", { instances: ["good", "meh"] });
    expect(instances.status).toBe(200);
    expect(instances.json).toEqual({ predictions: ["OK", "BAD"] });
    const csv = await invoke("custom-model-endpoint", "text\nso GOOD\nnope\n", {
      "content-type": "text/csv",
    });
    expect(csv.json).toEqual({ predictions: ["OK", "BAD"] });
  });

  it("serves an ensemble equal to the mean of its two ONNX models run directly, batched", async () => {
    const rows = Array.from({ length: 24 }, (_, i) => [i / 7 - 1.5, Math.sin(i), (i % 5) - 2]);
    const x = new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, 3]);
    const lr = await ort.InferenceSession.create(ENSEMBLE_LR);
    const mlp = await ort.InferenceSession.create(ENSEMBLE_MLP);
    const a = (await lr.run({ input: x })).output!.data as Float32Array;
    const b = (await mlp.run({ features: x })).prob!.data as Float32Array;
    await Promise.all([lr.release(), mlp.release()]);
    const want = rows.map((_, i) => (a[i]! + b[i]!) / 2);

    const whole = await invoke("ensemble-ep", {
      dataframe_split: { columns: ["f1", "f2", "f3"], data: rows },
    });
    expect(whole.status).toBe(200);
    (whole.json.predictions as number[]).forEach((p, i) => {
      expect(Math.abs(p - want[i]!)).toBeLessThan(1e-5);
    });

    // One row per request, all at once: answers still match row for row, and some share a batch.
    const single = await Promise.all(
      rows.map((r) => invoke("ensemble-ep", { dataframe_split: { columns: ["f1", "f2", "f3"], data: [r] } })),
    );
    single.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.json.predictions).toHaveLength(1);
      expect(Math.abs(r.json.predictions[0] - want[i]!)).toBeLessThan(1e-5);
    });
    expect(Math.max(...single.map((r) => Number(r.headers.get("x-switchyard-batch-size"))))).toBeGreaterThan(
      1,
    );
  });

  it("returns two named outputs as MLflow records, and validates requests against signature.json", async () => {
    const r = await invoke("scorer-ep", { instances: ["Good, GOOD day!", "bad"] });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      predictions: [
        { label: "positive", score: 2 / 3 },
        { label: "negative", score: -1 },
      ],
    });
    const records = await invoke("scorer-ep", { dataframe_records: [{ text: "good" }] });
    expect(records.json).toEqual({ predictions: [{ label: "positive", score: 1 }] });
    const cases: [unknown, string][] = [
      [{ dataframe_split: { columns: ["txt"], data: [["good"]] } }, "'txt'"],
      [{ dataframe_split: { columns: ["text", "extra"], data: [["good", 1]] } }, "'extra'"],
      [{ dataframe_split: { columns: ["text"], data: [[1]] } }, "'text'"],
    ];
    for (const [body, names] of cases) {
      const bad = await invoke("scorer-ep", body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.json.error_code).toBe("INVALID_PARAMETER_VALUE");
      expect(bad.json.message).toContain(names);
    }
  });

  it("answers a throw in predict with 400 BAD_REQUEST and the model's message, then keeps serving", async () => {
    const r = await invoke("throws-ep", { instances: ["ok", "boom"] });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ error_code: "BAD_REQUEST", message: "cannot score 'boom': no such word" });
    noStack(r.json);
    const after = await invoke("throws-ep", { instances: ["fine", "also fine"] });
    expect(after.status).toBe(200);
    expect(after.json).toEqual({ predictions: ["OK", "OK"] });
  });

  it("bounds a predict that never returns by the deadline (504) and replaces its worker", async () => {
    const pids = await replicaPids("hangs-ep");
    const t0 = Date.now();
    const r = await invoke("hangs-ep", { instances: ["hang"] }, { "x-switchyard-timeout-ms": "1500" });
    expect(r.status).toBe(504);
    expect(r.json.error_code).toBe("DEADLINE_EXCEEDED");
    expect(Date.now() - t0).toBeLessThan(10_000);
    const after = await eventually(
      async () => {
        const a = await invoke("hangs-ep", { instances: ["fine"] }, { "x-switchyard-timeout-ms": "5000" });
        return a.status === 200 ? a : undefined;
      },
      "the hung worker to be replaced",
      20_000,
    );
    expect(after.json).toEqual({ predictions: ["OK"] });
    expect(await replicaPids("hangs-ep")).toEqual(pids);
  });

  it("replaces a worker whose thread dies without taking the replica down", async () => {
    const pids = await replicaPids("crashes-ep");
    expect(pids).toHaveLength(1);
    const exit = await invoke("crashes-ep", { instances: ["exit"] });
    expect(exit.status).toBe(500);
    expect(exit.json.error_code).toBe("INTERNAL_ERROR");
    expect(exit.json.message).toMatch(/models:\/crashes\/1: the worker thread running the model died/);
    noStack(exit.json);
    // Answered first, then its thread dies of an uncaught exception thrown from a timer.
    const timer = await invoke("crashes-ep", { instances: ["timer"] });
    expect(timer.status).toBe(200);
    for (let i = 0; i < 5; i++) {
      const ok = await invoke("crashes-ep", { instances: ["fine"] }, { "x-switchyard-timeout-ms": "10000" });
      expect(ok.status).toBe(200);
      expect(ok.json).toEqual({ predictions: ["OK"] });
    }
    expect(await replicaPids("crashes-ep")).toEqual(pids);
  });

  it("reports a load() failure as UPDATE_FAILED with the reason while the old config keeps serving", async () => {
    const put = await call("PUT", "/api/2.0/serving-endpoints/throws-ep/config", {
      served_entities: [{ entity_name: "load-fails", entity_version: "1" }],
    });
    expect(put.status).toBe(200);
    const state = await eventually(
      async () => {
        const s = await endpointState("throws-ep");
        return s?.config_update === "UPDATE_FAILED" ? s : undefined;
      },
      "the update to fail",
      60_000,
    );
    expect(state.message).toContain("load() failed: weights.bin is missing from the model directory");
    const still = await invoke("throws-ep", { instances: ["fine"] });
    expect(still.status).toBe(200);
    expect(still.headers.get("x-model-name")).toBe("throws");
  });

  it("refuses a model that does not bundle at registration, with esbuild's message", async () => {
    const r = await cli(
      ["models", "register", "broken", copyFixture("bad-syntax"), "--flavor", "custom"],
      env(),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/model\.ts:3:\d+: Expected "\)" but found "\{"/);
    const list = await cli(["models", "list", "--json"], env());
    expect(list.stdout).not.toContain('"broken"');
  });
});
