// `loadModel(uri)` for scripts against a real nats-server: ONNX predictions equal raw onnxruntime-node on the
// same rows whatever the input form, an alias is resolved once, the notes' text classifier runs in-process, and
// `predictRaw` answers exactly what a realtime endpoint (coordinator + node agent + replica processes) answers.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { SwitchyardClient } from "@switchyard/client";
import { type LocalModel, loadModel, predictionsOf } from "@switchyard/client/local";
import { Coordinator } from "@switchyard/coordinator";
import { Frame, type Tensor } from "@switchyard/data";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { SwitchyardError } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildLinear, buildMultiInput, eventually, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";

const LR1 = buildLinear({ inputs: 3, sigmoid: true, weights: [0.5, -1.5, 0.25], bias: [0.1] });
const LR2 = buildLinear({ inputs: 3, sigmoid: true, weights: [2, 1, -1], bias: [-0.5] });
const MULTI = buildMultiInput();
const ROWS = [
  [1, 2, -0.5],
  [0.5, -3, 4],
  [-2, 0.25, 0],
  [3.5, 1, 1.125],
];
const COLS = ["x1", "x2", "x3"];
const frameOf = (rows: number[][]) =>
  Frame.fromColumns(Object.fromEntries(COLS.map((c, j) => [c, rows.map((r) => r[j]!)])));
const recordsOf = (rows: number[][]) => rows.map((r) => Object.fromEntries(COLS.map((c, j) => [c, r[j]!])));
const MULTI_BODY = {
  inputs: {
    a: [[0.5], [-1], [2]],
    b: [
      [1, 2],
      [0.25, -0.75],
      [-3, 1.5],
    ],
  },
};

/** Raw onnxruntime-node on float32 feeds: the reference, independent of Switchyard's code. */
async function reference(
  model: Uint8Array,
  feeds: Record<string, number[][]>,
): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  const input: Record<string, ort.Tensor> = {};
  for (const [name, rows] of Object.entries(feeds)) {
    input[name] = new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
  }
  const out = await session.run(input);
  await session.release();
  return out;
}

const lrReference = async (model: Uint8Array, rows: number[][]) =>
  Array.from((await reference(model, { input: rows })).output!.data as Float32Array);

function expectClose(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-6) {
  expect(actual).toHaveLength(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThan(tol);
}

async function rejection(p: Promise<unknown>): Promise<SwitchyardError> {
  const err = await p.then(
    () => new Error("expected a rejection, but it succeeded"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SwitchyardError);
  return err as SwitchyardError;
}

let nc: NatsConnection;
let cluster: string;
let registry: Registry;
const loaded: LocalModel[] = [];

/** Loads through its own connection (options, as a script passes them), closed after the test file. */
async function load(uri: string, threads?: number): Promise<LocalModel> {
  const model = await loadModel(uri, {
    nats: { servers: inject("natsUrl") },
    cluster,
    ...(threads ? { threads } : {}),
  });
  loaded.push(model);
  return model;
}

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "load-model-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "lr", writeTempModel(LR1), { alias: "champion" });
  await registerModel(registry, "lr", writeTempModel(LR2));
  await registerModel(registry, "multi", writeTempModel(MULTI));
  await registerModel(registry, "catalog.schema.custom_model", copyFixture("sentiment"), {
    flavor: "custom",
  });
});
afterAll(async () => {
  await Promise.all(loaded.map((m) => m.close()));
  await nc?.close();
});

