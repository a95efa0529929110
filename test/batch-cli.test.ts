// Batch jobs as users run them: `switchyard up`, then `switchyard batch submit … --wait --json` and the HTTP
// routes, on files inside the cluster's data roots (by default the directory `up` runs in and its data dir).
// Predictions are checked against raw onnxruntime-node; outputs are read back with DuckDB.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { buildLinear, eventually } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, startUpWithModel, type Up } from "./helpers/up.js";

const LR = { inputs: 2, weights: [0.75, -1.25], bias: [0.5], sigmoid: true };
const ROWS = Array.from({ length: 300 }, (_, i) => [i, ((i * 37) % 101) / 50 - 1, ((i * 11) % 53) / 26 - 1]);

let up: Up;
let data: string;
let nats: string[];

beforeAll(async () => {
  up = await startUpWithModel("lr", buildLinear(LR), "champion");
  data = up.dataDir;
  nats = ["--nats", up.info().natsUrl];
  mkdirSync(path.join(data, "in"), { recursive: true });
  writeFileSync(path.join(data, "in", "rows.csv"), `id,a,b\n${ROWS.map((r) => r.join(",")).join("\n")}\n`);
}, 120_000);
afterAll(async () => {
  await up?.stop();
});

async function reference(): Promise<number[]> {
  const s = await ort.InferenceSession.create(buildLinear(LR));
  const out = await s.run({
    input: new ort.Tensor("float32", new Float32Array(ROWS.flatMap((r) => r.slice(1))), [ROWS.length, 2]),
  });
  return Array.from(out[s.outputNames[0]!]!.data as Float32Array);
}

async function readParquet(file: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(`SELECT * FROM read_parquet('${file}')`)).getRowObjectsJS() as Record<
      string,
      unknown
    >[];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

describe("switchyard batch", () => {
  it("submit --wait --json scores a CSV into one Parquet file and prints the summary", async () => {
    const output = path.join(data, "out", "scored.parquet");
    const r = await cli([
      "batch",
      "submit",
      "--model",
      "models:/lr@champion",
      "--input",
      path.join(data, "in", "rows.csv"),
      "--output",
      output,
      "--columns",
      "a,b",
      "--shard-rows",
      "100",
      "--wait",
      "--json",
      ...nats,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({
      state: "SUCCEEDED",
      rows: 300,
      total_rows: 300,
      shards: 3,
      output,
      model: { uri: "models:/lr@champion", name: "lr", version: 1 },
    });
    const got = await readParquet(output);
    const want = await reference();
    expect(got.map((row) => Number(row.id))).toEqual(ROWS.map((row) => row[0]));
    got.forEach((row, i) => {
      expect(Number(row.prediction)).toBeCloseTo(want[i]!, 5);
    });

    const status = await cli(["batch", "status", summary.id, "--json", ...nats]);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: summary.id, state: "SUCCEEDED", rows: 300 });
    const list = await cli(["batch", "list", ...nats]);
    expect(list.stdout).toContain(summary.id);
    expect(list.stdout).toContain("lr/1");
  });

  it("exits 1 with the reason when the job fails or a path is outside the data roots", async () => {
    writeFileSync(path.join(data, "in", "bad.csv"), "id,a,b\n1,0.5,0.25\n2,oops,1\n");
    const failed = await cli([
      "batch",
      "submit",
      "--model",
      "models:/lr/1",
      "--input",
      path.join(data, "in", "bad.csv"),
      "--output",
      path.join(data, "out", "bad/"),
      "--columns",
      "a,b",
      "--wait",
      "--json",
      ...nats,
    ]);
    expect(failed.code).toBe(1);
    const summary = JSON.parse(failed.stdout);
    expect(summary.state).toBe("FAILED");
    expect(summary.message).toContain("row 2");
    const outside = await cli([
      "batch",
      "submit",
      "--model",
      "models:/lr/1",
      "--input",
      "/etc/passwd",
      "--output",
      path.join(data, "out", "x/"),
      ...nats,
    ]);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/^error: input: '\/etc\/passwd' is outside the cluster's data roots/);
  });

  it("serves /api/2.0/switchyard/batch/jobs behind the token", async () => {
    const { call } = clusterClient(up);
    const body = {
      model: "models:/lr/1",
      input: path.join(data, "in", "rows.csv"),
      output: path.join(data, "out", "http/"),
      columns: ["a", "b"],
    };
    const created = await call("POST", "/api/2.0/switchyard/batch/jobs", body);
    expect(created.status, created.text).toBe(200);
    const id = created.json.id as string;
    const end = await eventually(
      async () => {
        const r = await call("GET", `/api/2.0/switchyard/batch/jobs/${id}`);
        return r.json?.state === "SUCCEEDED" ? r.json : undefined;
      },
      "the HTTP job SUCCEEDED",
      60_000,
    );
    expect(end.progress).toEqual({ shards_done: 1, shards_failed: 0, rows_done: 300, error_rows: 0 });
    const list = await call("GET", "/api/2.0/switchyard/batch/jobs");
    expect(list.json.jobs.map((j: { id: string }) => j.id)).toContain(id);
    const bad = await call("POST", "/api/2.0/switchyard/batch/jobs", {
      model: "models:/lr/1",
      input: body.input,
    });
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({
      error_code: "INVALID_PARAMETER_VALUE",
      message: "output: Invalid input: expected string, received undefined",
    });
    const ended = await call("POST", `/api/2.0/switchyard/batch/jobs/${id}/cancel`);
    expect(ended.status).toBe(409);
    expect(ended.json.error_code).toBe("RESOURCE_CONFLICT");
    const anonymous = await fetch(`${up.info().httpUrl}/api/2.0/switchyard/batch/jobs`);
    expect(anonymous.status).toBe(401);
  });
});
