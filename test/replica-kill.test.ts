// kill -9 of a replica under load, on one host, as the across-hosts issue states the scenario: `switchyard up`, a
// served model with two replicas, 8 request loops through the HTTP bridge with 5 s deadlines, and each of the two
// replicas killed once. The node agent reports each death at once and the bridge's router sends again what it had
// in flight on that served model, so not one request fails. Predictions are checked against raw onnxruntime-node.
import path from "node:path";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true, bias: [0.5] });
const ROW = [1, 2];
const LOOPS = 8;

interface Outcome {
  status: number;
  code: string | undefined;
  prediction: number | undefined;
  ms: number;
}

describe("kill -9 of one of two replicas under load", () => {
  let up: Up;
  let c: ReturnType<typeof clusterClient>;
  let expected: number;

  beforeAll(async () => {
    const session = await ort.InferenceSession.create(LR);
    const out = await session.run({ input: new ort.Tensor("float32", Float32Array.from(ROW), [1, 2]) });
    expected = (out.output!.data as Float32Array)[0]!;
    await session.release();
    up = await startUp(path.join(tempDir("sy-kill-"), "data"));
    c = clusterClient(up);
    const reg = await cli(["models", "register", "lr", writeTempModel(LR), "--json"], {
      SWITCHYARD_DATA_DIR: up.dataDir,
    });
    expect(reg.stderr).toBe("");
    // Provisioned concurrency 8 at 4 per replica: exactly two replicas.
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "pair",
      config: {
        served_entities: [
          {
            entity_name: "lr",
            entity_version: "1",
            min_provisioned_concurrency: 8,
            max_provisioned_concurrency: 8,
          },
        ],
      },
    });
    expect(created.status).toBe(200);
    await c.waitReady("pair");
  }, 120_000);

  afterAll(async () => {
    await up?.stop();
  });

  /** Two READY replicas, none of them one of `gone`. */
  const twoReadyWithout = (gone: number[]) =>
    eventually(
      async () => {
        const now = await c.replicaPids("pair");
        return now.length === 2 && !now.some((p) => gone.includes(p)) ? now : undefined;
      },
      `two READY replicas of pair, none of ${gone.join(", ")}`,
      60_000,
    );

  it("answers every request of 8 loops with 5 s deadlines while each replica is killed once", async () => {
    const pids = await twoReadyWithout([]);
    let stop = false;
    const results: Outcome[] = [];
    const loop = async () => {
      while (!stop) {
        const t0 = Date.now();
        const r = await c.invoke("pair", { instances: [ROW] }, { "x-switchyard-timeout-ms": "5000" });
        results.push({
          status: r.status,
          code: r.json?.error_code,
          prediction: r.json?.predictions?.[0],
          ms: Date.now() - t0,
        });
      }
    };
    const loops = Array.from({ length: LOOPS }, loop);
    /** Waits until `n` more requests were answered (the load runs on the replicas there are now). */
    const answered = (n: number) => {
      const target = results.length + n;
      return eventually(() => (results.length >= target ? true : undefined), `${n} more answers`, 30_000);
    };
    await answered(200);
    process.kill(pids[0]!, "SIGKILL");
    const afterFirst = await twoReadyWithout([pids[0]!]);
    await answered(200);
    // The other original replica: a kill while the replacement of the first already serves beside it.
    expect(afterFirst).toContain(pids[1]!);
    process.kill(pids[1]!, "SIGKILL");
    await twoReadyWithout(pids);
    await answered(200);
    stop = true;
    await Promise.all(loops);
    const failed = results.filter((r) => r.status !== 200);
    const slowest = Math.max(...results.map((r) => r.ms));
    console.log(
      `kill -9 of two replicas under load: ${results.length} requests, ${failed.length} failed, slowest ${slowest} ms`,
    );
    expect(failed).toEqual([]);
    for (const r of results) expect(Math.abs(r.prediction! - expected)).toBeLessThan(1e-6);
    expect(results.length).toBeGreaterThanOrEqual(600);
  }, 240_000);
});