describe("loadModel with ONNX models", () => {
  it("predicts a Frame as raw onnxruntime does, and records and MLflow bodies the same", async () => {
    const model = await load("models:/lr/1");
    expect(model.version).toMatchObject({ name: "lr", version: 1, flavor: "onnx" });
    expect(model.version.signature?.inputs).toEqual([
      { name: "input", dtype: "float32", shape: ["batch", 3] },
    ]);
    const want = await lrReference(LR1, ROWS);
    const fromFrame = await model.predict(frameOf(ROWS));
    expect(fromFrame).toBeInstanceOf(Float32Array);
    expectClose(fromFrame as Float32Array, want);
    const inputs = [
      recordsOf(ROWS),
      { dataframe_split: { columns: COLS, data: ROWS } },
      { dataframe_records: recordsOf(ROWS) },
      { instances: ROWS },
    ];
    for (const input of inputs) expect(await model.predict(input), JSON.stringify(input)).toEqual(fromFrame);
  });

  it("returns several outputs as a Frame: one column per value of a row", async () => {
    const model = await load("models:/multi/1");
    const ref = await reference(MULTI, MULTI_BODY.inputs);
    const out = await model.predict(MULTI_BODY);
    expect(out).toBeInstanceOf(Frame);
    const frame = out as Frame;
    expect(frame.columns).toEqual(["label", "probabilities[0]", "probabilities[1]"]);
    expect(frame.column("label")).toEqual(ref.label!.data);
    const probs = ref.probabilities!.data as Float32Array;
    expectClose(frame.column("probabilities[0]") as Float32Array, [probs[0]!, probs[2]!, probs[4]!]);
    expectClose(frame.column("probabilities[1]") as Float32Array, [probs[1]!, probs[3]!, probs[5]!]);
  });

  it("resolves an alias once: the loaded model keeps its version after the alias moves", async () => {
    const champion = await load("models:/lr@champion");
    expect(champion.version.version).toBe(1);
    await registry.setAlias("lr", "champion", 2);
    const [want1, want2] = await Promise.all([lrReference(LR1, ROWS), lrReference(LR2, ROWS)]);
    expect(champion.version.version).toBe(1);
    expectClose((await champion.predict(frameOf(ROWS))) as Float32Array, want1);
    // The alias did move: a new load follows it, as does /latest.
    const moved = await load("models:/lr@champion");
    expect(moved.version.version).toBe(2);
    expectClose((await moved.predict(frameOf(ROWS))) as Float32Array, want2);
    expect((await load("models:/lr/latest")).version.version).toBe(2);
  });

  it("runs concurrent predictions on several threads, each answer its own rows", async () => {
    const model = await load("models:/lr/1", 2);
    const batches = [ROWS, ROWS.slice(1), ROWS.slice(0, 2), ROWS.slice(3)];
    const got = await Promise.all(batches.map((rows) => model.predict(frameOf(rows))));
    const want = await Promise.all(batches.map((rows) => lrReference(LR1, rows)));
    got.forEach((g, i) => {
      expectClose(g as Float32Array, want[i]!);
    });
  });
  it("keeps a cacheDir of your own after close, holding the verified artifacts", async () => {
    const cacheDir = tempDir("sy-load-cache-");
    const model = await loadModel("models:/lr/1", { nats: nc, cluster, cacheDir });
    await model.close();
    expect(readFileSync(join(cacheDir, "lr", "1", model.version.entry))).toEqual(Buffer.from(LR1));
    // The connection passed in is the caller's: still open.
    expect(nc.isClosed()).toBe(false);
  });
});

describe("loadModel with a custom model", () => {
  it("runs the notes' text classifier over strings", async () => {
    const model = await load("models:/catalog.schema.custom_model/1");
    expect(model.version).toMatchObject({ flavor: "custom", version: 1 });
    const text = ["This is GOOD", "bad movie", "good enough", "", "meh"];
    const want = ["OK", "BAD", "OK", "BAD", "BAD"];
    expect(await model.predict(Frame.fromColumns({ text }))).toEqual(want);
    expect(await model.predict(text.map((t) => ({ text: t })))).toEqual(want);
    expect(await model.predict({ instances: text })).toEqual(want);
  });
});

describe("the caller's data", () => {
  it("stays usable after predict: input columns are copied, not moved, to the worker thread", async () => {
    const dir = join(tempDir("sy-custom-"), "double");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "model.js"),
      'export default class Double { predict(input) { return Array.from(input.column("x"), (v) => v * 2); } }\n',
    );
    await registerModel(registry, "double", dir, { flavor: "custom" });
    const model = await load("models:/double/1");
    const frame = Frame.fromColumns({ x: Float64Array.of(1, 2, 3) });
    expect(Array.from((await model.predict(frame)) as ArrayLike<number>)).toEqual([2, 4, 6]);
    expect(frame.column("x")).toEqual(Float64Array.of(1, 2, 3));
    // The script's usual next step: the input with its prediction.
    expect(frame.withColumn("prediction", [2, 4, 6]).rows()[2]).toEqual({ x: 3, prediction: 6 });
  });
});

describe("loadModel errors", () => {
  it("an unknown model, version or alias is RESOURCE_DOES_NOT_EXIST", async () => {
    for (const [uri, message] of [
      ["models:/nope/1", "model 'nope' does not exist"],
      ["models:/lr/9", "version 9 of model 'lr' does not exist (latest is 2)"],
      ["models:/lr@gone", "alias 'gone' of model 'lr' does not exist (aliases: champion)"],
    ] as const) {
      const e = await rejection(load(uri));
      expect([e.code, e.message]).toEqual(["RESOURCE_DOES_NOT_EXIST", message]);
    }
  });

  it("a missing column is INVALID_PARAMETER_VALUE naming it", async () => {
    const model = await load("models:/multi/1");
    const e = await rejection(model.predict([{ a: 0.5 }]));
    expect([e.code, e.message]).toEqual(["INVALID_PARAMETER_VALUE", "missing column 'b' (expected float32)"]);
    const lr = await load("models:/lr/1");
    const narrow = await rejection(lr.predict([{ x1: 1, x2: 2 }]));
    expect([narrow.code, narrow.message]).toEqual([
      "INVALID_PARAMETER_VALUE",
      "model input 'input' takes 3 columns per row (float32 [batch, 3]); the request has 2: x1, x2",
    ]);
  });

  it("refuses a malformed URI and bad options before connecting", async () => {
    // Nothing listens there: a check made after connecting would fail with a connection error instead.
    const nats = { servers: "nats://127.0.0.1:1" };
    const cases: [Promise<unknown>, string][] = [
      [loadModel("models:/lr", { nats }), "model URI 'models:/lr' is malformed"],
      [loadModel("models:/lr/1", { nats, threads: 0 }), "options.threads must be a positive integer, got 0"],
      [loadModel("models:/lr/1", { nats, cluster: "a.b" }), "cluster"],
      [
        loadModel("models:/lr/1", { nats, cache: "/tmp" } as never),
        "options.cache is not an option of loadModel; the options are nats, cluster, cacheDir, threads",
      ],
    ];
    for (const [p, message] of cases) {
      const e = await rejection(p);
      expect(e.code).toBe("INVALID_PARAMETER_VALUE");
      expect(e.message).toContain(message);
    }
  });

  it("refuses params given both in the body and as an argument", async () => {
    const model = await load("models:/lr/1");
    const e = await rejection(model.predict({ instances: ROWS, params: { a: 1 } }, { b: 2 }));
    expect([e.code, e.message]).toEqual([
      "INVALID_PARAMETER_VALUE",
      "params are given twice: in the body and as predict's argument; pass them in one place",
    ]);
  });
});

