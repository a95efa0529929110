// Synthetic tables for the batch bench: N rows of an `id` and K float columns, as Parquet and CSV, written by
// DuckDB and kept under bench/results/cache/ so reruns reuse them. Never written anywhere git tracks.
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { BIGINT, DOUBLE, DuckDBInstance, DuckDBTableFunction, INTEGER } from "@duckdb/node-api";
import { prng } from "@switchyard/testkit";
import { copyOptions, type FileFormat, readTable, sqlString } from "./duckdb.js";
import { repoRoot } from "./procs.js";

export interface DatasetSpec {
  rows: number;
  /** Float columns `f0` … `f<cols−1>`, after the `id` column. */
  cols: number;
  seed: number;
}

/** Under bench/results/, which is gitignored: a 1M × 64 CSV is about half a gigabyte. */
export const DATASET_CACHE = path.join(repoRoot, "bench", "results", "cache", "tables");

/**
 * Values are uniform in [−1, 1) rounded to 4 decimals (what an exported feature table looks like, and
 * short in CSV): `prng(seed)` drawn row by row, column by column. `id` is the row number from 0.
 */
export const VALUE_DECIMALS = 4;

export const featureColumns = (cols: number) => Array.from({ length: cols }, (_, c) => `f${c}`);

export function datasetPath(spec: DatasetSpec, format: FileFormat, dir = DATASET_CACHE): string {
  return path.join(dir, `rows${spec.rows}-cols${spec.cols}-seed${spec.seed}.${format}`);
}

const ROWS_PER_CHUNK = 2048;

/** A DuckDB table function `synthetic_rows(rows, cols, seed)` that streams the values row chunk by row chunk. */
function syntheticRows(): DuckDBTableFunction {
  const scale = 10 ** VALUE_DECIMALS;
  return DuckDBTableFunction.create({
    name: "synthetic_rows",
    parameterTypes: [BIGINT, INTEGER, INTEGER],
    bindFunction: (info) => {
      const cols = info.getParameter(1) as number;
      info.addResultColumn("id", BIGINT);
      for (const name of featureColumns(cols)) info.addResultColumn(name, DOUBLE);
      info.setBindData({ rows: Number(info.getParameter(0)), cols, seed: info.getParameter(2) as number });
    },
    initFunction: (info) => {
      info.setInitData({ next: 0, rand: prng((info.bindData as { seed: number }).seed) });
    },
    mainFunction: (info, output) => {
      const { rows, cols } = info.bindData as { rows: number; cols: number };
      const state = info.initData as { next: number; rand: () => number };
      const n = Math.min(ROWS_PER_CHUNK, rows - state.next);
      output.rowCount = n;
      if (n <= 0) return;
      // Row-major draws, so a row's values do not depend on the chunk size.
      const values = new Float64Array(n * cols);
      for (let i = 0; i < values.length; i++) values[i] = Math.round((state.rand() * 2 - 1) * scale) / scale;
      const id = output.getColumnVector(0);
      for (let r = 0; r < n; r++) id.setItem(r, BigInt(state.next + r));
      id.flush();
      for (let c = 0; c < cols; c++) {
        const v = output.getColumnVector(c + 1);
        for (let r = 0; r < n; r++) v.setItem(r, values[r * cols + c]!);
        v.flush();
      }
      state.next += n;
    },
  });
}

/**
 * The dataset's file in `format`, generated on first use (Parquet from the generator, CSV from the
 * Parquet) and reused after. A file appears under its final name only once complete.
 */
export async function ensureDataset(
  spec: DatasetSpec,
  format: FileFormat,
  { dir = DATASET_CACHE, log = () => {} }: { dir?: string; log?: (msg: string) => void } = {},
): Promise<string> {
  const target = datasetPath(spec, format, dir);
  if (existsSync(target)) return target;
  mkdirSync(dir, { recursive: true });
  const parquet = datasetPath(spec, "parquet", dir);
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  try {
    const write = async (from: string, file: string) => {
      const t0 = performance.now();
      const tmp = `${file}.tmp-${process.pid}`;
      try {
        // The temporary name hides the extension: the format comes from the final name.
        await conn.run(`COPY (FROM ${from}) TO ${sqlString(tmp)} (${copyOptions(file)})`);
        renameSync(tmp, file);
      } finally {
        rmSync(tmp, { force: true });
      }
      const mib = statSync(file).size / 2 ** 20;
      log(`generated ${file} (${mib.toFixed(0)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    };
    if (!existsSync(parquet)) {
      conn.registerTableFunction(syntheticRows());
      await write(`synthetic_rows(${spec.rows}, ${spec.cols}, ${spec.seed})`, parquet);
    }
    if (format === "csv") await write(readTable(parquet), target);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
  return target;
}
