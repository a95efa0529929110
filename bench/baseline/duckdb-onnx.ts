// The baseline batch scoring is compared with: one process, DuckDB (@duckdb/node-api) reading the input file,
// onnxruntime-node scoring it in batches of 4,096 rows on one thread, DuckDB writing every input column plus
// `prediction` in input order, in the output file's format. No cluster, no sharding, no retries.
//
// Phases run one after another, never overlapped, so each is timed on its own: the model's feature columns
// are streamed out of DuckDB into a row-major Float32Array, `session.run` scores it, predictions go to a
// DuckDB table, and at the end one `COPY … POSITIONAL JOIN` writes input + predictions (DuckDB reads the
// input a second time there, on its own threads: cheaper than copying every column through JS, and memory
// stays at one batch plus four bytes a row).
import { DuckDBDataChunk, DuckDBInstance, FLOAT } from "@duckdb/node-api";
import * as ort from "onnxruntime-node";
import { copyOptions, formatOf, readTable, sqlString } from "../lib/duckdb.js";

export const BASELINE_BATCH_ROWS = 4096;
/** DuckDB's vector size: the most rows one data chunk holds. */
const CHUNK_ROWS = 2048;

export interface BaselineJob {
  /** An ONNX model with one float32 input `[batch, features]` and one float32 output `[batch, 1]`. */
  model: string;
  /** A .csv or .parquet file. */
  input: string;
  /** A .csv or .parquet file (the batch bench writes the input's format). */
  output: string;
  /** The model's input columns, in the order the model takes them. */
  features: string[];
  batchRows?: number;
}

/** Wall-clock milliseconds from the start of `scoreFile` to the output written, and how they split. */
export interface BaselineTimings {
  rows: number;
  totalMs: number;
  /** ORT session and DuckDB instance created, input opened (CSV: its dialect sniffed). */
  setupMs: number;
  /** Fetching the feature columns from DuckDB into the batch buffer. */
  readMs: number;
  scoreMs: number;
  /** Appending predictions, then the final COPY (which reads the input again). */
  writeMs: number;
}

/** What `duckdb-onnx-cli` prints: the timings, and the process's CPU seconds and peak RSS. */
export interface BaselineReport extends BaselineTimings {
  cpuS: number;
  peakRssMiB: number;
}

export async function scoreFile(job: BaselineJob): Promise<BaselineTimings> {
  const batchRows = job.batchRows ?? BASELINE_BATCH_ROWS;
  formatOf(job.output); // refuses another extension before any work
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(job.model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const instance = await DuckDBInstance.create(":memory:");
  // A streaming result lives only until its connection runs another statement: reads get their own.
  const reader = await instance.connect();
  const writer = await instance.connect();
  try {
    await writer.run("CREATE TEMP TABLE predictions (prediction FLOAT)");
    const appender = await writer.createAppender("predictions");
    const k = job.features.length;
    const select = job.features.map((f) => `CAST(${quoteIdent(f)} AS FLOAT)`).join(", ");
    const result = await reader.stream(`SELECT ${select} FROM ${readTable(job.input)}`);
    const input = session.inputNames[0]!;
    const output = session.outputNames[0]!;
    const x = new Float32Array(batchRows * k);
    const timings = {
      rows: 0,
      totalMs: 0,
      setupMs: performance.now() - t0,
      readMs: 0,
      scoreMs: 0,
      writeMs: 0,
    };

    // A chunk may straddle two batches: keep it and how far it was read.
    let chunk: DuckDBDataChunk | null = null;
    let at = 0;
    let done = false;
    const fillBatch = async (): Promise<number> => {
      let n = 0;
      while (n < batchRows && !done) {
        if (!chunk || at === chunk.rowCount) {
          chunk = await result.fetchChunk();
          at = 0;
          if (!chunk || chunk.rowCount === 0) {
            done = true;
            break;
          }
        }
        const take = Math.min(batchRows - n, chunk.rowCount - at);
        for (let c = 0; c < k; c++) {
          const v = chunk.getColumnVector(c);
          for (let r = 0; r < take; r++)
            x[(n + r) * k + c] = (v.getItem(at + r) as number | null) ?? Number.NaN;
        }
        n += take;
        at += take;
      }
      return n;
    };

    for (;;) {
      const t1 = performance.now();
      const n = await fillBatch();
      const t2 = performance.now();
      timings.readMs += t2 - t1;
      if (n === 0) break;
      const out = await session.run({ [input]: new ort.Tensor("float32", x.subarray(0, n * k), [n, k]) });
      const y = out[output]!;
      if (y.type !== "float32" || y.data.length !== n) {
        throw new Error(
          `${job.model}: expected a float32 output of one value a row, got ${y.type} [${y.dims}]`,
        );
      }
      const t3 = performance.now();
      timings.scoreMs += t3 - t2;
      const values = y.data as Float32Array;
      for (let from = 0; from < n; from += CHUNK_ROWS) {
        const m = Math.min(CHUNK_ROWS, n - from);
        const predictions = DuckDBDataChunk.create([FLOAT], m);
        const v = predictions.getColumnVector(0);
        for (let r = 0; r < m; r++) v.setItem(r, values[from + r]!);
        v.flush();
        appender.appendDataChunk(predictions);
      }
      timings.rows += n;
      timings.writeMs += performance.now() - t3;
    }

    const t4 = performance.now();
    appender.closeSync();
    const copied = await writer.run(
      `COPY (SELECT * FROM ${readTable(job.input)} POSITIONAL JOIN predictions) TO ${sqlString(job.output)} (${copyOptions(job.output)})`,
    );
    const written = Number((await copied.getRows())[0]![0]);
    timings.writeMs += performance.now() - t4;
    timings.totalMs = performance.now() - t0;
    // A positional join pads the shorter side with NULLs: a count that differs means misaligned rows.
    if (written !== timings.rows) {
      throw new Error(`${job.output}: wrote ${written} rows, scored ${timings.rows}`);
    }
    return timings;
  } finally {
    reader.closeSync();
    writer.closeSync();
    instance.closeSync();
    await session.release();
  }
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