describe("predictions as a script wants them", () => {
  const t = (name: string, shape: number[], data: Tensor["data"]): Tensor => ({
    name,
    dtype: data instanceof Float32Array ? "float32" : "string",
    shape,
    data,
  });

  it("one [N, k] output → N rows; several outputs with [N, 2, 2] → columns name[i][j]", () => {
    const rows = predictionsOf([t("y", [2, 3], Float32Array.of(1, 2, 3, 4, 5, 6))]);
    expect(rows).toEqual([Float32Array.of(1, 2, 3), Float32Array.of(4, 5, 6)]);
    const f = predictionsOf([
      t("label", [2], ["a", "b"]),
      t("m", [2, 2, 2], Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8)),
    ]) as Frame;
    expect(f.columns).toEqual(["label", "m[0][0]", "m[0][1]", "m[1][0]", "m[1][1]"]);
    expect(f.rows()).toEqual([
      { label: "a", "m[0][0]": 1, "m[0][1]": 2, "m[1][0]": 3, "m[1][1]": 4 },
      { label: "b", "m[0][0]": 5, "m[0][1]": 6, "m[1][0]": 7, "m[1][1]": 8 },
    ]);
  });

  it("outputs of different row counts cannot be a Frame", () => {
    expect(() => predictionsOf([t("a", [2], ["x", "y"]), t("b", [1], ["z"])])).toThrow(
      "the model's outputs have different row counts (a: [2], b: [1]); predictTensors() returns them as they are",
    );
  });
});

describe("predictRaw equals the realtime endpoint's reply", () => {
  const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });
  let coordinator: Coordinator;
  let agent: NodeAgent;
  let client: SwitchyardClient;

  beforeAll(async () => {
    coordinator = new Coordinator({ nc, cluster, logger: log });
    await coordinator.start();
    agent = new NodeAgent({
      nats: { servers: inject("natsUrl") },
      cluster,
      nodeId: "n1",
      threads: 4,
      logger: log,
    });
    await agent.start();
    client = SwitchyardClient.fromConnection(nc, { cluster });
    const endpoints = {
      "lr-ep": "lr",
      "multi-ep": "multi",
      "custom-ep": "catalog.schema.custom_model",
    };
    for (const [name, model] of Object.entries(endpoints)) {
      await client.endpoints.create({
        name,
        config: { served_entities: [{ entity_name: model, entity_version: "1", workload_size: "Small" }] },
      });
    }
    for (const name of Object.keys(endpoints)) {
      await eventually(
        async () => {
          const state = (await client.endpoints.get(name)).state as Record<string, string>;
          return state.ready === "READY" && state.config_update === "NOT_UPDATING" ? true : undefined;
        },
        `${name} READY`,
        60_000,
      );
    }
  });
  afterAll(async () => {
    await client?.close();
    await agent?.stop();
    await coordinator?.stop();
  });

  it("for ONNX models (one output, and several as records) and the custom model", async () => {
    const cases: [string, string, Record<string, unknown>][] = [
      ["lr-ep", "models:/lr/1", { dataframe_split: { columns: COLS, data: ROWS } }],
      ["lr-ep", "models:/lr/1", { dataframe_records: recordsOf(ROWS) }],
      ["multi-ep", "models:/multi/1", MULTI_BODY],
      [
        "custom-ep",
        "models:/catalog.schema.custom_model/1",
        { instances: ["This is GOOD", "bad movie", "Good"] },
      ],
    ];
    for (const [endpoint, uri, body] of cases) {
      const model = await load(uri);
      const served = await client.invoke(endpoint, body);
      expect(await model.predictRaw(body), `${endpoint} ${JSON.stringify(body)}`).toEqual(served);
    }
    // Sanity: the compared replies hold the predictions, not two equal errors or empty bodies.
    const lr = await load("models:/lr/1");
    expect((await lr.predictRaw(recordsOf(ROWS))).predictions).toHaveLength(ROWS.length);
    expectClose(
      (await client.invoke("lr-ep", { dataframe_records: recordsOf(ROWS) })).predictions as number[],
      await lrReference(LR1, ROWS),
    );
    expect(await client.invoke("custom-ep", { instances: ["good"] })).toEqual({ predictions: ["OK"] });
  });
});
