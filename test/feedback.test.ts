// Feedback and live accuracy end to end: `switchyard up`, an endpoint splitting traffic between two linear models
// with capture on, requests through the HTTP bridge, then labels by HTTP, by a raw NATS client and by
// `switchyard feedback --file`. Accuracy, MAE and RMSE per served model must equal a recomputation in the test
// from the same labels and the models' formulas; unknown ids, a duplicate and a late label are counted as such.
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { AccuracyFeed } from "@switchyard/autoscaler";
import { connectNats } from "@switchyard/nats";
import { type ClusterNames, clusterNames, type EndpointAccuracy } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

// Integer weights and inputs: every prediction is an exact integer in float32, so the test knows it exactly.
const MODELS = {
  a: { model: "catalog.schema.fb_a", weights: [1, 1] },
  b: { model: "catalog.schema.fb_b", weights: [1, 2] },
} as const;
type Served = keyof typeof MODELS;
const predict = (s: Served, [x1, x2]: number[]) => MODELS[s].weights[0] * x1! + MODELS[s].weights[1] * x2!;

interface Sent {
  id: string;
  served: Served;
  rows: number[][];
}

/** What the accuracy of `served` must be over these labelled requests (first label of each request only). */
function reference(sent: Sent[], labels: Map<string, number[]>, served: Served) {
  let requests = 0;
  let rows = 0;
  let correct = 0;
  let abs = 0;
  let sq = 0;
  for (const s of sent) {
    const label = labels.get(s.id);
    if (s.served !== served || !label) continue;
    requests++;
    s.rows.forEach((row, i) => {
      const e = predict(served, row) - label[i]!;
      rows++;
      if (e === 0) correct++;
      abs += Math.abs(e);
      sq += e * e;
    });
  }
  return { requests, rows, accuracy: correct / rows, mae: abs / rows, rmse: Math.sqrt(sq / rows) };
}

