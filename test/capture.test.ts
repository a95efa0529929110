// Inference tables end to end: `switchyard up`, an endpoint with Databricks' auto_capture_config, requests that
// succeed and fail through the HTTP bridge and raw NATS `sy.invoke`, then `switchyard capture export` to JSONL
// and Parquet, read back with DuckDB and with the batch reader. Then the capture path under a missing, full or
// stalled capture stream, with a router in this process whose capture counts the test reads.
import { readFileSync } from "node:fs";
import path from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { DiscardPolicy, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { SwitchyardClient, startCapturingRouter } from "@switchyard/client";
import { ensureCaptureStream } from "@switchyard/coordinator";
import { Frame } from "@switchyard/data";
import { inspect } from "@switchyard/jobs";
import { connectNats } from "@switchyard/nats";
import {
  CAPTURE_STREAM_LIMITS,
  type ClusterNames,
  clusterNames,
  ERROR_CATALOG,
  type ErrorCode,
} from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true });
const MODEL = "catalog.schema.capture_lr";
const SERVED = "catalog_schema_capture_lr-1";

async function lrReference(rows: number[][]): Promise<number[]> {
  const session = await ort.InferenceSession.create(LR);
  const out = await session.run({
    input: new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, 2]),
  });
  await session.release();
  return Array.from(out.output!.data as Float32Array);
}

interface Sent {
  requestId: string;
  body: string;
  status: number;
  reply: unknown;
  clientRequestId: string | null;
}

type Row = Record<string, unknown>;

