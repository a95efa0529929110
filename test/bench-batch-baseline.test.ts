// The batch bench's own pieces: the synthetic tables it scores (values drawn here independently) and the
// baseline it compares the cluster with, whose output must equal raw onnxruntime-node over the same rows.
import { rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { buildTreeEnsemble, prng, tempDir } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scoreFile } from "../bench/baseline/duckdb-onnx.js";
import { type DatasetSpec, ensureDataset, featureColumns } from "../bench/lib/datasets.js";
import type { FileFormat } from "../bench/lib/duckdb.js";

const dir = tempDir("sy-bench-batch-test-");
let db: DuckDBInstance;
afterAll(() => {
  db?.closeSync();
  rmSync(dir, { recursive: true, force: true });
});
beforeAll(async () => {
  db = await DuckDBInstance.create(":memory:");
});

async function query(sql: string): Promise<unknown[][]> {
  const conn = await db.connect();
  try {
    return (await (await conn.run(sql)).getRowsJS()) as unknown[][];
  } finally {
    conn.closeSync();
  }
}
const readOf = (file: string) => `read_${file.endsWith(".csv") ? "csv" : "parquet"}('${file}')`;

describe("ensureDataset", () => {
  const spec: DatasetSpec = { rows: 5000, cols: 3, seed: 11 };

  it("writes id and f0… drawn row by row from prng(seed), 4 decimals, the same rows as CSV and Parquet", async () => {
    const parquet = await ensureDataset(spec, "parquet", { dir });
    const csv = await ensureDataset(spec, "csv", { dir });
    expect([parquet, csv]).toEqual([
      join(dir, "rows5000-cols3-seed11.parquet"),
      join(dir, "rows5000-cols3-seed11.csv"),
    ]);
    const rand = prng(11);
    const draw = () => Math.round((rand() * 2 - 1) * 1e4) / 1e4;
    const expected = Array.from({ length: 5000 }, (_, id) => [BigInt(id), draw(), draw(), draw()]);
    for (const file of [parquet, csv]) {
      expect(
        await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${readOf(file)})`),
      ).toEqual([
        ["id", "BIGINT"],
        ["f0", "DOUBLE"],
        ["f1", "DOUBLE"],
        ["f2", "DOUBLE"],
      ]);
      expect(await query(`SELECT * FROM ${readOf(file)}`)).toEqual(expected);
    }
  });

  it("reuses a file already generated", async () => {
    const file = await ensureDataset(spec, "csv", { dir });
    const before = statSync(file).mtimeMs;
    expect(await ensureDataset(spec, "csv", { dir })).toBe(file);
    expect(statSync(file).mtimeMs).toBe(before);
  });
});

describe("the batch baseline (DuckDB + session.run)", () => {
  const TREES = { features: 6, trees: 20, depth: 3, seed: 4 };
  const spec: DatasetSpec = { rows: 10_000, cols: TREES.features, seed: 21 };
  const features = featureColumns(spec.cols);

  /** Raw ORT over every input row in one run: the reference, in input order. */
  async function reference(model: string, input: string): Promise<Float32Array> {
    const rows = await query(`SELECT ${features.join(", ")} FROM ${readOf(input)}`);
    const x = Float32Array.from(rows.flat() as number[]);
    const session = await ort.InferenceSession.create(model);
    try {
      const out = await session.run({ input: new ort.Tensor("float32", x, [rows.length, spec.cols]) });
      return out.output!.data as Float32Array;
    } finally {
      await session.release();
    }
  }

  for (const [format, batchRows] of [
    ["parquet", undefined],
    ["csv", undefined],
    // Batches that end inside DuckDB's 2,048-row chunks.
    ["parquet", 3000],
  ] as [FileFormat, number | undefined][]) {
    it(`${format} in, ${format} out${batchRows ? `, batches of ${batchRows}` : ""}: every input column, then ORT's prediction, in order`, async () => {
      const input = await ensureDataset(spec, format, { dir });
      const model = join(dir, "trees.onnx");
      writeFileSync(model, buildTreeEnsemble(TREES));
      const output = join(dir, `scored-${batchRows ?? "default"}.${format}`);
      const timings = await scoreFile({ model, input, output, features, batchRows });
      expect(timings.rows).toBe(10_000);

      const columns = await query(`SELECT column_name FROM (DESCRIBE SELECT * FROM ${readOf(output)})`);
      expect(columns.flat()).toEqual(["id", ...features, "prediction"]);
      const inputRows = await query(`SELECT * FROM ${readOf(input)}`);
      const outputRows = await query(`SELECT * FROM ${readOf(output)}`);
      expect(outputRows.map((r) => r.slice(0, -1))).toEqual(inputRows);
      const want = await reference(model, input);
      // Float32 predictions survive the file exactly (CSV: the shortest text that reads back as the same float).
      expect(outputRows.map((r) => Math.fround(r.at(-1) as number))).toEqual(Array.from(want));
    });
  }

  it("refuses an output that is neither .csv nor .parquet, before any work", async () => {
    const input = await ensureDataset(spec, "parquet", { dir });
    await expect(
      scoreFile({ model: join(dir, "missing.onnx"), input, output: join(dir, "out.jsonl"), features }),
    ).rejects.toThrow(`${join(dir, "out.jsonl")}: expected a .csv or .parquet file`);
  });
});
