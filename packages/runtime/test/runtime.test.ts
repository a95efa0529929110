// The model runtime on its own (as batch workers will use it): fetch + verify + load into a thread pool,
// batches in and out of worker threads, warm-up feeds, refusal of corrupted artifacts.
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { Frame } from "@switchyard/data";
import { connectNats } from "@switchyard/nats";
import { clusterNames, SwitchyardError } from "@switchyard/protocol";
import { ModelRunner, warmUpFeeds } from "@switchyard/runtime";
import { buildMlp, mlpPredict } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cacheDir, expectClose, randomRows, registerModel } from "../../replica/test/helpers.js";

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "runtime-test" });
});
afterAll(async () => {
  await nc?.close();
});

describe("ModelRunner", () => {
  it("loads a version into a pool and runs batches concurrently with the reference predictions", async () => {
    const sizes = [8, 16, 1];
    const reg = await registerModel(nc, buildMlp(sizes, { seed: 5 }));
    const version = await reg.registry.getVersion(reg.name, reg.version);
    const runner = await ModelRunner.load({
      registry: reg.registry,
      version,
      cacheDir: cacheDir(),
      threads: 2,
    });
    try {
      expect(runner.signature!.inputs[0]).toMatchObject({
        name: "input",
        dtype: "float32",
        shape: ["batch", 8],
      });
      const rows = randomRows(10, 8, 3);
      const data = Float32Array.from(rows.flat());
      const [out] = await runner.run([{ name: "input", dtype: "float32", shape: [10, 8], data }]);
      expect(data.length).toBe(0); // its whole buffer was transferred to the worker, not copied
      expect(out).toMatchObject({ name: "output", dtype: "float32", shape: [10, 1] });
      expectClose(out!.data as Float32Array, mlpPredict(sizes, 5, rows).flat());

      const frame = Frame.fromRecords(rows.map((r) => Object.fromEntries(r.map((x, i) => [`c${i}`, x]))));
      const many = await Promise.all([0, 1, 2, 3].map(() => runner.predict(frame)));
      for (const [o] of many) expectClose(o!.data as Float32Array, mlpPredict(sizes, 5, rows).flat());
    } finally {
      await runner.close();
    }
    await expect(runner.run(warmUpFeeds(runner.signature!))).rejects.toMatchObject({
      code: "TEMPORARILY_UNAVAILABLE",
    });
  });

  it("makes warm-up feeds of zeros with symbolic dimensions as 1", () => {
    const feeds = warmUpFeeds({
      inputs: [
        { name: "x", dtype: "float32", shape: ["batch", 3] },
        { name: "ids", dtype: "int64", shape: [-1] },
        { name: "s", dtype: "string", shape: null },
      ],
      outputs: [],
    });
    expect(feeds.map((f) => [f.name, f.shape, f.data.length])).toEqual([
      ["x", [1, 3], 3],
      ["ids", [1], 1],
      ["s", [1], 1],
    ]);
    expect(feeds[1]!.data).toBeInstanceOf(BigInt64Array);
  });

  it("refuses a corrupted artifact with INTEGRITY_ERROR before starting any thread", async () => {
    const reg = await registerModel(nc, buildMlp([4, 1]));
    const version = await reg.registry.getVersion(reg.name, reg.version);
    const os = await new Objm(nc).open(clusterNames(reg.cluster).buckets.artifacts);
    await os.putBlob({ name: version.artifacts[0]!.object }, buildMlp([4, 1], { seed: 9 }));
    const err = await ModelRunner.load({
      registry: reg.registry,
      version,
      cacheDir: cacheDir(),
      threads: 1,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe("INTEGRITY_ERROR");
    expect((err as SwitchyardError).message).toMatch(/is corrupted: sha256 /);
  });
});
