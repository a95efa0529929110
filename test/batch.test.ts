// Batch jobs end to end with real processes: a coordinator and a node agent in this process, batch worker
// processes spawned by the agent (`@switchyard/jobs/batch-worker`, built by `tsc -b`), files read and written
// by DuckDB. Outputs are read back with DuckDB and compared with raw onnxruntime-node on the same rows.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { SwitchyardClient } from "@switchyard/client";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { batchFiles } from "@switchyard/jobs";
import { connectNats, listKeys, openBucket } from "@switchyard/nats";
import {
  BATCH_WORKER_ENV,
  type BatchJobView,
  type BatchWorkerLaunch,
  clusterNames,
  jobKeys,
  keys,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildMlp, eventually, prng, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });
const FEATURES = ["f0", "f1", "f2", "f3"];
const MLP = buildMlp([4, 16, 1], { seed: 5 });

let nc: NatsConnection;
let cluster: string;
let registry: Registry;
let coordinator: Coordinator;
let agent: NodeAgent;
let client: SwitchyardClient;
let root: string;
let session: ort.InferenceSession;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "batch-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  root = tempDir("sy-batch-root-");
  registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "mlp", writeTempModel(MLP), { alias: "champion" });
  await registerModel(registry, "catalog.schema.custom_model", copyFixture("sentiment"), {
    flavor: "custom",
  });
  // A short ack wait, so the kill -9 test sees its shard redelivered in seconds rather than a minute.
  coordinator = new Coordinator({
    nc,
    cluster,
    logger: log,
    batchFiles: batchFiles({ dataRoots: [root] }),
    batchAckWaitMs: 6_000,
  });
  await coordinator.start();
  agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "n1",
    threads: 2,
    cacheDir: tempDir("sy-batch-cache-"),
    logger: log,
  });
  await agent.start();
  client = SwitchyardClient.fromConnection(nc, { cluster });
  session = await ort.InferenceSession.create(MLP, { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await agent?.stop();
  await coordinator?.stop();
  await client?.close();
  await nc?.close();
});

/** Deterministic rows: an id, then the four features. */
function rows(n: number, seed = 1): number[][] {
  const rand = prng(seed);
  return Array.from({ length: n }, (_, i) => [
    i,
    ...FEATURES.map(() => Math.round((rand() * 4 - 2) * 1000) / 1000),
  ]);
}

function writeCsv(file: string, data: number[][]): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `id,${FEATURES.join(",")}\n${data.map((r) => r.join(",")).join("\n")}\n`);
  return file;
}

