// Autoscaling end to end, with real processes: `switchyard up` on a node budget of 4 threads with short
// stabilisation and scale-to-zero times. A load step moves a served model 1 → N → 1 replicas with every request
// answered correctly; a served model with scale_to_zero_enabled goes to zero replicas, and a request sent then
// is held, starts a replica and is answered — the test prints the cold start it measured.
// The load step's model waits 40 ms per request without using the CPU (fixtures/custom/slow-double), so the
// load shows as requests in flight on a 2-core machine; the ONNX reference comes from raw onnxruntime-node.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { buildLinear, tempDir } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true });

async function reference(model: Uint8Array, rows: number[][]): Promise<number[]> {
  const session = await ort.InferenceSession.create(model);
  const input = new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
  const out = await session.run({ input });
  await session.release();
  return Array.from(out.output!.data as Float32Array);
}

function expectClose(actual: unknown, expected: number[], tol = 1e-4) {
  const a = actual as number[];
  expect(a).toHaveLength(expected.length);
  a.forEach((v, i) => {
    expect(Math.abs(v - expected[i]!)).toBeLessThan(tol);
  });
}

interface ServedView {
  name: string;
  state: { deployment: string; deployment_state_message: string };
  replicas: { ready: number; desired: number };
  autoscaler?: { desired: number; wanted: number; reason: string; limited_by: string | null; at: number };
}

