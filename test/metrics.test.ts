// Metrics and logs end to end through `switchyard up`: requests (some failing with a known code) show as exact
// counts in Prometheus text and in the JSON summary, percentiles exist and are ordered, two replicas' stats
// add up to what the routers counted, the CLI prints the endpoint's table, and every request is one log line.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { connectNats } from "@switchyard/nats";
import { clusterNames, type ReplicaStatsSnapshot } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, cli, clusterClient, eventually, root, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true });
const GOOD = 40;
const BAD = 3;

/** Prometheus text → `name{label="v",…}` (labels sorted) → value. */
function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`);
    out.set(`${m[1]}{${labels.sort().join(",")}}`, Number(m[3]));
  }
  return out;
}

const series = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(",")}}`;

describe("metrics and logs through switchyard up", () => {
  let up: Up;
  let c: ReturnType<typeof clusterClient>;
  let served: string;
  let labels: Record<string, string>;
  let badCode: string;
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  beforeAll(async () => {
    // debug: the per-request log lines (failures alone are logged at the default level).
    up = await startUp(path.join(tempDir("sy-metrics-"), "data"), ["--log-level", "debug"]);
    c = clusterClient(up);
    const reg = await cli(["models", "register", "lr", writeTempModel(LR), "--json"], env());
    expect(reg.stderr).toBe("");
    // Medium: two replicas, so the summary merges two sources.
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "metrics-ep",
      config: { served_entities: [{ entity_name: "lr", entity_version: "1", workload_size: "Medium" }] },
    });
    expect(created.status).toBe(200);
    const ready = await c.waitReady("metrics-ep");
    served = ready.config.served_entities[0].name;
    labels = { endpoint: "metrics-ep", served_model: served, model: "lr", version: "1" };
    // Both replicas report before any traffic, so neither's counts start after some requests were sent.
    await eventually(async () => {
      const m = parsePrometheus((await c.call("GET", "/metrics")).text);
      return m.get(series("switchyard_replicas_ready", labels)) === 2 || undefined;
    }, "two replicas reporting");

    for (let i = 0; i < GOOD; i += 8) {
      const batch = Array.from({ length: 8 }, (_, j) =>
        c.invoke("metrics-ep", { instances: [[i + j, 1]] }, { "x-request-id": `good-${i + j}` }),
      );
      for (const r of await Promise.all(batch)) expect(r.status).toBe(200);
    }
    // Three features for a two-input model: refused by the replica, through the router.
    for (let i = 0; i < BAD; i++) {
      const r = await c.invoke("metrics-ep", { instances: [[1, 2, 3]] });
      expect(r.status).toBe(400);
      badCode = r.json.error_code;
    }
    expect(badCode).toBe("INVALID_PARAMETER_VALUE");
    // An endpoint that does not exist: the router decides, and counts it under served model "".
    const nope = await c.invoke("no-such-endpoint", { instances: [[1, 2]] });
    expect(nope.status).toBe(404);
  });

  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
  });

  it("counts every request exactly in /metrics, errors by code, and merges the two replicas", async () => {
    const total = GOOD + BAD;
    const m = await eventually(async () => {
      const r = await c.call("GET", "/metrics");
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const parsed = parsePrometheus(r.text);
      return parsed.get(series("switchyard_requests_total", labels)) === total &&
        parsed.get(series("switchyard_replica_requests_total", labels)) === total
        ? parsed
        : undefined;
    }, "all requests counted");
    expect(m.get(series("switchyard_request_errors_total", { ...labels, code: badCode }))).toBe(BAD);
    expect(m.get(series("switchyard_request_duration_seconds_count", labels))).toBe(total);
    expect(m.get(series("switchyard_request_duration_seconds_bucket", { ...labels, le: "+Inf" }))).toBe(
      total,
    );
    expect(m.get(series("switchyard_request_duration_seconds_sum", labels))).toBeGreaterThan(0);
    // Buckets in seconds, from 50 µs up.
    expect(m.has(series("switchyard_request_duration_seconds_bucket", { ...labels, le: "0.00005" }))).toBe(
      true,
    );
    expect(m.get(series("switchyard_replicas_ready", labels))).toBe(2);
    expect(m.get(series("switchyard_batch_rows_total", labels))).toBeGreaterThanOrEqual(GOOD);
    const nope = { endpoint: "no-such-endpoint", served_model: "", model: "", version: "" };
    expect(
      m.get(series("switchyard_request_errors_total", { ...nope, code: "RESOURCE_DOES_NOT_EXIST" })),
    ).toBe(1);

    // Each replica's own report, read off NATS: the merged count is their sum, and both took traffic.
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    try {
      const names = clusterNames(up.info().cluster);
      const seen = new Map<string, number>();
      const sub = nc.subscribe(names.subjects.allReplicaStats, {
        callback: (_err, msg) => {
          const s = msg.json<ReplicaStatsSnapshot>();
          if (s.endpoint === "metrics-ep") seen.set(s.replica_id, s.requests);
        },
      });
      const perReplica = await eventually(
        () => (seen.size === 2 ? [...seen.values()] : undefined),
        "2 replicas",
      );
      sub.unsubscribe();
      expect(perReplica.reduce((a, b) => a + b, 0)).toBe(total);
      for (const n of perReplica) expect(n).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
  });

  it("serves one endpoint's series as Databricks does, 404 for an unknown endpoint, and only with a token", async () => {
    const r = await c.call("GET", "/api/2.0/serving-endpoints/metrics-ep/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain/);
    const m = parsePrometheus(r.text);
    expect(m.get(series("switchyard_requests_total", labels))).toBe(GOOD + BAD);
    expect([...m.keys()].filter((k) => !k.includes('endpoint="metrics-ep"'))).toEqual([]);

    const missing = await c.call("GET", "/api/2.0/serving-endpoints/no-such-endpoint/metrics");
    expect(missing.status).toBe(404);
    expect(missing.json.error_code).toBe("RESOURCE_DOES_NOT_EXIST");
    const missingJson = await c.call("GET", "/api/2.0/switchyard/metrics/endpoints/no-such-endpoint");
    expect(missingJson.status).toBe(404);
    expect(missingJson.json.error_code).toBe("RESOURCE_DOES_NOT_EXIST");

    for (const p of [
      "/metrics",
      "/api/2.0/switchyard/metrics",
      "/api/2.0/serving-endpoints/metrics-ep/metrics",
    ]) {
      const anon = await fetch(`${c.http}${p}`);
      expect(anon.status, p).toBe(401);
    }
  });

  it("summarises the endpoint over 1 and 5 minutes with ordered percentiles", async () => {
    const e = await eventually(async () => {
      const r = await c.call("GET", "/api/2.0/switchyard/metrics/endpoints/metrics-ep");
      expect(r.status).toBe(200);
      return r.json.windows["1m"].requests === GOOD + BAD ? r.json : undefined;
    }, "summary counts");
    expect(e.name).toBe("metrics-ep");
    expect(e.served_models).toHaveLength(1);
    const s = e.served_models[0];
    expect(s).toMatchObject({
      name: served,
      model_name: "lr",
      model_version: 1,
      replicas: { ready: 2 },
      held: 0,
    });
    for (const w of [e.windows["1m"], e.windows["5m"], s.windows["1m"], s.windows["5m"]]) {
      expect(w.requests).toBe(GOOD + BAD);
      expect(w.errors).toEqual({ [badCode]: BAD });
      expect(w.error_rate).toBe(Math.round((BAD / (GOOD + BAD)) * 1000) / 1000);
      expect(w.rps).toBeGreaterThan(0);
      for (const p of [w.latency_ms, w.queue_ms, w.compute_ms]) {
        expect(p.p50).toBeGreaterThan(0);
        expect(p.p50).toBeLessThanOrEqual(p.p95);
        expect(p.p95).toBeLessThanOrEqual(p.p99);
      }
      expect(w.avg_batch_size).toBeGreaterThanOrEqual(1);
    }
    const all = await c.call("GET", "/api/2.0/switchyard/metrics");
    expect(all.status).toBe(200);
    expect(typeof all.json.at).toBe("number");
    // Existing endpoints only: the unknown endpoint's errors are in /metrics, not in the endpoint list.
    expect(all.json.endpoints.map((x: { name: string }) => x.name)).toEqual(["metrics-ep"]);
  });

  it("prints the table with `switchyard endpoints metrics`, as JSON too, and --watch stops on Ctrl-C", async () => {
    const table = await cli(["endpoints", "metrics", "metrics-ep"], env());
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    const lines = table.stdout.split("\n");
    expect(lines[0]).toBe(`metrics-ep — ${served}: models:/lr/1`);
    expect(lines[1]).toMatch(
      /^WINDOW\s+SERVED MODEL\s+REQUESTS\s+RPS\s+ERRORS\s+P50 MS\s+P95 MS\s+P99 MS\s+REPLICAS$/,
    );
    const row = (window: string, name: string) =>
      lines.find((l) => l.startsWith(window) && l.split(/\s+/)[1] === name)?.split(/\s+/);
    for (const window of ["1m", "5m"]) {
      expect(row(window, served)?.slice(2, 3)).toEqual([String(GOOD + BAD)]);
      expect(row(window, served)?.[4]).toBe(`${badCode}:${BAD}`);
      expect(row(window, served)?.at(-1)).toBe("2");
      expect(row(window, "(endpoint)")?.[2]).toBe(String(GOOD + BAD));
    }

    const json = await cli(["endpoints", "metrics", "metrics-ep", "--json"], env());
    expect(JSON.parse(json.stdout).windows["5m"].requests).toBe(GOOD + BAD);

    const missing = await cli(["endpoints", "metrics", "no-such-endpoint"], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no-such-endpoint/);

    const watch = spawn(process.execPath, [BIN, "endpoints", "metrics", "metrics-ep", "--watch", "--json"], {
      cwd: root,
      env: { ...process.env, SWITCHYARD_NATS_URL: "", ...env() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    watch.stdout.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => watch.on("exit", (code) => r(code)));
    // Two refreshes, two seconds apart, each one JSON document on its line.
    await eventually(() => (out.split("\n").filter(Boolean).length >= 2 ? true : undefined), "two refreshes");
    watch.kill("SIGINT");
    expect(await exited).toBe(0);
    for (const line of out.split("\n").filter(Boolean)) expect(JSON.parse(line).name).toBe("metrics-ep");
  });

  it("logs one JSON line per request with its id, endpoint and served model, and returns the id", async () => {
    const r = await c.invoke("metrics-ep", { instances: [[1, 2]] }, { "x-request-id": "trace-me-1" });
    expect(r.headers.get("x-request-id")).toBe("trace-me-1");
    const failed = await c.call("GET", "/api/2.0/serving-endpoints/no-such-endpoint");
    const generated = failed.headers.get("x-request-id");
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);

    const logFile = path.join(up.dataDir, "logs", "switchyard.log");
    const lines = () =>
      readFileSync(logFile, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const ok = await eventually(
      () => lines().find((l) => l.requestId === "trace-me-1"),
      "the request's line",
    );
    expect(ok).toMatchObject({
      level: 20,
      msg: "request",
      method: "POST",
      endpoint: "metrics-ep",
      servedModel: served,
      status: 200,
    });
    expect(typeof ok.durationMs).toBe("number");
    const bad = await eventually(() => lines().find((l) => l.requestId === generated), "the failure's line");
    expect(bad).toMatchObject({
      level: 40,
      msg: "request failed",
      endpoint: "no-such-endpoint",
      status: 404,
      errorCode: "RESOURCE_DOES_NOT_EXIST",
    });
    // The ids the first requests were sent with are the ids they were logged with.
    const requestLines = lines().filter(
      (l) => l.msg === "request" && String(l.requestId).startsWith("good-"),
    );
    expect(requestLines).toHaveLength(GOOD);
  });
});
