// Stream jobs as users manage them: `switchyard stream …` and the HTTP routes against `switchyard up` (the real
// coordinator answers), then the human output of `status` and `list` for views with every field set, from a
// management API double on the shared server (a running job's rates and latencies are not the same twice).
import { mkdirSync, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "@switchyard/nats";
import { clusterNames, type StreamJobView } from "@switchyard/protocol";
import { buildLinear } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { apiDouble, natsPerFile, uniqueCluster } from "../packages/client/test/fixtures/doubles.js";
import { cli, clusterClient, root, startUpWithModel, type Up } from "./helpers/up.js";

const LR = { inputs: 2, weights: [0.75, -1.25], bias: [0.5], sigmoid: true };

let up: Up;
let data: string;
let nats: string[];
let C: ReturnType<typeof clusterNames>;

const files = natsPerFile();

beforeAll(async () => {
  up = await startUpWithModel("lr", buildLinear(LR), "champion");
  data = up.dataDir;
  nats = ["--nats", up.info().natsUrl];
  C = clusterNames(up.info().cluster);
  const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "EVENTS", subjects: ["events.>"] });
  } finally {
    await nc.close();
  }
}, 120_000);
afterAll(async () => {
  await up?.stop();
});

/** The CLI resolves relative paths against its working directory, which `cli` sets to the repository root. */
const relative = (p: string) => path.relative(root, p);

