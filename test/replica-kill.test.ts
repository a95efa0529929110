// kill -9 of a replica under load, on one host, as the across-hosts issue states the scenario: `switchyard up`, a
// served model with two replicas, 8 request loops through the HTTP bridge with 5 s deadlines, and each of the two
// replicas killed once. Six loops go through HTTP, two are raw NATS clients of `<c>.invoke.<endpoint>` (the invoke
// actor routes for them). The node agent reports each death at once and the routers send again what they had in
// flight on that served model, so not one request fails. Predictions are checked against raw onnxruntime-node.
import path from "node:path";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { connectNats } from "@switchyard/nats";
import { clusterNames, H } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true, bias: [0.5] });
const ROW = [1, 2];
/** Provisioned concurrency 8 at 4 per replica: exactly two replicas. */
const TWO_REPLICAS = { min_provisioned_concurrency: 8, max_provisioned_concurrency: 8 };
const HTTP_LOOPS = 6;
const NATS_LOOPS = 2;

interface Outcome {
  via: "http" | "nats";
  /** HTTP status; for a raw NATS client 200 when the reply carries no error code, else 0. */
  status: number;
  code: string | undefined;
  prediction: number | undefined;
  ms: number;
}

describe("kill -9 of one of two replicas under load", () => {
  let up: Up;
  let nc: NatsConnection;
  let c: ReturnType<typeof clusterClient>;
  let expected: number;

  beforeAll(async () => {
    const session = await ort.InferenceSession.create(LR);
    const out = await session.run({ input: new ort.Tensor("float32", Float32Array.from(ROW), [1, 2]) });
    expected = (out.output!.data as Float32Array)[0]!;
    await session.release();
    up = await startUp(path.join(tempDir("sy-kill-"), "data"));
    c = clusterClient(up);
    nc = await connectNats({ servers: up.info().natsUrl, name: "replica-kill-test" });
    const reg = await cli(["models", "register", "lr", writeTempModel(LR), "--json"], {
      SWITCHYARD_DATA_DIR: up.dataDir,
    });
    expect(reg.stderr).toBe("");
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "pair",
      config: { served_entities: [{ entity_name: "lr", entity_version: "1", ...TWO_REPLICAS }] },
    });
    expect(created.status).toBe(200);
    await c.waitReady("pair");
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
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

  it("answers every request of 8 loops (6 HTTP, 2 raw NATS) with 5 s deadlines while each replica is killed once", async () => {
    const pids = await twoReadyWithout([]);
    let stop = false;
    const results: Outcome[] = [];
    const viaHttp = async () => {
      while (!stop) {
        const t0 = Date.now();
        const r = await c.invoke("pair", { instances: [ROW] }, { "x-switchyard-timeout-ms": "5000" });
        results.push({
          via: "http",
          status: r.status,
          code: r.json?.error_code,
          prediction: r.json?.predictions?.[0],
          ms: Date.now() - t0,
        });
      }
    };
    const subject = clusterNames(up.info().cluster).subjects.invoke("pair");
    const body = JSON.stringify({ instances: [ROW] });
    const viaNats = async () => {
      while (!stop) {
        const t0 = Date.now();
        const h = natsHeaders();
        h.set(H.contentType, "application/json");
        h.set(H.timeoutMs, "5000");
        // A client-side timeout past the deadline: the actor's own 504 is what a failure looks like.
        const m = await nc.request(subject, body, { headers: h, timeout: 10_000 });
        const code = m.headers?.get(H.errorCode) || undefined;
        results.push({
          via: "nats",
          status: code ? 0 : 200,
          code,
          prediction: code ? undefined : (m.json() as { predictions: number[] }).predictions[0],
          ms: Date.now() - t0,
        });
      }
    };
    const loops = [
      ...Array.from({ length: HTTP_LOOPS }, viaHttp),
      ...Array.from({ length: NATS_LOOPS }, viaNats),
    ];
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
    const ms = results.map((r) => r.ms).sort((a, b) => a - b);
    const raw = results.filter((r) => r.via === "nats").length;
    console.log(
      `kill -9 of two replicas under load: ${results.length} requests (${raw} raw NATS), ${failed.length} failed; ` +
        `p50 ${ms[Math.floor(ms.length * 0.5)]} ms, p99 ${ms[Math.floor(ms.length * 0.99)]} ms, slowest ${ms.at(-1)} ms`,
    );
    expect(failed).toEqual([]);
    for (const r of results) expect(Math.abs(r.prediction! - expected)).toBeLessThan(1e-6);
    expect(results.length).toBeGreaterThanOrEqual(600);
    expect(raw).toBeGreaterThan(0);
  }, 240_000);
});
