// The registry against a real nats-server: registration of ONNX files and MLflow directories, version
// allocation under contention, aliases and URIs, refusals that leave nothing behind, and artifact integrity.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { clusterNames, type ErrorCode, SwitchyardError } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import {
  buildLinear,
  buildMlp,
  buildMultiInput,
  columnSpec,
  prng,
  tempDir,
  tensorSpec,
  writeMlflowModelDir,
  writeTempModel,
} from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freshRegistry } from "./helpers/registry.js";

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "registry-test" });
});
afterAll(async () => {
  await nc?.close();
});

async function rejection(
  p: Promise<unknown>,
  code: ErrorCode,
  message?: string | RegExp,
): Promise<SwitchyardError> {
  const err = await p.then(
    () => {
      throw new Error(`expected ${code}, but it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SwitchyardError);
  const e = err as SwitchyardError;
  expect({ code: e.code, message: e.message }).toMatchObject({ code });
  if (typeof message === "string") expect(e.message).toBe(message);
  else if (message) expect(e.message).toMatch(message);
  expect(e.message).not.toContain("\n");
  return e;
}

/** Every live KV key and object of a cluster's registry buckets. */
async function bucketContents(cluster: string): Promise<{ keys: string[]; objects: string[] }> {
  const names = clusterNames(cluster);
  const kv = await new Kvm(nc).open(names.buckets.models);
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  const os = await new Objm(nc).open(names.buckets.artifacts);
  const objects = (await os.list()).filter((o) => !o.deleted).map((o) => o.name);
  return { keys: keys.sort(), objects: objects.sort() };
}

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("Registry", () => {
  it("registers an ONNX file: signature from the graph, artifact stored and verified, versions increment", async () => {
    const { reg, cluster } = await freshRegistry(nc);
    expect(await reg.listModels()).toEqual([]);
    const bytes = buildMultiInput();
    const path = writeTempModel(bytes, "classifier.onnx");

    const v1 = await registerModel(reg, "churn", path, { description: "first", tags: { team: "risk" } });
    expect(v1).toMatchObject({
      name: "churn",
      version: 1,
      flavor: "onnx",
      entry: "classifier.onnx",
      source: path,
      description: "first",
      tags: { team: "risk" },
      mlflow_signature: null,
      signature: {
        inputs: [
          { name: "a", dtype: "float32", shape: ["batch", 1] },
          { name: "b", dtype: "float32", shape: ["batch", 2] },
        ],
        outputs: [
          { name: "label", dtype: "int64", shape: ["batch"] },
          { name: "probabilities", dtype: "float32", shape: ["batch", 2] },
        ],
      },
    });
    expect(v1.artifacts).toEqual([
      {
        path: "classifier.onnx",
        digest: sha256(bytes),
        size: bytes.length,
        object: expect.stringMatching(/^churn\/[0-9a-f-]{36}\/classifier\.onnx$/),
      },
    ]);
    expect(Buffer.from(await reg.readArtifact(v1, "classifier.onnx")).equals(bytes)).toBe(true);
    await rejection(
      reg.readArtifact(v1, "nope.bin"),
      "RESOURCE_DOES_NOT_EXIST",
      /artifact 'nope\.bin' is not part of models:\/churn\/1/,
    );

    const v2 = await registerModel(reg, "churn", writeTempModel(buildLinear({ inputs: 3 })));
    expect(v2.version).toBe(2);
    expect(v2.artifacts[0]!.object).not.toBe(v1.artifacts[0]!.object);
    expect((await reg.listVersions("churn")).map((v) => v.version)).toEqual([1, 2]);
    expect(await reg.getVersion("churn", 1)).toEqual(v1);
    expect(await reg.getModel("churn")).toMatchObject({ name: "churn", latest_version: 2, aliases: {} });
    expect((await reg.listModels()).map((m) => m.name)).toEqual(["churn"]);
    expect((await bucketContents(cluster)).keys).toEqual([
      "model.churn",
      "version.churn.1",
      "version.churn.2",
    ]);
  });

  it("registers an MLflow model directory: every file stored, mlflow_signature kept, entry from the onnx flavor", async () => {
    const { reg } = await freshRegistry(nc);
    const onnxBytes = buildMultiInput();
    const signature = {
      inputs: columnSpec({ a: "float", b: "float" }),
      outputs: tensorSpec("int64", [-1], "label"),
      params: [{ name: "threshold", type: "double", default: 0.5, shape: null }],
    };
    const dir = writeMlflowModelDir({
      onnx: onnxBytes,
      dataFile: "clf.onnx",
      signature,
      extraFiles: { "extra/labels.txt": "no\nyes\n" },
    });
    const v = await registerModel(reg, "main.default.churn", dir);
    expect(v.version).toBe(1);
    expect(v.entry).toBe("clf.onnx");
    expect(v.mlflow_signature).toEqual(signature);
    expect(v.signature?.inputs.map((i) => i.name)).toEqual(["a", "b"]);
    const files = [
      "MLmodel",
      "clf.onnx",
      "conda.yaml",
      "extra/labels.txt",
      "python_env.yaml",
      "requirements.txt",
    ];
    expect(v.artifacts.map((a) => a.path)).toEqual(files);

    // fetchArtifacts writes every file, byte for byte, and returns where.
    const out = tempDir();
    const fetched = await reg.fetchArtifacts(v, out);
    expect(Object.keys(fetched).sort()).toEqual(files);
    for (const f of files) {
      expect(fetched[f]).toBe(join(out, ...f.split("/")));
      expect(readFileSync(fetched[f]!).equals(readFileSync(join(dir, ...f.split("/"))))).toBe(true);
    }
    // A verified local copy is reused; a tampered one is replaced.
    const mtime = statSync(fetched["clf.onnx"]!).mtimeMs;
    writeFileSync(fetched["conda.yaml"]!, "tampered");
    await reg.fetchArtifacts(v, out);
    expect(statSync(fetched["clf.onnx"]!).mtimeMs).toBe(mtime);
    expect(readFileSync(fetched["conda.yaml"]!, "utf8")).toBe(readFileSync(join(dir, "conda.yaml"), "utf8"));
    expect(readdirSync(out).filter((f) => f.includes(".partial-"))).toEqual([]);

    // A directory without a signature registers with mlflow_signature null; `dir/MLmodel` means the directory.
    const bare = writeMlflowModelDir({ onnx: buildLinear({ inputs: 2 }) });
    const v2 = await registerModel(reg, "main.default.churn", join(bare, "MLmodel"));
    expect(v2).toMatchObject({ version: 2, entry: "model.onnx", mlflow_signature: null });
  });

  it("ten concurrent registrations of one name get exactly versions 1..10", async () => {
    const { reg } = await freshRegistry(nc);
    const paths = Array.from({ length: 10 }, (_, i) => writeTempModel(buildLinear({ inputs: i + 1 })));
    const versions = await Promise.all(paths.map((p) => registerModel(reg, "cat.sch.racer", p)));
    expect(versions.map((v) => v.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Each version holds the model it was registered with.
    for (const v of versions) {
      const k = paths.indexOf(v.source) + 1;
      expect(v.signature?.inputs[0]?.shape).toEqual(["batch", k]);
    }
    expect((await reg.listVersions("cat.sch.racer")).map((v) => v.version)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    expect((await reg.getModel("cat.sch.racer")).latest_version).toBe(10);
    expect((await reg.resolve("models:/cat.sch.racer/latest")).version).toBe(10);
  });

  it("aliases: set, move, delete; URIs by version, alias and latest; names that share a prefix stay apart", async () => {
    const { reg } = await freshRegistry(nc);
    const path = writeTempModel(buildLinear({ inputs: 2 }));
    for (let i = 0; i < 4; i++) await registerModel(reg, "main.ml.fraud", path);
    await registerModel(reg, "main.ml", path);
    const other = await registerModel(reg, "main.ml2", path, { alias: "champion" });
    expect((await reg.getModel("main.ml2")).aliases).toEqual({ champion: other.version });

    expect((await reg.setAlias("main.ml.fraud", "champion", 1)).aliases).toEqual({ champion: 1 });
    expect((await reg.resolve("models:/main.ml.fraud@champion")).version).toBe(1);
    expect((await reg.setAlias("main.ml.fraud", "champion", 3)).aliases).toEqual({ champion: 3 });
    await reg.setAlias("main.ml.fraud", "challenger", 2);
    expect((await reg.resolve("models:/main.ml.fraud@champion")).version).toBe(3);
    expect((await reg.resolve({ name: "main.ml.fraud", kind: "alias", alias: "challenger" })).version).toBe(
      2,
    );
    expect((await reg.resolve("models:/main.ml.fraud/2")).version).toBe(2);
    expect((await reg.resolve("models:/main.ml.fraud/latest")).version).toBe(4);
    expect((await reg.resolve("models:/main.ml/latest")).version).toBe(1);

    // listVersions("main.ml") never sees versions of "main.ml.fraud" or "main.ml2".
    expect((await reg.listVersions("main.ml")).map((v) => [v.name, v.version])).toEqual([["main.ml", 1]]);
    expect((await reg.listVersions("main.ml.fraud")).map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect((await reg.listModels()).map((m) => m.name)).toEqual(["main.ml", "main.ml.fraud", "main.ml2"]);

    expect((await reg.deleteAlias("main.ml.fraud", "champion")).aliases).toEqual({ challenger: 2 });
    await rejection(
      reg.resolve("models:/main.ml.fraud@champion"),
      "RESOURCE_DOES_NOT_EXIST",
      "alias 'champion' of model 'main.ml.fraud' does not exist (aliases: challenger)",
    );
    await rejection(
      reg.deleteAlias("main.ml.fraud", "champion"),
      "RESOURCE_DOES_NOT_EXIST",
      /alias 'champion'/,
    );
    await rejection(
      reg.setAlias("main.ml.fraud", "champion", 9),
      "RESOURCE_DOES_NOT_EXIST",
      /version 9 of model 'main\.ml\.fraud'/,
    );
    await rejection(
      reg.setAlias("main.ml.fraud", "latest", 1),
      "INVALID_PARAMETER_VALUE",
      /alias 'latest' is invalid/,
    );
    await rejection(
      reg.setAlias("nope", "champion", 1),
      "RESOURCE_DOES_NOT_EXIST",
      /model 'nope' does not exist/,
    );
  });

  it("unknown model, version and alias are RESOURCE_DOES_NOT_EXIST naming them; bad names and URIs are invalid", async () => {
    const { reg } = await freshRegistry(nc);
    await registerModel(reg, "known", writeTempModel(buildLinear({ inputs: 1 })));
    await rejection(reg.getModel("ghost"), "RESOURCE_DOES_NOT_EXIST", "model 'ghost' does not exist");
    await rejection(reg.listVersions("ghost"), "RESOURCE_DOES_NOT_EXIST", "model 'ghost' does not exist");
    await rejection(
      reg.resolve("models:/ghost/1"),
      "RESOURCE_DOES_NOT_EXIST",
      "model 'ghost' does not exist",
    );
    await rejection(
      reg.resolve("models:/ghost/latest"),
      "RESOURCE_DOES_NOT_EXIST",
      "model 'ghost' does not exist",
    );
    await rejection(
      reg.resolve("models:/ghost@prod"),
      "RESOURCE_DOES_NOT_EXIST",
      "model 'ghost' does not exist",
    );
    await rejection(
      reg.resolve("models:/known/7"),
      "RESOURCE_DOES_NOT_EXIST",
      "version 7 of model 'known' does not exist (latest is 1)",
    );
    await rejection(
      reg.resolve("models:/known@prod"),
      "RESOURCE_DOES_NOT_EXIST",
      "alias 'prod' of model 'known' does not exist (it has no aliases)",
    );
    await rejection(reg.getModel("bad name"), "INVALID_PARAMETER_VALUE", /model name 'bad name' is invalid/);
    await rejection(reg.getModel("a.b.c.d"), "INVALID_PARAMETER_VALUE", /model name 'a\.b\.c\.d' is invalid/);
    await rejection(
      reg.resolve("runs:/abc/model"),
      "INVALID_PARAMETER_VALUE",
      /model URI 'runs:\/abc\/model' is malformed/,
    );
    await rejection(reg.getVersion("known", 0), "INVALID_PARAMETER_VALUE", /version '0' is invalid/);
  });

  it("refuses bad input with one-line errors and leaves no model, version or object behind", async () => {
    const { reg, cluster } = await freshRegistry(nc);
    const rand = prng(11);
    const noise = writeTempModel(
      Uint8Array.from({ length: 10_000 }, () => Math.floor(rand() * 256)),
      "x.onnx",
    );
    const sklearnOnly = writeMlflowModelDir({ onnx: buildLinear({ inputs: 2 }), withoutOnnxFlavor: true });
    const noMlmodel = tempDir();
    writeFileSync(join(noMlmodel, "model.onnx"), buildLinear({ inputs: 2 }));
    const missingData = writeMlflowModelDir({ onnx: buildLinear({ inputs: 2 }), dataFile: "m.onnx" });
    writeFileSync(
      join(missingData, "MLmodel"),
      readFileSync(join(missingData, "MLmodel"), "utf8").replaceAll("m.onnx", "gone.onnx"),
    );
    const good = writeTempModel(buildLinear({ inputs: 2 }));

    await rejection(
      registerModel(reg, "m", noise),
      "MALFORMED_MODEL",
      new RegExp(`^'${noise}' is not an ONNX model: `),
    );
    await rejection(
      registerModel(reg, "m", "./x.onnx"),
      "RESOURCE_DOES_NOT_EXIST",
      "path './x.onnx' does not exist",
    );
    await rejection(
      registerModel(reg, "m", sklearnOnly),
      "MALFORMED_MODEL",
      new RegExp(
        `^'${sklearnOnly}' has no onnx flavor in its MLmodel \\(flavors: python_function, sklearn\\)`,
      ),
    );
    await rejection(
      registerModel(reg, "m", noMlmodel),
      "MALFORMED_MODEL",
      new RegExp(`^'${noMlmodel}' is a directory without an MLmodel file`),
    );
    await rejection(
      registerModel(reg, "m", missingData),
      "MALFORMED_MODEL",
      /names onnx data file 'gone\.onnx', which is not in/,
    );
    await rejection(
      registerModel(reg, "bad name", good),
      "INVALID_PARAMETER_VALUE",
      /model name 'bad name' is invalid/,
    );
    await rejection(
      registerModel(reg, "m", good, { alias: "v2" }),
      "INVALID_PARAMETER_VALUE",
      /alias 'v2' is invalid/,
    );
    await rejection(
      registerModel(reg, "m", good, { flavor: "pyfunc" as "onnx" }),
      "INVALID_PARAMETER_VALUE",
      /unknown flavor 'pyfunc': expected 'onnx' or 'custom'/,
    );
    await rejection(
      registerModel(reg, "m", good, { flavor: "custom" }),
      "INVALID_PARAMETER_VALUE",
      /is not a directory; a custom model is a directory/,
    );

    await rejection(reg.getModel("m"), "RESOURCE_DOES_NOT_EXIST");
    expect(await bucketContents(cluster)).toEqual({ keys: [], objects: [] });
  });

  it("an upload that fails midway deletes the objects already stored and registers nothing", async () => {
    const cluster = `t${randomUUID().replaceAll("-", "").slice(0, 12)}`;
    // An artifacts bucket too small for the model: the small files fit, the ONNX file does not.
    await new Objm(nc).create(clusterNames(cluster).buckets.artifacts, { max_bytes: 64 * 1024 });
    const reg = await Registry.open(nc, { cluster });
    const dir = writeMlflowModelDir({ onnx: buildMlp([64, 256, 1], { seed: 1 }) });
    await rejection(
      registerModel(reg, "big", dir),
      "INTERNAL_ERROR",
      /^uploading 'model\.onnx' to object store t\w+_artifacts failed: /,
    );
    expect(await bucketContents(cluster)).toEqual({ keys: [], objects: [] });
    await rejection(reg.getModel("big"), "RESOURCE_DOES_NOT_EXIST");
  });

  it("refuses an artifact whose object was replaced with other bytes (INTEGRITY_ERROR), in read and fetch", async () => {
    const { reg, cluster } = await freshRegistry(nc);
    const bytes = buildLinear({ inputs: 4 });
    const v = await registerModel(reg, "x", writeTempModel(bytes));
    const os = await new Objm(nc).open(clusterNames(cluster).buckets.artifacts);
    const forged = buildLinear({ inputs: 4, bias: [1] });
    await os.putBlob({ name: v.artifacts[0]!.object }, forged);

    const expected = createHash("sha256").update(bytes).digest("hex");
    const found = createHash("sha256").update(forged).digest("hex");
    const message = `artifact model.onnx of models:/x/1 is corrupted: sha256 ${expected} expected, ${found} found`;
    await rejection(reg.readArtifact(v, "model.onnx"), "INTEGRITY_ERROR", message);
    const out = tempDir();
    await rejection(reg.fetchArtifacts(v, out), "INTEGRITY_ERROR", message);
    expect(readdirSync(out)).toEqual([]);

    // A deleted object is an integrity failure too.
    await os.delete(v.artifacts[0]!.object);
    await rejection(
      reg.readArtifact(v, "model.onnx"),
      "INTEGRITY_ERROR",
      /^artifact model\.onnx of models:\/x\/1 is missing/,
    );
    expect(existsSync(join(out, "model.onnx"))).toBe(false);
  });
});
