// The model runtime on its own (as batch workers will use it): fetch + verify + load into a thread pool,
// batches in and out of worker threads, warm-up feeds, refusal of corrupted artifacts.
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Tensor } from "@switchyard/data";
import { Frame } from "@switchyard/data";
import { connectNats } from "@switchyard/nats";
import { clusterNames, SwitchyardError } from "@switchyard/protocol";
import { ModelRunner, type ModelRunnerOptions, type SiteChange, warmUpFeeds } from "@switchyard/runtime";
import { buildLinear, buildMlp, linearPredict, mlpPredict } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cacheDir, expectClose, randomRows, registerModel } from "../../replica/test/helpers.js";

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "runtime-test" });
});
afterAll(async () => {
  await nc?.close();
});

/** Registers `model` and loads it into a runner of `threads` threads. */
async function loadRunner(
  model: Uint8Array,
  threads: number,
  over: Partial<ModelRunnerOptions> = {},
): Promise<ModelRunner> {
  const reg = await registerModel(nc, model);
  const version = await reg.registry.getVersion(reg.name, reg.version);
  return ModelRunner.load({ registry: reg.registry, version, cacheDir: cacheDir(), threads, ...over });
}

describe("ModelRunner", () => {
  it("loads a version into a pool and runs batches concurrently with the reference predictions", async () => {
    const sizes = [8, 16, 1];
    const runner = await loadRunner(buildMlp(sizes, { seed: 5 }), 2);
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

  it("runs a cheap ONNX model on the calling thread once that beats the hop, and heavy batches back in the pool", async () => {
    const lr = { inputs: 30, sigmoid: true, bias: [0.25] };
    const changes: SiteChange[] = [];
    const runner = await loadRunner(buildLinear(lr), 2, { onSiteChange: (c) => changes.push(c) });
    const batch = (rows: number[][]): Tensor[] => [
      { name: "input", dtype: "float32", shape: [rows.length, 30], data: Float32Array.from(rows.flat()) },
    ];
    try {
      expect(runner.inlineCapable).toBe(true);
      expect(runner.batchSites()).toEqual({ inline: 0, pool: 0, site: "pool" });
      // One-row batches, each checked against the reference, until 50 ran inline (it moves after 8 pool batches
      // and opens its session in the background).
      const deadline = Date.now() + 30_000;
      let runs = 0;
      while (runner.batchSites().inline < 50 && Date.now() < deadline) {
        const rows = randomRows(1, 30, runs++);
        const [out] = await runner.run(batch(rows));
        expectClose(out!.data as Float32Array, linearPredict(lr, rows).flat());
      }
      const sites = runner.batchSites();
      expect(sites.inline).toBe(50);
      expect(sites.pool).toBe(runs - 50);
      expect(sites.site).toBe("inline");
      expect(changes[0]).toMatchObject({ site: "inline" });
      expect(changes[0]!.computeUs).toBeLessThan(changes[0]!.hopUs);
      // Inline, the feeds are read in place (a pool run transfers their buffer away).
      const feeds = batch(randomRows(3, 30, 99));
      await runner.run(feeds);
      expect(feeds[0]!.data.length).toBe(90);

      // Batches of 100k rows compute far longer than a hop: the runner moves them back to the workers.
      const big = randomRows(100_000, 30, 5);
      const expected = linearPredict(lr, big).flat();
      while (runner.batchSites().site === "inline" && Date.now() < deadline) {
        const [out] = await runner.run(batch(big));
        expectClose(out!.data as Float32Array, expected);
      }
      expect(changes.at(-1)).toMatchObject({ site: "pool" });
      const poolBefore = runner.batchSites().pool;
      const [out] = await runner.run(batch(big));
      expectClose(out!.data as Float32Array, expected);
      expect(runner.batchSites().pool).toBe(poolBefore + 1);
    } finally {
      await runner.close();
    }
    await expect(runner.run(batch([Array(30).fill(0)]))).rejects.toMatchObject({
      code: "TEMPORARILY_UNAVAILABLE",
    });
  });

  it("keeps every batch in the pool when placement is off", async () => {
    const lr = { inputs: 4, sigmoid: true };
    const runner = await loadRunner(buildLinear(lr), 1, { placement: false });
    try {
      expect(runner.inlineCapable).toBe(false);
      for (let i = 0; i < 40; i++) {
        const rows = randomRows(2, 4, i);
        const [out] = await runner.run([
          { name: "input", dtype: "float32", shape: [2, 4], data: Float32Array.from(rows.flat()) },
        ]);
        expectClose(out!.data as Float32Array, linearPredict(lr, rows).flat());
      }
      expect(runner.batchSites()).toEqual({ inline: 0, pool: 40, site: "pool" });
    } finally {
      await runner.close();
    }
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