/** DuckDB: the reader users of these files would use; it is not the product's code path. */
async function query(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** The rows of every part file of an output directory, in part order, then file order. */
const parts = (dir: string, ext: "csv" | "parquet") =>
  query(
    `SELECT * FROM ${ext === "csv" ? "read_csv" : "read_parquet"}(${lit(`${dir}part-*.${ext}`)}, filename = true) ORDER BY filename, id`,
  );

async function reference(data: number[][]): Promise<number[]> {
  const input = new Float32Array(data.flatMap((r) => r.slice(1)));
  const out = await session.run({ input: new ort.Tensor("float32", input, [data.length, 4]) });
  return Array.from(out[session.outputNames[0]!]!.data as Float32Array);
}

/** Every output row equals its input row, in input order, with the reference prediction beside it. */
async function expectScored(got: Record<string, unknown>[], data: number[][]): Promise<void> {
  expect(got.length).toBe(data.length);
  const want = await reference(data);
  got.forEach((row, i) => {
    expect(Number(row.id)).toBe(data[i]![0]);
    FEATURES.forEach((f, j) => {
      expect(Number(row[f])).toBeCloseTo(data[i]![j + 1]!, 6);
    });
    expect(Number(row.prediction)).toBeCloseTo(want[i]!, 5);
  });
}

const done = (job: BatchJobView) => client.waitForBatch(job.id, { timeoutMs: 120_000 });

describe("batch jobs", () => {
  it("scores a CSV into Parquet part files in input order, with a manifest and _SUCCESS", async () => {
    const data = rows(5_000, 1);
    const input = writeCsv(path.join(root, "in", "a.csv"), data);
    const out = path.join(root, "out-a/");
    const job = await client.submitBatch({
      model: "models:/mlp@champion",
      input,
      output: out,
      output_format: "parquet",
      shard_rows: 700,
      columns: FEATURES,
    });
    expect(job.shards).toBe(8);
    expect(job.model).toEqual({ uri: "models:/mlp@champion", name: "mlp", version: 1 });
    const end = await done(job);
    expect(end.state).toBe("SUCCEEDED");
    expect(end.progress).toEqual({ shards_done: 8, shards_failed: 0, rows_done: 5_000, error_rows: 0 });
    const files = readdirSync(out).sort();
    expect(files).toEqual([
      "_SUCCESS",
      "_manifest.json",
      ...Array.from({ length: 8 }, (_, i) => `part-0000${i}.parquet`),
    ]);
    const manifest = JSON.parse(readFileSync(path.join(out, "_manifest.json"), "utf8"));
    expect(manifest.model).toEqual({ uri: "models:/mlp@champion", name: "mlp", version: 1 });
    expect(manifest.rows).toBe(5_000);
    // Rows are spread evenly: 8 shards of at most 700 rows.
    expect(manifest.shards.map((s: { rows: number }) => s.rows)).toEqual(Array(8).fill(625));
    await expectScored(await parts(out, "parquet"), data);
  });

  it("writes one merged file when the output names a file, for every input format", async () => {
    const data = rows(1_200, 2);
    const csv = writeCsv(path.join(root, "in", "b.csv"), data);
    const jsonl = path.join(root, "in", "b.jsonl");
    await query(`COPY (SELECT * FROM read_csv(${lit(csv)})) TO ${lit(jsonl)} (FORMAT json)`);
    const parquet = path.join(root, "in", "b.parquet");
    await query(
      `COPY (SELECT * FROM read_csv(${lit(csv)})) TO ${lit(parquet)} (FORMAT parquet, ROW_GROUP_SIZE 300)`,
    );
    for (const [input, output] of [
      [csv, path.join(root, "out-b", "from-csv.jsonl")],
      [jsonl, path.join(root, "out-b", "from-jsonl.parquet")],
      [parquet, path.join(root, "out-b", "from-parquet.csv")],
    ] as const) {
      const end = await done(
        await client.submitBatch({
          model: "models:/mlp/1",
          input,
          output,
          shard_rows: 500,
          columns: FEATURES,
        }),
      );
      expect(end.state, `${input} → ${output}: ${end.message}`).toBe("SUCCEEDED");
      expect(existsSync(`${output}.manifest.json`)).toBe(true);
      expect(existsSync(`${output}.parts`)).toBe(false);
      const reader = output.endsWith(".csv")
        ? "read_csv"
        : output.endsWith(".jsonl")
          ? "read_json"
          : "read_parquet";
      await expectScored(await query(`SELECT * FROM ${reader}(${lit(output)})`), data);
    }
  });

  it("finishes a job over an empty file and a header-only CSV with zero rows", async () => {
    mkdirSync(path.join(root, "in"), { recursive: true });
    const empty = path.join(root, "in", "empty.csv");
    writeFileSync(empty, "");
    const headerOnly = path.join(root, "in", "header.csv");
    writeFileSync(headerOnly, `id,${FEATURES.join(",")}\n`);
    for (const [input, output] of [
      [empty, path.join(root, "out-empty/")],
      [headerOnly, path.join(root, "out-header", "scored.parquet")],
    ] as const) {
      const end = await done(
        await client.submitBatch({
          model: "models:/mlp/1",
          input,
          output,
          columns: input === empty ? undefined : FEATURES,
        }),
      );
      expect(end.state, end.message).toBe("SUCCEEDED");
      expect(end.shards).toBe(0);
      expect(end.total_rows).toBe(0);
    }
    expect(readdirSync(path.join(root, "out-empty")).sort()).toEqual(["_SUCCESS", "_manifest.json"]);
    expect(
      await query(
        `SELECT count(*)::INTEGER AS n FROM read_parquet(${lit(path.join(root, "out-header", "scored.parquet"))})`,
      ),
    ).toEqual([{ n: 0 }]);
  });

  it("scores strings with a custom model (the notes' classifier over JSONL)", async () => {
    const input = path.join(root, "in", "reviews.jsonl");
    const texts = ["Good movie", "meh", "so GOOD", "bad", null, "good good"];
    writeFileSync(input, `${texts.map((t) => JSON.stringify({ text: t })).join("\n")}\n`);
    const output = path.join(root, "out-c", "reviews.jsonl");
    const end = await done(
      await client.submitBatch({ model: "models:/catalog.schema.custom_model/1", input, output }),
    );
    expect(end.state, end.message).toBe("SUCCEEDED");
    const got = readFileSync(output, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(got).toEqual([
      { text: "Good movie", prediction: "OK" },
      { text: "meh", prediction: "BAD" },
      { text: "so GOOD", prediction: "OK" },
      { text: "bad", prediction: "BAD" },
      { text: null, prediction: "BAD" },
      { text: "good good", prediction: "OK" },
    ]);
  });

  it("refuses before any shard runs: a missing column, a path outside the data roots, a `..` escape, a symlink out", async () => {
    const input = writeCsv(path.join(root, "in", "c.csv"), rows(10, 3));
    const refusal = (body: Record<string, unknown>) =>
      client.submitBatch({ model: "models:/mlp/1", input, output: path.join(root, "out-x/"), ...body }).then(
        () => undefined,
        (e: { code: string; message: string }) => [e.code, e.message],
      );
    expect(await refusal({ columns: ["f0", "f1", "f9", "f3"] })).toEqual([
      "INVALID_PARAMETER_VALUE",
      "columns: 'f9' not in the input (its columns: id, f0, f1, f2, f3)",
    ]);
    expect(await refusal({})).toEqual([
      "INVALID_PARAMETER_VALUE",
      "columns: model input 'input' takes 4 features per row; the input has 5 numeric columns (id, f0, f1, f2, f3): choose them with --columns",
    ]);
    const outside = tempDir("sy-outside-");
    writeCsv(path.join(outside, "x.csv"), rows(3));
    const [code, message] = (await refusal({ input: path.join(outside, "x.csv"), columns: FEATURES }))!;
    expect(code).toBe("INVALID_PARAMETER_VALUE");
    expect(message).toContain("input: ");
    expect(message).toContain("is outside the cluster's data roots");
    const dotDot = `${root}/in/../../${path.basename(outside)}/x.csv`;
    expect((await refusal({ input: dotDot, columns: FEATURES }))?.[1]).toContain(
      "outside the cluster's data roots",
    );
    symlinkSync(outside, path.join(root, "link-out"));
    const viaLink = await refusal({ input: path.join(root, "link-out", "x.csv"), columns: FEATURES });
    expect(viaLink?.[1]).toContain(`resolves to '${path.join(outside, "x.csv")}'`);
    const out = await refusal({ output: path.join(outside, "o/"), columns: FEATURES });
    expect(out?.[1]).toContain("output: ");
    // Nothing was planned: no job exists for any of these.
    expect((await client.batch.list()).filter((j) => j.inputs.includes(path.join(outside, "x.csv")))).toEqual(
      [],
    );
  });

  it("with on_error skip, leaves bad rows out and lists them in _errors.jsonl; with fail, fails naming the row", async () => {
    const data = rows(40, 4);
    const file = path.join(root, "in", "bad.csv");
    const lines = [`id,${FEATURES.join(",")}`, ...data.map((r) => r.join(","))];
    lines[12] = `11,0.5,abc,1,2`; // data row 11 (1-based: row 12), f1 not a number
    writeFileSync(file, `${lines.join("\n")}\n`);
    const skip = await done(
      await client.submitBatch({
        model: "models:/mlp/1",
        input: file,
        output: path.join(root, "out-skip/"),
        on_error: "skip",
        columns: FEATURES,
        shard_rows: 15,
      }),
    );
    expect(skip.state, skip.message).toBe("SUCCEEDED");
    expect(skip.progress.rows_done).toBe(39);
    expect(skip.progress.error_rows).toBe(1);
    const errors = readFileSync(path.join(root, "out-skip", "_errors.jsonl"), "utf8")
      .trim()
      .split("\n");
    expect(errors.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ file, row: 12, column: "f1" }),
    ]);
    const good = data.filter((r) => r[0] !== 11);
    await expectScored(await parts(`${root}/out-skip/`, "csv"), good);
    const fail = await done(
      await client.submitBatch({
        model: "models:/mlp/1",
        input: file,
        output: path.join(root, "out-fail/"),
        columns: FEATURES,
        shard_rows: 15,
      }),
    );
    expect(fail.state).toBe("FAILED");
    expect(fail.message).toContain("row 12");
    expect(fail.message).toContain("f1");
    expect(existsSync(path.join(root, "out-fail", "_SUCCESS"))).toBe(false);
  });

  it("cancels a job, then resumes it: only unfinished shards run, with the same model version", async () => {
    const data = rows(6_000, 6);
    const input = writeCsv(path.join(root, "in", "resume.csv"), data);
    const out = path.join(root, "out-resume/");
    const first = await client.submitBatch({
      model: "models:/mlp@champion",
      input,
      output: out,
      columns: FEATURES,
      shard_rows: 500,
      workers: 1,
    });
    await eventually(
      async () => ((await client.batchStatus(first.id)).progress.shards_done >= 2 ? true : undefined),
      "two shards done",
      60_000,
    );
    const refused = (body: Record<string, unknown>) =>
      client
        .submitBatch({
          model: "models:/mlp@champion",
          input,
          output: out,
          columns: FEATURES,
          resume: first.id,
          ...body,
        })
        .then(
          () => undefined,
          (e: { code: string; message: string }) => [e.code, e.message],
        );
    expect(await refused({})).toEqual([
      "RESOURCE_CONFLICT",
      `resume: batch job '${first.id}' is still RUNNING; cancel it first`,
    ]);
    const canceled = await client.batch.cancel(first.id);
    expect((await refused({ output: path.join(root, "elsewhere/") }))?.[1]).toBe(
      `resume: a resumed job reads and writes what batch job '${first.id}' did (input '${input}', output '${out}')`,
    );
    expect(canceled.state).toBe("CANCELED");
    const doneBefore = (await client.batchStatus(first.id)).progress.shards_done;
    expect(doneBefore).toBeLessThan(12);
    // The alias moves: a resumed job keeps the version the first one resolved.
    await registerModel(registry, "mlp", writeTempModel(buildMlp([4, 16, 1], { seed: 99 })), {
      alias: "champion",
    });
    const resumed = await client.submitBatch({
      model: "models:/mlp@champion",
      input,
      output: out,
      columns: FEATURES,
      shard_rows: 500,
      resume: first.id,
    });
    expect(resumed.model.version).toBe(1);
    const end = await done(resumed);
    expect(end.state, end.message).toBe("SUCCEEDED");
    const manifest = JSON.parse(readFileSync(path.join(out, "_manifest.json"), "utf8"));
    expect(manifest.shards).toHaveLength(12);
    // The shards the first job finished were kept, not redone: they finished before the resumed job began.
    const kept = manifest.shards.filter((sh: { finished_at: number }) => sh.finished_at < resumed.created_at);
    expect(kept.length).toBeGreaterThanOrEqual(2);
    expect(kept.length).toBeLessThan(12);
    await expectScored(await parts(out, "csv"), data);
  });

  it("survives kill -9 of a worker mid-job: no row missing or duplicated", async () => {
    const data = rows(30_000, 7);
    const input = writeCsv(path.join(root, "in", "kill.csv"), data);
    const out = path.join(root, "out-kill/");
    const job = await client.submitBatch({
      model: "models:/mlp/1",
      input,
      output: out,
      columns: FEATURES,
      shard_rows: 2_000,
      workers: 2,
    });
    const cl = await openBucket(nc, clusterNames(cluster), "cluster");
    const victim = await eventually(async () => {
      for (const key of await listKeys(cl, keys.workers)) {
        const e = await cl.get(key);
        const s =
          e?.operation === "PUT"
            ? e.json<{ job_id: string; pid: number | null; state: string }>()
            : undefined;
        if (s?.job_id === job.id && s.state === "RUNNING" && s.pid) return s.pid;
      }
      return undefined;
    }, "a running worker");
    await eventually(
      async () => ((await client.batchStatus(job.id)).progress.shards_done >= 1 ? true : undefined),
      "a shard done",
    );
    process.kill(victim, "SIGKILL");
    const end = await done(job);
    expect(end.state, end.message).toBe("SUCCEEDED");
    const got = await parts(out, "csv");
    await expectScored(got, data);
  }, 180_000);

  it("a worker with a 128 MB heap scores a file larger than its heap", async () => {
    // Rows carry a 100-character note (passed through to the output), so the file outgrows the heap fast.
    const n = 1_200_000;
    const big = path.join(root, "in", "big.csv");
    await query(
      `COPY (SELECT i AS id, ${FEATURES.map((_, j) => `round(sin(i * ${j + 1}) * 2, 3) AS f${j}`).join(", ")}, ` +
        `repeat('x', 100) || i AS note FROM range(${n}) t(i)) TO ${lit(big)} (HEADER)`,
    );
    expect(statSync(big).size).toBeGreaterThan(128 * 1024 * 1024);
    // A job nobody else works on: a cluster of its own with no agent, and one worker started by hand.
    const own = `t${randomBytes(5).toString("hex")}`;
    const reg = await Registry.open(nc, { cluster: own });
    await registerModel(reg, "mlp", writeTempModel(MLP));
    const c = new Coordinator({
      nc,
      cluster: own,
      logger: log,
      batchFiles: batchFiles({ dataRoots: [root] }),
    });
    await c.start();
    const ownClient = SwitchyardClient.fromConnection(nc, { cluster: own });
    let worker: ChildProcess | undefined;
    try {
      const out = path.join(root, "out-big", "big.parquet");
      const job = await ownClient.submitBatch({
        model: "models:/mlp/1",
        input: big,
        output: out,
        columns: FEATURES,
        shard_rows: 200_000,
      });
      const launch: BatchWorkerLaunch = {
        spec: {
          kind: "batch",
          worker_id: "w1",
          job_id: job.id,
          model_name: "mlp",
          model_version: 1,
          threads: 1,
        },
        cluster: own,
        node_id: "hand",
        cache_dir: tempDir("sy-big-cache-"),
        nats: { servers: inject("natsUrl") },
      };
      const entry = createRequire(import.meta.url).resolve("@switchyard/jobs/batch-worker");
      worker = spawn(process.execPath, ["--max-old-space-size=128", entry], {
        env: { ...process.env, [BATCH_WORKER_ENV]: JSON.stringify(launch) },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      worker.stderr!.on("data", (d) => {
        stderr += d;
      });
      const end = await ownClient.waitForBatch(job.id, { timeoutMs: 240_000 });
      expect(end.state, `${end.message}\n${stderr}`).toBe("SUCCEEDED");
      const [count] = await query(
        `SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d FROM read_parquet(${lit(out)})`,
      );
      expect(count).toEqual({ n, d: n });
      const jobs = await openBucket(nc, clusterNames(own), "jobs");
      expect((await jobs.get(jobKeys.shard(job.id, 0)))?.json<{ state: string }>().state).toBe("DONE");
    } finally {
      worker?.kill("SIGTERM");
      await ownClient.close();
      await c.stop();
    }
  }, 300_000);
});
