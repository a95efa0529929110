// Registering custom models against a real nats-server: the esbuild bundle and every file of the directory stored
// with digests as a normal version, signature.json read the MLflow way, and every bundle failure refused with
// esbuild's (or the import check's) message and nothing left in KV or the object store.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { clusterNames, SwitchyardError } from "@switchyard/protocol";
import { tempDir } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { freshRegistry } from "./helpers/registry.js";

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "custom-registry-test" });
});
afterAll(async () => {
  await nc?.close();
});

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

async function refusal(p: Promise<unknown>): Promise<SwitchyardError> {
  const err = await p.then(
    () => {
      throw new Error("expected a refusal, but it registered");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SwitchyardError);
  return err as SwitchyardError;
}

describe("registering custom models", () => {
  it("stores the bundle and every file (not node_modules/.git) with digests, as a custom version", async () => {
    const { reg } = await freshRegistry(nc);
    const dir = copyFixture("sentiment");
    mkdirSync(join(dir, "node_modules", "junk"), { recursive: true });
    writeFileSync(join(dir, "node_modules", "junk", "index.js"), "export default 1;\n");
    mkdirSync(join(dir, ".git"));
    writeFileSync(join(dir, ".git", "HEAD"), "ref: refs/heads/main\n");
    writeFileSync(join(dir, "vocab.txt"), "good\n");

    const v = await registerModel(reg, "catalog.schema.custom_model", dir, {
      flavor: "custom",
      alias: "champion",
    });
    expect(v).toMatchObject({
      name: "catalog.schema.custom_model",
      version: 1,
      flavor: "custom",
      entry: "__switchyard__/bundle.mjs",
      signature: null,
      mlflow_signature: null,
      source: dir,
    });
    expect(v.artifacts.map((a) => a.path).sort()).toEqual([
      "__switchyard__/bundle.mjs",
      "model.ts",
      "vocab.txt",
    ]);
    for (const path of ["model.ts", "vocab.txt"]) {
      const bytes = readFileSync(join(dir, path));
      const a = v.artifacts.find((x) => x.path === path)!;
      expect(a.digest).toBe(sha256(bytes));
      expect(a.size).toBe(bytes.length);
    }
    const bundle = await reg.readArtifact(v, "__switchyard__/bundle.mjs");
    expect(v.artifacts.find((a) => a.path === v.entry)!.digest).toBe(sha256(bundle));
    const code = Buffer.from(bundle).toString("utf8");
    expect(code).toContain('includes("good")');
    // Type-only imports vanish; nothing from the user's node_modules is in it.
    expect(code).not.toContain("junk");
    expect((await reg.resolve("models:/catalog.schema.custom_model@champion")).version).toBe(1);
  });

  it("bundles local imports, keeps @switchyard/model external, and reads signature.json the MLflow way", async () => {
    const { reg } = await freshRegistry(nc);
    const v = await registerModel(reg, "scorer", copyFixture("text-two-outputs"), { flavor: "custom" });
    expect(v.signature).toEqual({
      inputs: [{ name: "text", dtype: "string", shape: [-1] }],
      outputs: [
        { name: "label", dtype: "string", shape: [-1] },
        { name: "score", dtype: "float64", shape: [-1] },
      ],
    });
    expect(v.mlflow_signature).toEqual({
      inputs: [{ name: "text", type: "string" }],
      outputs: [
        { name: "label", type: "string" },
        { name: "score", type: "double" },
      ],
      params: null,
    });
    const code = Buffer.from(await reg.readArtifact(v, v.entry)).toString("utf8");
    expect(code).toMatch(/from "@switchyard\/model"/);
    expect(code).toContain("function clean(");
  });

  it("takes the entry module from --entry, and refuses a directory without one", async () => {
    const { reg, cluster } = await freshRegistry(nc);
    const dir = copyFixture("sentiment");
    cpSync(join(dir, "model.ts"), join(dir, "main.ts"));
    const noEntry = join(tempDir("sy-custom-"), "only-main");
    mkdirSync(noEntry);
    cpSync(join(dir, "main.ts"), join(noEntry, "main.ts"));
    const e = await refusal(registerModel(reg, "m", noEntry, { flavor: "custom" }));
    expect(e.code).toBe("MALFORMED_MODEL");
    expect(e.message).toMatch(/no entry module: add one of model\.ts, model\.js, index\.ts, index\.js/);
    const bad = await refusal(registerModel(reg, "m", noEntry, { flavor: "custom", entry: "nope.ts" }));
    expect(bad.code).toBe("INVALID_PARAMETER_VALUE");
    expect(await bucketContents(cluster)).toEqual({ keys: [], objects: [] });
    const v = await registerModel(reg, "m", noEntry, { flavor: "custom", entry: "main.ts" });
    expect(v.artifacts.map((a) => a.path).sort()).toEqual(["__switchyard__/bundle.mjs", "main.ts"]);
  });

  const failures: [string, RegExp][] = [
    [
      "bad-syntax",
      /bundling 'model\.ts' of '.*bad-syntax' failed: .*model\.ts:3:\d+: Expected "\)" but found "\{"/,
    ],
    ["unresolved-import", /failed: .*model\.js:2:\d+: Could not resolve "switchyard-no-such-package"/],
    ["no-default", /'model\.js': the entry module has no default export/],
    ["no-predict", /'model\.js': the default export has no predict method/],
  ];
  for (const [fixture, message] of failures) {
    it(`refuses ${fixture} with the bundler's message and leaves nothing behind`, async () => {
      const { reg, cluster } = await freshRegistry(nc);
      const e = await refusal(registerModel(reg, "broken", copyFixture(fixture), { flavor: "custom" }));
      expect(e.code).toBe("MALFORMED_MODEL");
      expect(e.message).toMatch(message);
      expect(e.message).not.toMatch(/\n\s+at /);
      expect(await bucketContents(cluster)).toEqual({ keys: [], objects: [] });
    });
  }

  it("refuses a signature.json with an unknown column type, naming it", async () => {
    const { reg, cluster } = await freshRegistry(nc);
    const dir = copyFixture("text-two-outputs");
    writeFileSync(
      join(dir, "signature.json"),
      JSON.stringify({ inputs: [{ name: "text", type: "varchar" }] }),
    );
    const e = await refusal(registerModel(reg, "sig", dir, { flavor: "custom" }));
    expect(e.code).toBe("MALFORMED_MODEL");
    expect(e.message).toMatch(/inputs\[0\]: type "varchar" of column 'text' is not one of string, double/);
    expect(await bucketContents(cluster)).toEqual({ keys: [], objects: [] });
  });

  it("does not type-check: a type error still registers", async () => {
    const { reg } = await freshRegistry(nc);
    const dir = copyFixture("sentiment");
    writeFileSync(
      join(dir, "model.ts"),
      "export default class M { predict(input: number): string { const n: string = 5; return [input, n] as any; } }\n",
    );
    expect((await registerModel(reg, "typed", dir, { flavor: "custom" })).flavor).toBe("custom");
  });
});