describe("switchyard stream (a running cluster)", () => {
  it("create sends the flags as the request's fields; list, status, stop, start and delete", async () => {
    const spec = path.join(data, "features.json");
    writeFileSync(
      spec,
      JSON.stringify({
        key: "card_id",
        event_time: "ts",
        allowed_lateness: "30s",
        windows: [{ name: "amount_sum_5m", type: "sliding", size: "5m", agg: "sum", field: "amount" }],
      }),
    );
    const created = await cli([
      "stream",
      "create",
      "--name",
      "fraud",
      "--model",
      "models:/lr@champion",
      "--source-stream",
      "EVENTS",
      "--source-subject",
      "events.cards",
      "--start",
      "new",
      "--sink-subject",
      "scores.fraud",
      "--key",
      "card_id",
      "--event-time",
      "ts",
      "--columns",
      "amount, amount_sum_5m",
      "--features",
      relative(spec),
      "--batch",
      "128",
      "--max-wait-ms",
      "20",
      "--json",
      ...nats,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toBe("");
    const view = JSON.parse(created.stdout) as StreamJobView;
    expect(view).toMatchObject({
      name: "fraud",
      kind: "stream",
      state: "RUNNING",
      message: "",
      source: { stream: "EVENTS", subject: "events.cards", consumer: C.streamConsumer("fraud") },
      sink: { kind: "subject", subject: "scores.fraud", stream: C.streams.sink("fraud") },
      status: { lag: 0, results: 0, dlq: 0, late: 0, delivery: "exactly-once" },
    });
    // The request as the coordinator parsed it: every flag under its field, durations in ms, defaults filled.
    expect(view.request).toEqual({
      name: "fraud",
      model: "models:/lr@champion",
      source_stream: "EVENTS",
      source_subject: "events.cards",
      start: "new",
      sink_subject: "scores.fraud",
      key: ["card_id"],
      event_time: "ts",
      columns: ["amount", "amount_sum_5m"],
      features: {
        key: "card_id",
        event_time: "ts",
        allowed_lateness: 30_000,
        windows: [{ name: "amount_sum_5m", type: "sliding", size: 300_000, agg: "sum", field: "amount" }],
        lookups: [],
      },
      batch: 128,
      max_wait_ms: 20,
      parallelism: 1,
      delivery: "exactly-once",
    });

    const list = await cli(["stream", "list", ...nats]);
    expect(list.code, list.stderr).toBe(0);
    const [header, ...rows] = list.stdout.trimEnd().split("\n");
    expect(header!.split(/\s{2,}/)).toEqual(["NAME", "STATE", "SOURCE", "SINK", "LAG", "EVENTS/S"]);
    expect(rows.map((r) => r.split(/\s{2,}/).slice(0, 5))).toEqual([
      ["fraud", "RUNNING", "EVENTS events.cards", `scores.fraud (stream ${C.streams.sink("fraud")})`, "0"],
    ]);
    const listJson = JSON.parse((await cli(["stream", "list", "--json", ...nats])).stdout);
    expect(listJson.streams.map((j: StreamJobView) => [j.name, j.state])).toEqual([["fraud", "RUNNING"]]);

    const stopped = await cli(["stream", "stop", "fraud", ...nats]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/^fraud STOPPED lag 0, \d+ events\/s, 0 results\n$/);
    const again = await cli(["stream", "stop", "fraud", ...nats]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("error: stream job 'fraud' is already stopped\n");

    const status = await cli(["stream", "status", "fraud", ...nats]);
    expect(status.code, status.stderr).toBe(0);
    const lines = status.stdout.split("\n");
    expect(lines.slice(0, 4)).toEqual([
      "stream fraud",
      "state     STOPPED",
      "source    EVENTS events.cards",
      `sink      scores.fraud (stream ${C.streams.sink("fraud")})`,
    ]);
    expect(lines[4]).toMatch(/^model {5}models:\/lr@champion → /);
    expect(lines[5]).toBe("delivery  exactly-once");
    expect(lines[6]).toBe("lag       0");
    expect(lines.slice(9, 12)).toEqual(["results   0", "dlq       0", "late      0"]);

    const started = JSON.parse((await cli(["stream", "start", "fraud", "--json", ...nats])).stdout);
    expect(started).toMatchObject({ name: "fraud", state: "RUNNING" });
    const status2 = JSON.parse((await cli(["stream", "status", "fraud", "--json", ...nats])).stdout);
    expect(status2).toMatchObject({ name: "fraud", state: "RUNNING", request: view.request });

    const deleted = await cli(["stream", "delete", "fraud", ...nats]);
    expect([deleted.code, deleted.stdout, deleted.stderr]).toEqual([0, "deleted stream fraud\n", ""]);
    const gone = await cli(["stream", "status", "fraud", ...nats]);
    expect([gone.code, gone.stderr]).toEqual([1, "error: stream job 'fraud' does not exist\n"]);
    const goneJson = await cli(["stream", "status", "fraud", "--json", ...nats]);
    expect(goneJson.code).toBe(1);
    expect(JSON.parse(goneJson.stderr)).toEqual({
      error_code: "RESOURCE_DOES_NOT_EXIST",
      message: "stream job 'fraud' does not exist",
    });
    expect((await cli(["stream", "list", ...nats])).stdout).toBe("no stream jobs\n");
  });

  it("resolves --source-dir and --sink-dir against the working directory", async () => {
    const landing = path.join(data, "landing");
    mkdirSync(landing, { recursive: true });
    const out = path.join(data, "scored");
    const r = await cli([
      "stream",
      "create",
      "--name",
      "files",
      "--model",
      "models:/lr/1",
      "--source-dir",
      relative(landing),
      "--format",
      "csv",
      "--sink-dir",
      relative(out),
      "--sink-format",
      "jsonl",
      "--json",
      ...nats,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout) as StreamJobView;
    expect(view.request).toMatchObject({ source_dir: realpathSync(landing), format: "csv" });
    expect(view.sink).toEqual({ kind: "dir", dir: realpathSync(data) + "/scored", format: "jsonl" });
    expect(view.source).toMatchObject({ stream: C.streams.landing });
    const status = await cli(["stream", "status", "files", ...nats]);
    expect(status.stdout.split("\n").slice(2, 4)).toEqual([
      `source    ${realpathSync(landing)} (csv)`,
      `sink      ${realpathSync(data)}/scored (jsonl)`,
    ]);
    expect((await cli(["stream", "delete", "files", ...nats])).code).toBe(0);
  });

  it("refuses bad flags naming the flag, and prints the server's INVALID_PARAMETER_VALUE naming the field", async () => {
    const base = [
      "stream",
      "create",
      "--name",
      "bad",
      "--source-stream",
      "EVENTS",
      "--sink-subject",
      "s.bad",
    ];
    const withModel = [...base, "--model", "models:/lr/1"];
    const batch = await cli([...withModel, "--batch", "2.5", ...nats]);
    expect([batch.code, batch.stderr]).toEqual([
      1,
      "error: --batch: expected a positive integer, got '2.5'\n",
    ]);
    const par = await cli([...withModel, "--parallelism", "0", ...nats]);
    expect(par.stderr).toBe("error: --parallelism: expected a positive integer, got '0'\n");
    const wait = await cli([...withModel, "--max-wait-ms", "soon", "--json", ...nats]);
    expect([wait.code, JSON.parse(wait.stderr)]).toEqual([
      1,
      {
        error_code: "INVALID_PARAMETER_VALUE",
        message: "--max-wait-ms: expected a positive integer, got 'soon'",
      },
    ]);

    const missingSpec = path.join(data, "nope.json");
    const unread = await cli([...withModel, "--features", missingSpec, ...nats]);
    expect(unread.code).toBe(1);
    expect(unread.stderr).toMatch(new RegExp(`^error: --features: cannot read '${missingSpec}': ENOENT`));
    const badSpec = path.join(data, "bad.json");
    writeFileSync(badSpec, '{"key": "card_id",');
    const notJson = await cli([...withModel, "--features", badSpec, ...nats]);
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toMatch(new RegExp(`^error: --features: '${badSpec}' is not valid JSON: `));

    const noModel = await cli([...base, ...nats]);
    expect([noModel.code, noModel.stderr]).toEqual([
      1,
      "error: model: expected exactly one of model, endpoint (what scores the events), got none\n",
    ]);
    const noModelJson = await cli([...base, "--json", ...nats]);
    expect(JSON.parse(noModelJson.stderr)).toEqual({
      error_code: "INVALID_PARAMETER_VALUE",
      message: "model: expected exactly one of model, endpoint (what scores the events), got none",
    });
    const noStream = await cli([...withModel.map((a) => (a === "EVENTS" ? "NOPE" : a)), ...nats]);
    expect(noStream.stderr).toBe("error: source_stream: stream 'NOPE' does not exist\n");
    const choice = await cli([...withModel, "--delivery", "twice", ...nats]);
    expect(choice.code).toBe(2);
    expect(choice.stderr).toContain(
      "argument 'twice' is invalid. Allowed choices are exactly-once, at-least-once",
    );
    expect((await cli(["stream", "list", ...nats])).stdout).toBe("no stream jobs\n");
  });

  it("serves /api/2.0/switchyard/streams behind the token", async () => {
    const { call } = clusterClient(up);
    const body = {
      name: "http",
      model: "models:/lr@champion",
      source_stream: "EVENTS",
      sink_subject: "scores.http",
      delivery: "at-least-once",
    };
    const created = await call("POST", "/api/2.0/switchyard/streams", body);
    expect(created.status, created.text).toBe(200);
    expect(created.json).toMatchObject({
      name: "http",
      state: "RUNNING",
      source: { stream: "EVENTS", subject: "events.>" },
      sink: { kind: "subject", subject: "scores.http" },
      status: { delivery: "at-least-once" },
    });
    const list = await call("GET", "/api/2.0/switchyard/streams");
    expect(list.json.streams.map((j: StreamJobView) => j.name)).toEqual(["http"]);
    expect((await call("GET", "/api/2.0/switchyard/streams/http")).json).toMatchObject({ name: "http" });
    const stop = await call("POST", "/api/2.0/switchyard/streams/http/stop");
    expect([stop.status, stop.json.state]).toEqual([200, "STOPPED"]);
    const start = await call("POST", "/api/2.0/switchyard/streams/http/start");
    expect([start.status, start.json.state]).toEqual([200, "RUNNING"]);
    const running = await call("POST", "/api/2.0/switchyard/streams/http/start");
    expect([running.status, running.json]).toEqual([
      409,
      { error_code: "RESOURCE_CONFLICT", message: "stream job 'http' is already running" },
    ]);
    const taken = await call("POST", "/api/2.0/switchyard/streams", body);
    expect([taken.status, taken.json]).toEqual([
      409,
      { error_code: "RESOURCE_ALREADY_EXISTS", message: "stream job 'http' already exists" },
    ]);
    const bad = await call("POST", "/api/2.0/switchyard/streams", { ...body, name: "h2", batch: 0 });
    expect([bad.status, bad.json]).toEqual([
      400,
      { error_code: "INVALID_PARAMETER_VALUE", message: "batch: Too small: expected number to be >0" },
    ]);
    const del = await call("DELETE", "/api/2.0/switchyard/streams/http");
    expect([del.status, del.json]).toEqual([200, {}]);
    const gone = await call("GET", "/api/2.0/switchyard/streams/http");
    expect([gone.status, gone.json]).toEqual([
      404,
      { error_code: "RESOURCE_DOES_NOT_EXIST", message: "stream job 'http' does not exist" },
    ]);
    const anonymous = await fetch(`${up.info().httpUrl}/api/2.0/switchyard/streams`);
    expect(anonymous.status).toBe(401);
  });
});

/** A job with every field set, as a coordinator would answer for a running job. */
const RUNNING_VIEW: StreamJobView = {
  name: "fraud",
  kind: "stream",
  request: {
    name: "fraud",
    model: "models:/lr@champion",
    source_stream: "EVENTS",
    source_subject: "events.cards",
    sink_subject: "scores.fraud",
  },
  source: { stream: "EVENTS", subject: "events.cards", consumer: "stream_fraud" },
  sink: { kind: "subject", subject: "scores.fraud", stream: "SY_SINK_fraud" },
  ack_wait_ms: 30_000,
  state: "RUNNING",
  message: "",
  created_at: 1,
  updated_at: 2,
  status: {
    lag: 42,
    events_per_s: 5123.4,
    latency_ms: { p50: 7, p99: 50 },
    results: 100_000,
    dlq: 3,
    late: 1,
    delivery: "exactly-once",
    model: { name: "lr", version: 2 },
    scorers: [
      { worker_id: "w-1", node_id: "node-a", state: "RUNNING", message: "" },
      { worker_id: "w-2", node_id: "node-b", state: "FAILED", message: "exit 1" },
    ],
  },
};

/** A failed endpoint job reading a landing directory into part files, before any scorer reported. */
const FAILED_VIEW: StreamJobView = {
  name: "landing",
  kind: "stream",
  request: {
    name: "landing",
    endpoint: "fraud-ep",
    source_dir: "/data/in",
    format: "csv",
    sink_dir: "/data/out",
  },
  source: { stream: "SY_LANDING", subject: "sy.landing.landing.>", consumer: "stream_landing" },
  sink: { kind: "dir", dir: "/data/out", format: "parquet" },
  ack_wait_ms: 30_000,
  state: "STOPPED",
  message: "endpoint 'fraud-ep' was deleted",
  created_at: 1,
  updated_at: 2,
  status: {
    lag: 7,
    events_per_s: 0,
    latency_ms: { p50: null, p99: null },
    results: 0,
    dlq: 0,
    late: 0,
    delivery: "at-least-once",
    model: null,
    scorers: [],
  },
};

describe("switchyard stream (output and request bodies, from a management API double)", () => {
  const views = new Map([RUNNING_VIEW, FAILED_VIEW].map((v) => [v.name, v]));
  let cluster: string;
  let target: string[];
  let api: ReturnType<typeof apiDouble>;

  beforeAll(() => {
    cluster = uniqueCluster();
    target = ["--nats", inject("natsUrl"), "--cluster", cluster];
  });

  const double = () => {
    api = apiDouble(files.nc(), cluster, (op, body) => {
      const name = (body as { name?: string }).name ?? "";
      if (op === "streams.list") return { body: { streams: [...views.values()] } };
      if (op === "streams.create") return { body: RUNNING_VIEW };
      const v = views.get(name);
      return v ? { body: v } : { error: { code: "RESOURCE_DOES_NOT_EXIST", message: `no '${name}'` } };
    });
    files.cleanups.push(api.stop);
  };

  it("status prints every field of a running and of a failed job", async () => {
    double();
    const running = await cli(["stream", "status", "fraud", ...target]);
    expect(running.stdout).toBe(
      [
        "stream fraud",
        "state     RUNNING",
        "source    EVENTS events.cards",
        "sink      scores.fraud (stream SY_SINK_fraud)",
        "model     models:/lr@champion → lr/2",
        "delivery  exactly-once",
        "lag       42",
        "events/s  5123",
        "latency   p50 7 ms, p99 50 ms",
        "results   100000",
        "dlq       3",
        "late      1",
        "",
        "SCORER  NODE    STATE    MESSAGE",
        "w-1     node-a  RUNNING",
        "w-2     node-b  FAILED   exit 1",
        "",
      ].join("\n"),
    );
    const failed = await cli(["stream", "status", "landing", ...target]);
    expect(failed.stdout).toBe(
      [
        "stream landing",
        "state     STOPPED",
        "message   endpoint 'fraud-ep' was deleted",
        "source    /data/in (csv)",
        "sink      /data/out (parquet)",
        "model     endpoint fraud-ep",
        "delivery  at-least-once",
        "lag       7",
        "events/s  0",
        "latency   p50 -, p99 -",
        "results   0",
        "dlq       0",
        "late      0",
        "",
        "no scorers running",
        "",
      ].join("\n"),
    );
    const json = await cli(["stream", "status", "fraud", "--json", ...target]);
    expect(JSON.parse(json.stdout)).toEqual(RUNNING_VIEW);
    expect(api.calls).toEqual([
      { op: "streams.get", body: { name: "fraud" } },
      { op: "streams.get", body: { name: "landing" } },
      { op: "streams.get", body: { name: "fraud" } },
    ]);
  });

  it("list prints a table of name, state, source, sink, lag and events/s", async () => {
    double();
    const list = await cli(["stream", "list", ...target]);
    expect(list.stdout).toBe(
      [
        "NAME     STATE    SOURCE               SINK                                 LAG  EVENTS/S",
        "fraud    RUNNING  EVENTS events.cards  scores.fraud (stream SY_SINK_fraud)  42   5123",
        "landing  STOPPED  /data/in (csv)       /data/out (parquet)                  7    0",
        "",
      ].join("\n"),
    );
    expect(JSON.parse((await cli(["stream", "list", "--json", ...target])).stdout)).toEqual({
      streams: [RUNNING_VIEW, FAILED_VIEW],
    });
  });

  it("create sends comma lists split, absolute directories and only the flags given", async () => {
    double();
    const r = await cli([
      "stream",
      "create",
      "--name",
      "keyed",
      "--endpoint",
      "fraud-ep",
      "--source-dir",
      "landing/in",
      "--sink-dir",
      "./out",
      "--key",
      "card_id,merchant",
      "--parallelism",
      "4",
      "--delivery",
      "at-least-once",
      ...target,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("fraud RUNNING lag 42, 5123 events/s, 100000 results\n");
    expect(api.calls).toEqual([
      {
        op: "streams.create",
        body: {
          name: "keyed",
          endpoint: "fraud-ep",
          source_dir: path.join(root, "landing/in"),
          sink_dir: path.join(root, "out"),
          key: ["card_id", "merchant"],
          parallelism: 4,
          delivery: "at-least-once",
        },
      },
    ]);
  });
});
