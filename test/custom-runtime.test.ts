// The custom flavor below the replica: request bodies → the Frame `predict` gets (MLflow's rules, signature
// checks), and the model runtime loading real bundles into worker threads. References are hand-computed or
// from raw onnxruntime-node.
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { Frame } from "@switchyard/data";
import {
  customModelFrame,
  mlflowColumnSignature,
  parseJsonBody,
  parseRequestBody,
} from "@switchyard/formats";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { type Signature, SwitchyardError } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { ModelRunner } from "@switchyard/runtime";
import { tempDir } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyFixture, ENSEMBLE_LR, ENSEMBLE_MLP, ensembleDir } from "./helpers/custom.js";

const frameOf = (body: unknown, sig: Signature | null = null) =>
  customModelFrame(parseRequestBody(parseJsonBody(JSON.stringify(body))).input, sig);

const TEXT_SIG = mlflowColumnSignature(
  { inputs: [{ name: "text", type: "string" }], outputs: [{ name: "label", type: "string" }], params: null },
  "signature.json",
);

describe("request bodies → the frame a custom model gets", () => {
  it("reads instances of scalars as one column named 0, or the signature's name", () => {
    const f = frameOf({ instances: ["good", "meh"] });
    expect(f.columns).toEqual(["0"]);
    expect(f.column("0")).toEqual(["good", "meh"]);
    expect(frameOf({ instances: ["good", "meh"] }, TEXT_SIG).columns).toEqual(["text"]);
    expect(frameOf({ inputs: ["a"] }, TEXT_SIG).column("text")).toEqual(["a"]);
  });

  it("reads lists of rows as columns 0..k-1, dataframes and records as they are", () => {
    const rows = frameOf({
      instances: [
        [1, 2],
        [3, 4],
      ],
    });
    expect(rows.columns).toEqual(["0", "1"]);
    expect(Array.from(rows.column("1") as Float64Array)).toEqual([2, 4]);
    const split = frameOf({
      dataframe_split: { columns: ["text"], data: [["This is GOOD"], ["bad movie"]] },
    });
    expect(split.rows()).toEqual([{ text: "This is GOOD" }, { text: "bad movie" }]);
    expect(frameOf({ instances: [{ a: 1, b: "x" }] }).columns).toEqual(["a", "b"]);
    expect(frameOf({ inputs: { a: [1, 2], b: ["x", "y"] } }).columns).toEqual(["a", "b"]);
  });

  it("checks and casts columns against a signature, naming the column", () => {
    const sig = mlflowColumnSignature(
      {
        inputs: [
          { name: "n", type: "long" },
          { name: "text", type: "string" },
        ],
        outputs: null,
        params: null,
      },
      "signature.json",
    );
    const f = frameOf({ dataframe_records: [{ text: "a", n: 3 }] }, sig);
    expect(f.columns).toEqual(["n", "text"]);
    expect(f.kind("n")).toBe("int64");
    expect(f.column("n")).toEqual(new BigInt64Array([3n]));
    const problems: [unknown, RegExp][] = [
      [{ dataframe_split: { columns: ["text"], data: [["a"]] } }, /missing column 'n'/],
      [{ dataframe_records: [{ n: 1, text: "a", extra: 2 }] }, /unexpected column 'extra'/],
      [{ dataframe_records: [{ n: 1.5, text: "a" }] }, /column 'n' row 0: 1.5 is not a whole number/],
      [{ dataframe_records: [{ n: 1, text: 2 }] }, /column 'text' holds float64 numbers; expected string/],
    ];
    for (const [body, message] of problems) {
      let err: unknown;
      try {
        frameOf(body, sig);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(body)).toBeInstanceOf(SwitchyardError);
      expect((err as SwitchyardError).code).toBe("INVALID_PARAMETER_VALUE");
      expect((err as SwitchyardError).message).toMatch(message);
    }
  });
});