describe("feedback and live accuracy", () => {
  let up: Up;
  let names: ClusterNames;
  let nc: NatsConnection;
  let call: ReturnType<typeof clusterClient>["call"];
  let invoke: ReturnType<typeof clusterClient>["invoke"];
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });
  const sent: Sent[] = [];
  /** The first label sent per request id: what the join must keep. */
  const labels = new Map<string, number[]>();

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-feedback-"), "data"));
    ({ call, invoke } = clusterClient(up));
    const { waitReady } = clusterClient(up);
    names = clusterNames(up.info().cluster);
    nc = await connectNats({ servers: up.info().natsUrl });
    for (const { model, weights } of Object.values(MODELS)) {
      const onnx = buildLinear({ inputs: 2, weights });
      const reg = await cli(["models", "register", model, writeTempModel(onnx), "--json"], env());
      expect(reg.stderr).toBe("");
    }
    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "fb",
      config: {
        served_entities: (Object.keys(MODELS) as Served[]).map((name) => ({
          name,
          entity_name: MODELS[name].model,
          entity_version: "1",
          workload_size: "Small",
        })),
        traffic_config: {
          routes: [
            { served_model_name: "a", traffic_percentage: 50 },
            { served_model_name: "b", traffic_percentage: 50 },
          ],
        },
        auto_capture_config: { catalog_name: "ml", schema_name: "monitoring" },
      },
    });
    expect(created.status, created.text).toBe(200);
    await waitReady("fb");
    // 40 requests of one or three rows; both served models answer some.
    for (let i = 0; i < 40; i++) {
      const rows = Array.from({ length: i % 2 === 0 ? 1 : 3 }, (_, r) => [i + r, (i * 7 + r) % 5]);
      const res = await invoke("fb", { inputs: rows });
      expect(res.status, res.text).toBe(200);
      const served = res.headers.get("x-served-model") as Served;
      expect(Object.keys(MODELS)).toContain(served);
      expect(res.json.predictions).toEqual(rows.map((row) => predict(served, row)));
      sent.push({ id: res.headers.get("x-request-id")!, served, rows });
    }
    expect(new Set(sent.map((s) => s.served)).size).toBe(2);
  });

  afterAll(async () => {
    await nc?.close();
    if (up) expect(await up.stop()).toBe(0);
  });

  /** Labels: the truth is x1 + x2 with an error on some rows, so model a is mostly right and b mostly wrong. */
  const truth = (s: Sent, k: number) => s.rows.map(([x1, x2], r) => x1! + x2! + ((k + r) % 3 === 0 ? 2 : 0));
  const body = (s: Sent, label: number[]) => ({
    request_id: s.id,
    label: s.rows.length === 1 ? label[0] : label,
  });

  it("refuses bad labels naming the index and field, and an unknown endpoint", async () => {
    const bad = await call("POST", "/api/2.0/switchyard/endpoints/fb/feedback", [
      { request_id: "r1", label: 1 },
      { request_id: "", label: 1 },
      { request_id: "r3", label: { x: 1 } },
    ]);
    expect(bad.status).toBe(400);
    expect(bad.json.error_code).toBe("INVALID_PARAMETER_VALUE");
    expect(bad.json.message).toContain("[1].request_id: expected a non-empty string");
    expect(bad.json.message).toContain(
      "[2].label: expected a number, string or boolean, or an array of them (one label per row of the request)",
    );
    const missing = await call("POST", "/api/2.0/switchyard/endpoints/nope/feedback", [
      { request_id: "r1", label: 1 },
    ]);
    expect(missing.status).toBe(404);
    expect(missing.json.error_code).toBe("RESOURCE_DOES_NOT_EXIST");
    // Without a token: 401, as every route.
    const res = await fetch(`${up.info().httpUrl}/api/2.0/switchyard/endpoints/fb/feedback`, {
      method: "POST",
      body: JSON.stringify([{ request_id: "r1", label: 1 }]),
    });
    expect(res.status).toBe(401);
  });

  it("joins labels from HTTP, raw NATS and the CLI; counts unknown ids, a duplicate, a mismatched and a late label", async () => {
    const feed = AccuracyFeed.start(nc, names);
    try {
      // Requests 0..19 by HTTP (except 5, labelled late), with three unknown ids: still 200.
      const http = sent.slice(0, 20).filter((_, i) => i !== 5);
      for (const [k, s] of http.entries()) labels.set(s.id, truth(s, k));
      const posted = await call("POST", "/api/2.0/switchyard/endpoints/fb/feedback", [
        ...http.map((s) => body(s, labels.get(s.id)!)),
        { request_id: "never-made-1", label: 1 },
        { request_id: "never-made-2", label: 2 },
        { request_id: "never/made 3", label: 3 },
      ]);
      expect(posted.status, posted.text).toBe(200);
      expect(posted.json).toEqual({ accepted: http.length + 3 });

      // Requests 20..29 by a raw NATS client: an array on the endpoint's feedback subject, then one object.
      const raw = sent.slice(20, 30);
      for (const [k, s] of raw.entries()) labels.set(s.id, truth(s, k + 1));
      const enc = (v: unknown) => JSON.stringify(v);
      nc.publish(names.subjects.feedback("fb"), enc(raw.slice(0, 9).map((s) => body(s, labels.get(s.id)!))));
      nc.publish(names.subjects.feedback("fb"), enc(body(raw[9]!, labels.get(raw[9]!.id)!)));
      await nc.flush();

      // Requests 30..39 by `switchyard feedback --file` (records form in the file: one object per line).
      const file = path.join(tempDir("sy-feedback-file-"), "labels.jsonl");
      const viaCli = sent.slice(30);
      for (const [k, s] of viaCli.entries()) labels.set(s.id, truth(s, k + 2));
      writeFileSync(file, `${viaCli.map((s) => enc(body(s, labels.get(s.id)!))).join("\n")}\n`);
      const r = await cli(["feedback", "fb", "--file", file, "--json"], env());
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ endpoint: "fb", accepted: 10 });

      // A second label for request 0 (different value): a duplicate, the first one stays. Two labels for the
      // three rows of request 3: not comparable (invalid), whatever else it was labelled.
      expect(sent[3]!.rows).toHaveLength(3);
      const dup = await call("POST", "/api/2.0/switchyard/endpoints/fb/feedback", {
        records: [
          body(
            sent[0]!,
            sent[0]!.rows.map(() => -100),
          ),
          { request_id: sent[3]!.id, label: [1, 2] },
        ],
      });
      expect(dup.status).toBe(200);
      // The late label: request 5 was made before all others were labelled.
      labels.set(sent[5]!.id, truth(sent[5]!, 5));
      const late = await call("POST", "/api/2.0/switchyard/endpoints/fb/feedback", [
        body(sent[5]!, labels.get(sent[5]!.id)!),
      ]);
      expect(late.status).toBe(200);

      // Unknown ids are only given up on after the join's wait for a capture (30 s).
      const expected = { received: 45, joined: 40, unknown: 3, duplicate: 1, invalid: 1 };
      const accuracy = await eventually(
        async () => {
          const m = await call("GET", "/api/2.0/switchyard/metrics/endpoints/fb");
          const a = m.json?.accuracy as EndpointAccuracy | undefined;
          if (a?.labels.received === expected.received) return a;
          throw new Error(`labels so far: ${JSON.stringify(a?.labels)}`);
        },
        "every label settled",
        90_000,
      );
      expect(accuracy.labels).toEqual(expected);
      expect(accuracy.served_models.map((s) => s.name)).toEqual(["a", "b"]);
      for (const s of accuracy.served_models) {
        const want = reference(sent, labels, s.name as Served);
        for (const window of ["1h", "24h"] as const) {
          const w = s.windows[window];
          expect(w.labelled_requests).toBe(want.requests);
          expect(w.labelled_rows).toBe(want.rows);
          expect(Math.abs(w.accuracy! - want.accuracy)).toBeLessThan(1e-9);
          expect(Math.abs(w.mae! - want.mae)).toBeLessThan(1e-9);
          expect(Math.abs(w.rmse! - want.rmse)).toBeLessThan(1e-9);
        }
      }
      // The better model is better, so the numbers are not trivially equal.
      expect(reference(sent, labels, "a").accuracy).toBeGreaterThan(reference(sent, labels, "b").accuracy);

      // What a canary reads (contract: since(endpoint, served, sinceMs)), from this process's own follower.
      const first = Date.now() - 3_600_000;
      const a = reference(sent, labels, "a");
      const since = await eventually(
        async () => {
          const v = feed.windows.since("fb", "a", first);
          return v && v.labelled === a.rows ? v : undefined;
        },
        "the follower has every outcome",
        30_000,
      );
      expect(Math.abs(since.accuracy - a.accuracy)).toBeLessThan(1e-9);

      // Prometheus: the gauges and the label counter.
      const prom = await call("GET", "/metrics");
      expect(prom.text).toContain(
        `switchyard_labelled_rows{endpoint="fb",served_model="a",window="1h"} ${a.rows}`,
      );
      expect(prom.text).toContain(
        `switchyard_accuracy{endpoint="fb",served_model="a",window="24h"} ${a.accuracy}`,
      );
      expect(prom.text).toContain(`switchyard_mae{endpoint="fb",served_model="a",window="1h"} ${a.mae}`);
      expect(prom.text).toContain('switchyard_feedback_labels_total{endpoint="fb",result="unknown"} 3');
      expect(prom.text).toContain('switchyard_feedback_labels_total{endpoint="fb",result="duplicate"} 1');
      expect(prom.text).toContain('switchyard_feedback_labels_total{endpoint="fb",result="invalid"} 1');

      // The CLI's metrics show the accuracy block.
      const shown = await cli(["endpoints", "metrics", "fb"], env());
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain("labels received 45: joined 40, unknown 3, duplicate 1, invalid 1");
      expect(shown.stdout).toContain(`${(a.accuracy * 100).toFixed(2)}%`);
    } finally {
      await feed.stop();
    }
  }, 150_000);

  it("reports a bad line of a labels file by number and sends nothing", async () => {
    const file = path.join(tempDir("sy-feedback-bad-"), "labels.jsonl");
    writeFileSync(
      file,
      `${JSON.stringify({ request_id: "x", label: 1 })}\n{"request_id": 5, "label": 1}\nnot json\n`,
    );
    const r = await cli(["feedback", "fb", "--file", file], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("line 2: request_id: expected a non-empty string");
    expect(r.stderr).toContain("line 3: not valid JSON");
    expect(r.stderr).toContain("nothing was sent");
  });
});