describe("autoscaling through switchyard up", () => {
  let up: Up;
  let c: ReturnType<typeof clusterClient>;
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  beforeAll(async () => {
    const dir = tempDir("sy-as-");
    // The config file sets the short windows a test needs; the flag sets the idle time before zero.
    const config = path.join(dir, "cluster.config.mjs");
    writeFileSync(config, "export default { autoscaler: { downStabilization: '3s' } };\n");
    up = await startUp(path.join(dir, "data"), [
      "--config",
      config,
      "--node-threads",
      "4",
      "--scale-to-zero-after",
      "4s",
    ]);
    c = clusterClient(up);
    const file = path.join(dir, "lr.onnx");
    writeFileSync(file, LR);
    for (const args of [
      ["lr", file],
      ["slow", copyFixture("slow-double"), "--flavor", "custom"],
    ]) {
      const r = await cli(["models", "register", ...args, "--json"], env());
      expect(r.stderr).toBe("");
    }
  }, 120_000);

  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
  });

  it("refuses a scale-to-zero time that is not a duration, naming the flag and the config field", async () => {
    const dir = tempDir("sy-as-bad-");
    const bad = await cli(["up", "--data-dir", path.join(dir, "data"), "--scale-to-zero-after", "soon"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(
      "--scale-to-zero-after: expected a duration such as 30s, 30m, 2h, 500ms or milliseconds, got 'soon'",
    );
    const config = path.join(dir, "cluster.config.mjs");
    writeFileSync(config, "export default { autoscaler: { scaleToZeroAfter: '10 minutes' } };\n");
    const file = await cli(["up", "--data-dir", path.join(dir, "data"), "--config", config]);
    expect(file.code).not.toBe(0);
    expect(file.stderr).toContain(
      'autoscaler.scaleToZeroAfter: expected a duration such as 30s, 30m, 2h, 500ms or a number of milliseconds, got "10 minutes"',
    );
  });

  const served = async (endpoint: string): Promise<ServedView> => {
    const r = await c.call("GET", `/api/2.0/serving-endpoints/${endpoint}`);
    expect(r.status).toBe(200);
    return r.json.config.served_entities[0] as ServedView;
  };

  it("follows a load step up to several replicas and back to one, answering every request", async () => {
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "step",
      config: {
        served_entities: [
          {
            entity_name: "slow",
            entity_version: "1",
            min_provisioned_concurrency: 4,
            max_provisioned_concurrency: 16,
          },
        ],
      },
    });
    expect(created.status).toBe(200);
    await c.waitReady("step");
    expect((await served("step")).replicas).toEqual({ ready: 1, desired: 1 });

    const rows = [[1.5], [-2], [0.25]];
    const body = { dataframe_split: { columns: ["x"], data: rows } };
    let clients = 12;
    const failures: string[] = [];
    let answered = 0;
    const client = async (id: number) => {
      while (id < clients) {
        const r = await c.invoke("step", body);
        if (r.status !== 200) failures.push(`${r.status} ${r.text}`);
        else {
          expectClose(r.json.predictions, [3, -4, 0.5], 1e-9);
          answered++;
        }
      }
    };
    const load = Array.from({ length: 12 }, (_, i) => client(i));
    const stopLoad = async () => {
      clients = 0;
      await Promise.allSettled(load);
    };
    onTestFinished(stopLoad);

    const peak = await eventually(
      async () => {
        const s = await served("step");
        return s.replicas.ready >= 2 && s.replicas.ready === s.replicas.desired ? s : undefined;
      },
      "more than one replica ready under load",
      90_000,
    );
    expect(peak.autoscaler!.desired).toBeGreaterThanOrEqual(2);
    expect(peak.autoscaler!.desired).toBeLessThanOrEqual(4);
    expect(peak.autoscaler!.reason).toMatch(/concurrent requests, target 4 per replica/);

    // The load drops to one client: the replicas follow it down to one while it keeps being answered.
    clients = 1;
    const low = await eventually(
      async () => {
        const s = await served("step");
        return s.replicas.ready === 1 && s.replicas.desired === 1 ? s : undefined;
      },
      "back to one replica",
      90_000,
    );
    expect(low.autoscaler).toMatchObject({ desired: 1 });
    await stopLoad();
    await Promise.all(load);
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(12);
    console.log(
      `load step: 1 → ${peak.replicas.ready} → 1 replicas; ${answered} requests answered, ${failures.length} failed`,
    );

    const human = await cli(["endpoints", "get", "step"], env());
    expect(human.stderr).toBe("");
    expect(human.stdout).toMatch(
      /slow-1: models:\/slow\/1 {2}100% {2}DEPLOYMENT_READY {2}replicas 1\/1 ready/,
    );
    expect(human.stdout).toMatch(/autoscaler \(\d{4}-\d\d-\d\dT[\d:]+Z\): load [\d.]+ concurrent request/);
  }, 300_000);

  it("scales a served model to zero when idle, and answers a request sent at zero", async () => {
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "idle",
      config: {
        served_entities: [
          { entity_name: "lr", entity_version: "1", workload_size: "Small", scale_to_zero_enabled: true },
        ],
      },
    });
    expect(created.status).toBe(200);
    await c.waitReady("idle");
    const rows = [
      [1.0, 3.5],
      [-2, 0.25],
    ];
    const expected = await reference(LR, rows);
    const first = await c.invoke("idle", { dataframe_split: { columns: ["a", "b"], data: rows } });
    expect(first.status).toBe(200);
    expectClose(first.json.predictions, expected, 1e-6);

    const zero = await eventually(
      async () => {
        const s = await served("idle");
        return s.replicas.desired === 0 && s.replicas.ready === 0 ? s : undefined;
      },
      "scaled to zero",
      60_000,
    );
    expect(zero.state).toEqual({
      deployment: "DEPLOYMENT_READY",
      deployment_state_message: "scaled to zero: the next request starts a replica",
    });
    expect(zero.autoscaler).toMatchObject({ desired: 0, wanted: 0, limited_by: null });
    expect(zero.autoscaler!.reason).toMatch(
      /^no requests for \d+ s: scaled to zero; the next request starts a replica$/,
    );
    const endpoint = await c.call("GET", "/api/2.0/serving-endpoints/idle");
    expect(endpoint.json.state).toEqual({ ready: "READY", config_update: "NOT_UPDATING" });
    expect(await c.replicaPids("idle")).toEqual([]);
    const human = await cli(["endpoints", "get", "idle"], env());
    expect(human.stdout).toContain("DEPLOYMENT_READY  replicas 0/0 ready");
    expect(human.stdout).toContain("scaled to zero: the next request starts a replica");

    const t0 = performance.now();
    const cold = await c.invoke("idle", { dataframe_split: { columns: ["a", "b"], data: rows } });
    const coldMs = performance.now() - t0;
    expect(cold.status).toBe(200);
    expectClose(cold.json.predictions, expected, 1e-6);
    console.log(`cold start: first request after scale to zero answered in ${Math.round(coldMs)} ms`);

    const back = await eventually(async () => {
      const s = await served("idle");
      return s.replicas.ready === 1 ? s : undefined;
    }, "the replica started from zero reported READY");
    expect(back.replicas).toEqual({ ready: 1, desired: 1 });
    expect(back.autoscaler).toMatchObject({ desired: 1 });
    const warm = await c.invoke("idle", { dataframe_split: { columns: ["a", "b"], data: rows } });
    expect(warm.status).toBe(200);
    expectClose(warm.json.predictions, expected, 1e-6);
  }, 300_000);
});