describe("the model runtime with custom models", () => {
  let nc: NatsConnection;
  let registry: Registry;
  const runners: ModelRunner[] = [];
  beforeAll(async () => {
    nc = await connectNats({ servers: inject("natsUrl"), name: "custom-runtime-test" });
    registry = await Registry.open(nc, { cluster: `t${randomUUID().replaceAll("-", "").slice(0, 12)}` });
  });
  afterAll(async () => {
    await Promise.all(runners.map((r) => r.close()));
    await nc?.close();
  });
  const load = async (name: string, dir: string, threads = 1) => {
    const version = await registerModel(registry, name, dir, { flavor: "custom" });
    const runner = await ModelRunner.load({ registry, version, cacheDir: tempDir("sy-cache-"), threads });
    runners.push(runner);
    return runner;
  };

  it("runs the notes' example in worker threads", async () => {
    const runner = await load("sentiment", copyFixture("sentiment"), 2);
    expect(runner.frames).toBe(true);
    expect(runner.batches).toBe(true);
    const out = await runner.predict(Frame.fromColumns({ text: ["This is GOOD", "bad movie", "Good"] }));
    expect(out).toEqual([{ name: "predictions", dtype: "string", shape: [3], data: ["OK", "BAD", "OK"] }]);
  });

  it("returns a Frame built with the bundle's own import of @switchyard/model as named outputs", async () => {
    const runner = await load("scorer", copyFixture("text-two-outputs"));
    const out = await runner.predict(Frame.fromColumns({ text: ["Good, GOOD day!", "bad", ""] }));
    expect(out.map((t) => t.name)).toEqual(["label", "score"]);
    expect(out[0]!.data).toEqual(["positive", "negative", "negative"]);
    expect(Array.from(out[1]!.data as Float64Array)).toEqual([2 / 3, -1, 0]);
  });

  it("learns static batching = false at warm-up", async () => {
    const runner = await load("hangs", copyFixture("hangs"));
    expect(runner.batches).toBe(false);
  });

  it("refuses a result whose length is not the input's rows, naming the model (INTERNAL_ERROR)", async () => {
    const dir = join(tempDir("sy-custom-"), "wrong");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "model.js"),
      'export default class Wrong { predict(input) { return input.length === 1 ? { a: 1 } : ["just one"]; } }\n',
    );
    const runner = await load("wrong", dir);
    const two = Frame.fromColumns({ x: [1, 2] });
    await expect(runner.predict(two)).rejects.toMatchObject({
      code: "INTERNAL_ERROR",
      message: "models:/wrong/1: predict() returned 1 values for 2 input rows; it must return one per row",
    });
    await expect(runner.predict(Frame.fromColumns({ x: [1] }))).rejects.toMatchObject({
      code: "INTERNAL_ERROR",
      message: "models:/wrong/1: predict() returned object; expected an array, a typed array or a Frame",
    });
  });

  it("fails to load with MALFORMED_MODEL and load()'s message when load() throws", async () => {
    const version = await registerModel(registry, "load-fails", copyFixture("load-fails"), {
      flavor: "custom",
    });
    const err = await ModelRunner.load({
      registry,
      version,
      cacheDir: tempDir("sy-cache-"),
      threads: 1,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe("MALFORMED_MODEL");
    expect((err as SwitchyardError).message).toBe(
      "models:/load-fails/1: load() failed: weights.bin is missing from the model directory",
    );
  });

  it("combines two ONNX artifacts opened with context.onnx", async () => {
    const runner = await load("ensemble", ensembleDir());
    const rows = [
      [0.5, -1, 2],
      [1, 1, 1],
      [-2, 0.25, 0],
    ];
    const out = await runner.predict(
      Frame.fromColumns({ a: rows.map((r) => r[0]!), b: rows.map((r) => r[1]!), c: rows.map((r) => r[2]!) }),
    );
    const x = new ort.Tensor("float32", Float32Array.from(rows.flat()), [3, 3]);
    const lr = await ort.InferenceSession.create(ENSEMBLE_LR);
    const mlp = await ort.InferenceSession.create(ENSEMBLE_MLP);
    const a = (await lr.run({ input: x })).output!.data as Float32Array;
    const b = (await mlp.run({ features: x })).prob!.data as Float32Array;
    await lr.release();
    await mlp.release();
    const got = out[0]!.data as Float64Array;
    expect(got).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(Math.abs(got[i]! - (a[i]! + b[i]!) / 2)).toBeLessThan(1e-5);
  });
});