describe("inference tables", () => {
  let up: Up;
  let names: ClusterNames;
  let nc: NatsConnection;
  let call: ReturnType<typeof clusterClient>["call"];
  let invoke: ReturnType<typeof clusterClient>["invoke"];
  let waitReady: ReturnType<typeof clusterClient>["waitReady"];
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });
  const out = tempDir("sy-capture-out-");

  const exportRows = async (endpoint: string, file: string, extra: string[] = []) => {
    const r = await cli(["capture", "export", endpoint, "--output", file, "--json", ...extra], env());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { rows: number; output: string; format: string; skipped: number };
  };
  const jsonlRows = (file: string): Row[] =>
    readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Row);
  const parquetRows = async (file: string): Promise<Row[]> => {
    const db = await DuckDBInstance.create(":memory:");
    const conn = await db.connect();
    try {
      const reader = await conn.runAndReadAll(
        `SELECT * REPLACE (CAST(date AS VARCHAR) AS date) FROM read_parquet('${file}')`,
      );
      return reader
        .getRowObjectsJS()
        .map((r) =>
          Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v])),
        );
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  };

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-capture-"), "data"));
    ({ call, invoke, waitReady } = clusterClient(up));
    names = clusterNames(up.info().cluster);
    nc = await connectNats({ servers: up.info().natsUrl });
    const reg = await cli(["models", "register", MODEL, writeTempModel(LR), "--json"], env());
    expect(reg.stderr).toBe("");
    for (const [name, capture] of [
      ["cap", { catalog_name: "ml", schema_name: "monitoring" }],
      ["cap-off", { catalog_name: "ml", schema_name: "monitoring", sampling_rate: 0 }],
    ] as const) {
      const created = await call("POST", "/api/2.0/serving-endpoints", {
        name,
        config: {
          served_entities: [{ entity_name: MODEL, entity_version: "1", workload_size: "Small" }],
          auto_capture_config: capture,
        },
      });
      expect(created.status, created.text).toBe(200);
    }
    await waitReady("cap");
    await waitReady("cap-off");
  });

  afterAll(async () => {
    await nc?.close();
    if (up) expect(await up.stop()).toBe(0);
  });

  it("refuses a bad auto_capture_config, naming the field and what was expected", async () => {
    const bad = async (capture: unknown) => {
      const r = await call("POST", "/api/2.0/serving-endpoints", {
        name: "cap-bad",
        config: {
          served_entities: [{ entity_name: MODEL, entity_version: "1" }],
          auto_capture_config: capture,
        },
      });
      expect(r.status).toBe(400);
      expect(r.json.error_code).toBe("INVALID_PARAMETER_VALUE");
      return r.json.message as string;
    };
    expect(await bad({ catalog_name: "ml", schema_name: "s", sampling_rate: 2 })).toContain(
      "config.auto_capture_config.sampling_rate: expected a number from 0 to 1",
    );
    expect(await bad({ catalog_name: "ml", schema_name: "s", sampling_rate: "all" })).toContain(
      "config.auto_capture_config.sampling_rate: expected a number from 0 to 1",
    );
    expect(await bad({ schema_name: "s" })).toContain(
      "config.auto_capture_config.catalog_name: required when the inference table is enabled",
    );
    expect(await bad({ catalog_name: "a.b", schema_name: "s" })).toContain(
      "config.auto_capture_config.catalog_name: expected a catalog name of letters, digits, '_' or '-' (no dots)",
    );
    const unknown = await bad({ catalog_name: "ml", schema_name: "s", table: "x" });
    expect(unknown).toContain("config.auto_capture_config: ");
    expect(unknown).toContain('"table"');
    expect((await call("GET", "/api/2.0/serving-endpoints/cap-bad")).status).toBe(404);
    // Disabled, it needs nothing else.
    const disabled = await call("POST", "/api/2.0/serving-endpoints", {
      name: "cap-disabled",
      config: {
        served_entities: [{ entity_name: MODEL, entity_version: "1" }],
        auto_capture_config: { enabled: false },
      },
    });
    expect(disabled.status, disabled.text).toBe(200);
    const view = (await call("GET", "/api/2.0/serving-endpoints/cap-disabled")).json;
    expect(view.pending_config.auto_capture_config).toMatchObject({
      enabled: false,
      table_name_prefix: "cap-disabled",
      state: { payload_table: { status: "DISABLED" } },
    });
    expect((await call("DELETE", "/api/2.0/serving-endpoints/cap-disabled")).status).toBe(200);
  });

  it("shows the payload table in the endpoint's GET body, as Databricks does", async () => {
    const r = await call("GET", "/api/2.0/serving-endpoints/cap");
    expect(r.json.config.auto_capture_config).toMatchObject({
      catalog_name: "ml",
      schema_name: "monitoring",
      table_name_prefix: "cap",
      enabled: true,
      sampling_rate: 1,
      state: { payload_table: { name: "ml.monitoring.cap_payload", status: "ACTIVE" } },
    });
    expect(r.json.config.auto_capture_config.state.payload_table.status_message).toContain(
      "switchyard capture export cap",
    );
  });

  it("keeps captures in a file-backed stream limited by age and bytes, discarding the oldest", async () => {
    const info = await (await jetstreamManager(nc)).streams.info(names.streams.capture);
    expect(info.config.subjects).toEqual([`${names.cluster}.capture.>`]);
    expect(info.config.storage).toBe("file");
    expect(info.config.discard).toBe("old");
    expect(info.config.max_age).toBe(CAPTURE_STREAM_LIMITS.maxAgeMs * 1_000_000);
    expect(info.config.max_bytes).toBe(CAPTURE_STREAM_LIMITS.maxBytes);
  });

  it("captures every request, failed ones too, from HTTP and raw NATS; export writes them to JSONL and Parquet", async () => {
    const rows = [
      [0.5, -1.25],
      [2, 0.25],
    ];
    const want = await lrReference(rows);
    const sent: Sent[] = [];
    const http = async (body: string, requestId: string, p = "/serving-endpoints/cap/invocations") => {
      const r = await call("POST", p, body, { "x-request-id": requestId });
      // (An error the router decides is answered by the bridge's error handler, without the header.)
      if (r.status !== 404) expect(r.headers.get("x-request-id")).toBe(requestId);
      const clientRequestId = (JSON.parse(body) as { client_request_id?: string }).client_request_id ?? null;
      sent.push({ requestId, body, status: r.status, reply: r.json, clientRequestId });
      return r;
    };
    // N = 4 successful requests over HTTP, one with Databricks' client_request_id.
    for (let i = 0; i < 3; i++) {
      const r = await http(JSON.stringify({ instances: rows }), `ok-http-${i}`);
      expect(r.status).toBe(200);
    }
    const withClientId = await http(
      JSON.stringify({ client_request_id: "order-77", dataframe_split: { columns: ["a", "b"], data: rows } }),
      "ok-http-client-id",
    );
    expect(withClientId.status).toBe(200);
    // M = 2 failing over HTTP: a body the replica refuses (400), and a served model the router does not know (404).
    expect((await http(JSON.stringify({ features: rows }), "bad-http-body")).status).toBe(400);
    expect(
      (
        await http(
          JSON.stringify({ instances: rows }),
          "bad-http-served",
          "/serving-endpoints/cap/served-models/nope/invocations",
        )
      ).status,
    ).toBe(404);
    // Raw NATS clients: 2 successes and 1 failure.
    const raw = async (body: string, requestId: string) => {
      const h = natsHeaders();
      h.set("content-type", "application/json");
      h.set("x-request-id", requestId);
      const m = await nc.request(names.subjects.invoke("cap"), body, { headers: h, timeout: 30_000 });
      const code = m.headers?.get("x-switchyard-error-code");
      const status = code ? ERROR_CATALOG[code as ErrorCode].status : 200;
      sent.push({ requestId, body, status, reply: m.json(), clientRequestId: null });
      return status;
    };
    expect(await raw(JSON.stringify({ inputs: rows }), "ok-nats-0")).toBe(200);
    expect(
      await raw(
        JSON.stringify({
          dataframe_records: [
            { a: 0.5, b: -1.25 },
            { a: 2, b: 0.25 },
          ],
        }),
        "ok-nats-1",
      ),
    ).toBe(200);
    expect(await raw(JSON.stringify({ instances: [[1, 2, 3]] }), "bad-nats-shape")).toBe(400);
    expect(sent).toHaveLength(9);

    // Captures are published off the request path: wait until all of them are on the stream.
    const jsonl = path.join(out, "cap.jsonl");
    await eventually(
      async () => ((await exportRows("cap", jsonl)).rows === sent.length ? true : undefined),
      "9 captures",
    );
    const parquet = path.join(out, "nested", "cap.parquet");
    const exported = await exportRows("cap", parquet);
    expect(exported).toMatchObject({ rows: 9, format: "parquet", skipped: 0, output: parquet });

    for (const [file, table] of [
      [jsonl, jsonlRows(jsonl)],
      [parquet, await parquetRows(parquet)],
    ] as const) {
      expect(table, file).toHaveLength(sent.length);
      expect(new Set(table.map((r) => r.request_id))).toEqual(new Set(sent.map((s) => s.requestId)));
      for (const s of sent) {
        const row = table.find((r) => r.request_id === s.requestId)!;
        expect(row.status_code, `${file} ${s.requestId}`).toBe(s.status);
        expect(row.request).toBe(s.body);
        expect(JSON.parse(row.response as string)).toEqual(s.reply);
        expect(row.client_request_id).toBe(s.clientRequestId);
        expect(row.endpoint_name).toBe("cap");
        expect(row.sampling_fraction).toBe(1);
        expect(typeof row.execution_time_ms).toBe("number");
        expect(row.execution_time_ms as number).toBeGreaterThan(0);
        expect(row.date).toBe(new Date(row.timestamp_ms as number).toISOString().slice(0, 10));
        // No shadow on this endpoint: every row is the reply its caller got.
        expect(row.shadow).toBe(false);
        if (s.status === 200) {
          expect(row.error_code).toBeNull();
          expect(row.served_model_name).toBe(SERVED);
          expect(row.model_name).toBe(MODEL);
          expect(row.model_version).toBe(1);
          const predictions = (JSON.parse(row.response as string) as { predictions: number[] }).predictions;
          for (const [i, p] of predictions.entries()) expect(Math.abs(p - want[i]!)).toBeLessThan(1e-5);
        } else {
          expect(row.error_code).toBe((s.reply as { error_code: string }).error_code);
        }
      }
      const routerDecided = table.find((r) => r.request_id === "bad-http-served")!;
      expect(routerDecided.error_code).toBe("RESOURCE_DOES_NOT_EXIST");
      expect(routerDecided.served_model_name).toBeNull();
    }

    // The columns are plain scalars and strings, as the batch reader sees them: the export is a batch input.
    for (const file of [jsonl, parquet]) {
      const info = await inspect([file]);
      expect(info.files[0]!.rows).toBe(9);
      expect(info.columns.map((c) => c.name)).toEqual([
        "request_id",
        "client_request_id",
        "date",
        "timestamp_ms",
        "status_code",
        "error_code",
        "sampling_fraction",
        "execution_time_ms",
        "request",
        "response",
        "endpoint_name",
        "served_model_name",
        "model_name",
        "model_version",
        "shadow",
      ]);
      for (const c of info.columns)
        expect(["string", "int32", "int64", "float64", "bool"], `${file} ${c.name}`).toContain(c.dtype);
    }

    // …and a batch job reads it (columns picked with --columns, as for any input with other columns).
    const input = path.join(up.dataDir, "cap_payload.parquet");
    expect((await exportRows("cap", input)).rows).toBe(9);
    const scored = path.join(up.dataDir, "cap_scored.jsonl");
    const batch = await cli(
      [
        "batch",
        "submit",
        "--model",
        `models:/${MODEL}/1`,
        "--input",
        input,
        "--output",
        scored,
        "--columns",
        "status_code,execution_time_ms",
        "--wait",
        "--json",
      ],
      env(),
    );
    expect(batch.stderr).toBe("");
    expect(JSON.parse(batch.stdout)).toMatchObject({ state: "SUCCEEDED", rows: 9 });
    expect(jsonlRows(scored).map((r) => r.request_id)).toEqual(
      (await parquetRows(input)).map((r) => r.request_id),
    );

    // --since: a time after every capture gives none; a duration back from now gives them all.
    const none = await exportRows("cap", path.join(out, "none.jsonl"), [
      "--since",
      new Date(Date.now() + 60_000).toISOString(),
    ]);
    expect(none.rows).toBe(0);
    expect((await exportRows("cap", path.join(out, "hour.jsonl"), ["--since", "1h"])).rows).toBe(9);
  });

  it("captures nothing at sampling_rate 0", async () => {
    for (let i = 0; i < 3; i++) {
      expect((await invoke("cap-off", { instances: [[1, 2]] })).status).toBe(200);
    }
    // A capture of `cap` sent after them reaches the stream; none of `cap-off` did before it.
    const before = (await exportRows("cap", path.join(out, "before.jsonl"))).rows;
    expect((await invoke("cap", { instances: [[1, 2]] }, { "x-request-id": "marker" })).status).toBe(200);
    await eventually(
      async () =>
        (await exportRows("cap", path.join(out, "marker.jsonl"))).rows === before + 1 ? true : undefined,
      "the marker capture",
    );
    const off = await exportRows("cap-off", path.join(out, "off.parquet"));
    expect(off.rows).toBe(0);
    expect(await parquetRows(off.output)).toEqual([]);
  });

  it("captures what the TypeScript SDK sends, with the msgpack Frame body as JSON", async () => {
    const client = SwitchyardClient.fromConnection(nc, { cluster: names.cluster });
    try {
      await client.invoke("cap", { instances: [[1, 2]] }, { requestId: "sdk-json" });
      await client.invoke("cap", Frame.fromColumns({ a: [1, 3], b: [2, 4] }), { requestId: "sdk-frame" });
    } finally {
      await client.close();
    }
    const file = path.join(out, "sdk.jsonl");
    const rows = await eventually(async () => {
      await exportRows("cap", file);
      const found = jsonlRows(file).filter((r) => String(r.request_id).startsWith("sdk-"));
      return found.length === 2 ? found : undefined;
    }, "the SDK's captures");
    const json = rows.find((r) => r.request_id === "sdk-json")!;
    expect(json.request).toBe(JSON.stringify({ instances: [[1, 2]] }));
    expect(json.status_code).toBe(200);
    const frame = rows.find((r) => r.request_id === "sdk-frame")!;
    expect(frame.status_code).toBe(200);
    expect(JSON.parse(frame.request as string)).toEqual({ input: { a: [1, 3], b: [2, 4] }, params: {} });
  });

  it("an update keeps the capture it does not name, refuses renaming an enabled table, and routers follow", async () => {
    const update = (config: Record<string, unknown>) =>
      call("PUT", "/api/2.0/serving-endpoints/cap-off/config", {
        served_entities: [{ entity_name: MODEL, entity_version: "1", workload_size: "Small" }],
        ...config,
      });
    const kept = await update({});
    expect(kept.status, kept.text).toBe(200);
    expect((await waitReady("cap-off")).config.auto_capture_config).toMatchObject({
      sampling_rate: 0,
      state: { payload_table: { name: "ml.monitoring.cap-off_payload" } },
    });
    const renamed = await update({
      auto_capture_config: { catalog_name: "other", schema_name: "monitoring" },
    });
    expect(renamed.status).toBe(400);
    expect(renamed.json.message).toContain(
      "config.auto_capture_config: the inference table 'ml.monitoring.cap-off_payload' is enabled and cannot become 'other.monitoring.cap-off_payload'",
    );
    const on = await update({
      auto_capture_config: { catalog_name: "ml", schema_name: "monitoring", sampling_rate: 1 },
    });
    expect(on.status, on.text).toBe(200);
    expect((await waitReady("cap-off")).config.auto_capture_config.sampling_rate).toBe(1);
    // The bridge's router learns it with the routes: the next requests are captured.
    await eventually(async () => {
      expect((await invoke("cap-off", { instances: [[1, 2]] })).status).toBe(200);
      return (await exportRows("cap-off", path.join(out, "on.jsonl"))).rows > 0 ? true : undefined;
    }, "captures of cap-off once its sampling rate is 1");
  });

  it("refuses --since and --output it cannot use, naming the flag", async () => {
    const since = await cli(
      ["capture", "export", "cap", "--output", path.join(out, "x.jsonl"), "--since", "yesterday"],
      env(),
    );
    expect(since.code).toBe(1);
    expect(since.stderr).toContain("--since: expected an ISO time");
    const output = await cli(["capture", "export", "cap", "--output", path.join(out, "x.csv")], env());
    expect(output.code).toBe(1);
    expect(output.stderr).toContain("--output: expected a file ending in .parquet or .jsonl");
  });

  describe("a capture stream that is full, stalled or missing never slows or fails a request", () => {
    const body = new TextEncoder().encode(JSON.stringify({ instances: [[1, 2]] }));
    const send = async (router: Awaited<ReturnType<typeof startCapturingRouter>>["router"], n: number) => {
      for (let i = 0; i < n; i++) {
        const h = natsHeaders();
        h.set("content-type", "application/json");
        const r = await router.invoke("cap", body, h);
        expect(r.errorCode).toBeUndefined();
      }
    };

    it("a full stream refuses captures: they are dropped and counted", async () => {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(names.streams.capture);
      await jsm.streams.update(names.streams.capture, {
        ...info.config,
        discard: DiscardPolicy.New,
        max_msgs: info.state.messages,
      });
      const { router, capture } = await startCapturingRouter(nc, { cluster: names.cluster });
      try {
        await send(router, 4);
        await eventually(
          () => (capture.counts().cap?.dropped === 4 ? true : undefined),
          "4 dropped captures",
        );
        expect(capture.counts().cap).toEqual({ captured: 0, dropped: 4 });
      } finally {
        await router.close();
        await jsm.streams.update(names.streams.capture, { ...info.config });
      }
      // With room again, captures are stored.
      const again = await startCapturingRouter(nc, { cluster: names.cluster });
      try {
        await send(again.router, 2);
        await eventually(() => (again.capture.counts().cap?.captured === 2 ? true : undefined), "2 captures");
      } finally {
        await again.router.close();
      }
    });

    it("unacknowledged captures are bounded: past maxPending they are dropped at once", async () => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(names.streams.capture);
      // Something that takes the capture subject and never answers: every publish waits for its ack.
      const silent = nc.subscribe(names.subjects.captureOf("cap"));
      const { router, capture } = await startCapturingRouter(nc, {
        cluster: names.cluster,
        capture: { maxPending: 2, ackTimeoutMs: 60_000 },
      });
      try {
        await send(router, 5);
        await eventually(
          () => (capture.counts().cap?.dropped === 3 ? true : undefined),
          "3 dropped captures",
        );
        expect(capture.counts().cap).toEqual({ captured: 0, dropped: 3 });
      } finally {
        silent.unsubscribe();
        await router.close();
      }
    });

    it("a missing stream: requests through the bridge succeed, and the observer counts the drops", async () => {
      // (The stream was deleted by the test above.)
      const jsm = await jetstreamManager(nc);
      expect(await jsm.streams.info(names.streams.capture).catch(() => undefined)).toBeUndefined();
      // The bridge's router reports its drops in /metrics (its stats carry the capture counts).
      const droppedInMetrics = async () => {
        const text = (await call("GET", "/metrics")).text;
        const m = /^switchyard_capture_records_total\{endpoint="cap",outcome="dropped"\} (\d+)$/m.exec(text);
        return m ? Number(m[1]) : 0;
      };
      const droppedBefore = await droppedInMetrics();
      for (let i = 0; i < 3; i++) {
        const r = await invoke("cap", { instances: [[1, 2]] });
        expect(r.status).toBe(200);
        expect(r.json.predictions).toHaveLength(1);
      }
      await eventually(
        async () => ((await droppedInMetrics()) === droppedBefore + 3 ? true : undefined),
        `/metrics counting 3 more dropped captures than ${droppedBefore}`,
      );
      const { router, capture } = await startCapturingRouter(nc, { cluster: names.cluster });
      try {
        await send(router, 3);
        await eventually(
          () => (capture.counts().cap?.dropped === 3 ? true : undefined),
          "3 dropped captures",
        );
        expect(capture.counts().cap?.captured).toBe(0);
      } finally {
        await router.close();
      }
      // A coordinator creates it again as it was; captures resume.
      await ensureCaptureStream(nc, names);
      const info = await jsm.streams.info(names.streams.capture);
      expect(info.config.max_bytes).toBe(CAPTURE_STREAM_LIMITS.maxBytes);
      await eventually(async () => {
        await invoke("cap", { instances: [[1, 2]] });
        return (await exportRows("cap", path.join(out, "resumed.jsonl"))).rows > 0 ? true : undefined;
      }, "captures after the stream is back");
    });
  });
});
