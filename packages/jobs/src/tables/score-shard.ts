// Scoring one shard: read only its rows, hand the model's feature columns to `score` in batches, and write the
// part (every input column in input order, then the predictions, in input row order) by write-then-rename.
// Memory does not grow with the file: the shard is a DuckDB table that spills to disk beyond the memory limit,
// features stream out a batch at a time, predictions stream into a second table, and one COPY joins the two
// by position (measured: a 309 MB CSV as one shard with a 32 MiB limit peaks at ~200 MB RSS, Node included).
import { join } from "node:path";
import {
  ARRAY,
  arrayValue,
  BIGINT,
  BOOLEAN,
  DOUBLE,
  type DuckDBConnection,
  DuckDBDataChunk,
  type DuckDBInstance,
  type DuckDBType,
  type DuckDBValue,
  FLOAT,
  INTEGER,
  SMALLINT,
  TINYINT,
  UBIGINT,
  UINTEGER,
  USMALLINT,
  UTINYINT,
  VARCHAR,
} from "@duckdb/node-api";
import { type ColumnData, Frame, fromFloat16Bits, type Payload } from "@switchyard/data";
import type { Dtype, Shard, TableFormat } from "@switchyard/protocol";
import { invalid, SwitchyardError } from "@switchyard/protocol";
import { type EngineOptions, numbers, withDuckDb } from "./engine.js";
import {
  asWritten,
  type DuckColumn,
  dtypeOfDuckDb,
  duckColumns,
  ident,
  literal,
  readerSql,
  sniffFile,
  writerOptions,
} from "./formats.js";
import type { TableColumn } from "./inspect.js";
import { writeSlice } from "./lines.js";
import { writeThenRename } from "./parts.js";

export interface ShardJob {
  shard: Shard;
  /** The input's format. */
  format: TableFormat;
  /**
   * The model's feature columns, with the dtype it takes: "string" columns arrive as `string[]`, "float32" as
   * Float32Array, any other numeric dtype as Float64Array (the runtime casts it, as it does JSON numbers).
   * Missing values arrive as NaN (numbers) or null (strings).
   */
  features: readonly TableColumn[];
  /** A non-numeric value in a numeric feature: fail the shard, or leave its row out and report it. */
  onError: "fail" | "skip";
  /** The part file to write. */
  part: string;
  outputFormat: TableFormat;
  /** Rows per call of `score`. */
  batchRows?: number;
}

/** A row left out of the part (onError "skip"), for `_errors.jsonl`. */
export interface BadRow {
  /** 1-based data row in the input file. */
  row: number;
  column: string;
  reason: string;
  /** The input row as a JSON object. */
  raw: string;
}

export interface ShardOutcome {
  /** Rows written to the part. */
  rows: number;
  badRows: BadRow[];
  timings: { read_ms: number; score_ms: number; write_ms: number };
}

/**
 * The model: feature rows in, one output row per input row out. Several outputs (a Frame's columns, or
 * tensors `[N]`, `[N, 1]` or `[N, k]`) become as many columns; a single output is named `prediction`.
 */
export type Scorer = (features: Frame) => Promise<Payload>;

export const SHARD_DEFAULTS = { batchRows: 8192 } as const;

/** DuckDB hands rows over in chunks of at most this many rows, and takes appends the same way. */
const CHUNK_ROWS = 2048;

/** Scores `job.shard` with `score` and writes `job.part`; see the module header. */
export async function scoreShard(
  job: ShardJob,
  score: Scorer,
  options: EngineOptions = {},
): Promise<ShardOutcome> {
  const batchRows = job.batchRows ?? SHARD_DEFAULTS.batchRows;
  if (!Number.isSafeInteger(batchRows) || batchRows < 1) {
    throw new RangeError(`batchRows must be a positive integer, got ${batchRows}`);
  }
  return withDuckDb(options, async (db, connection, scratch) => {
    const clock = new Clock();
    // Types sniffed from the file's first rows, so every shard of it (and every slice) is typed alike.
    const sniffed = await sniffFile(connection, job.shard.file, job.format);
    checkFeatures(job, sniffed);
    await loadShard(connection, job, sniffed, scratch);
    const badRows = await screenBadValues(connection, job);
    clock.lap("read");

    const output = await outputColumns(connection, job, sniffed);
    let predictions: Predictions | undefined;
    let rows = 0;
    for await (const frame of featureBatches(db, job.features, batchRows)) {
      clock.lap("read");
      const out = predictionColumns(await score(frame), frame.length);
      clock.lap("score");
      predictions ??= await Predictions.create(connection, out, output.names);
      predictions.append(out);
      rows += frame.length;
      clock.lap("write");
    }

    predictions?.close();
    const select = await asWritten(
      connection,
      predictions
        ? `SELECT ${output.sql}, preds.* FROM shard POSITIONAL JOIN preds`
        : `SELECT ${output.sql} FROM shard`,
      job.outputFormat,
    );
    await writeThenRename(job.part, (tmp) =>
      connection.run(`COPY (${select}) TO ${literal(tmp)} (${writerOptions(job.outputFormat)})`),
    );
    clock.lap("write");
    return { rows, badRows, timings: clock.timings };
  });
}

class Clock {
  readonly timings = { read_ms: 0, score_ms: 0, write_ms: 0 };
  #last = performance.now();

  /** Charges the time since the last lap to `phase`. */
  lap(phase: "read" | "score" | "write"): void {
    const now = performance.now();
    this.timings[`${phase}_ms`] += now - this.#last;
    this.#last = now;
  }
}

function checkFeatures(job: ShardJob, columns: readonly DuckColumn[]): void {
  const names = new Set(columns.map((c) => c.name));
  const missing = job.features.filter((f) => !names.has(f.name)).map((f) => `'${f.name}'`);
  if (missing.length > 0) {
    throw invalid(
      `${job.shard.file} has no column ${missing.join(", ")}; its columns are: ${columns.map((c) => c.name).join(", ")}`,
    );
  }
}

/**
 * The shard's rows as table `shard`, in file order. A CSV/JSONL shard with a byte range is read from a copy of
 * just those bytes; without one, DuckDB parses and drops the rows before it. Rows are typed as sniffed; if a
 * value past the sniffed rows does not fit its column's type, the shard is read again as text, and the
 * feature columns are checked value by value (screenBadValues).
 */
async function loadShard(
  connection: DuckDBConnection,
  job: ShardJob,
  sniffed: readonly DuckColumn[],
  scratch: string,
): Promise<void> {
  const { shard, format } = job;
  const end = shard.first_row + shard.rows;
  let source = shard.file;
  if (shard.bytes && format !== "parquet") {
    source = join(scratch, `shard.${format}`);
    await writeSlice(shard.file, shard.bytes, format === "csv", source);
  }
  const select = (asText: boolean) => {
    if (format === "parquet") {
      return `SELECT * EXCLUDE (file_row_number) FROM read_parquet(${literal(shard.file)}, file_row_number = true)
              WHERE file_row_number >= ${shard.first_row} AND file_row_number < ${end}`;
    }
    const rows = `SELECT * FROM ${readerSql(source, format, sniffed, asText)}`;
    return shard.bytes ? rows : `${rows} LIMIT ${shard.rows} OFFSET ${shard.first_row}`;
  };
  try {
    await connection.run(`CREATE TABLE shard AS ${select(false)}`);
  } catch (err) {
    if (format === "parquet") throw err;
    try {
      await connection.run(`CREATE OR REPLACE TABLE shard AS ${select(true)}`);
    } catch (textErr) {
      throw new SwitchyardError(
        "INVALID_PARAMETER_VALUE",
        `${shard.file}, rows ${shard.first_row + 1}-${end}: ${(textErr as Error).message}`,
        { cause: textErr },
      );
    }
  }
  const [count] = await numbers(connection, "SELECT count(*) FROM shard");
  if (count !== shard.rows) {
    throw invalid(
      `${shard.file}: expected ${shard.rows} rows from row ${shard.first_row + 1}, read ${count}; ` +
        "has the file changed since the job was planned?",
    );
  }
}

/**
 * Numeric feature columns that DuckDB holds as text (a value in them is not a number) are checked value by
 * value: onError "fail" throws naming the first bad value's row, column and value; "skip" removes the rows and
 * returns them. Row numbers count data rows in the file from 1.
 */
async function screenBadValues(connection: DuckDBConnection, job: ShardJob): Promise<BadRow[]> {
  const types = new Map((await duckColumns(connection, "shard")).map((c) => [c.name, c.type]));
  const checked = job.features.filter(
    (f) => f.dtype !== "string" && dtypeOfDuckDb(types.get(f.name)!) === "string",
  );
  if (checked.length === 0) return [];
  const bad = checked.map(
    (f) => `(${ident(f.name)} IS NOT NULL AND TRY_CAST(${ident(f.name)} AS DOUBLE) IS NULL)`,
  );
  const firstBad = (value: (f: TableColumn, i: number) => string) =>
    `CASE ${checked.map((f, i) => `WHEN ${bad[i]} THEN ${value(f, i)}`).join(" ")} END`;
  const reader = await connection.runAndReadAll(
    `SELECT rowid, ${firstBad((_, i) => String(i))}, ${firstBad((f) => `CAST(${ident(f.name)} AS VARCHAR)`)},
            to_json(shard)
     FROM shard WHERE ${bad.join(" OR ")} ORDER BY rowid ${job.onError === "fail" ? "LIMIT 1" : ""}`,
  );
  const rows: BadRow[] = reader.getRowsJS().map(([rowid, column, value, raw]) => ({
    row: job.shard.first_row + Number(rowid) + 1,
    column: checked[Number(column)]!.name,
    reason: `${JSON.stringify(value)} is not a number`,
    raw: String(raw),
  }));
  const first = rows[0];
  if (first && job.onError === "fail") {
    throw invalid(`${job.shard.file}: row ${first.row}, column '${first.column}': ${first.reason}`);
  }
  if (rows.length > 0) await connection.run(`DELETE FROM shard WHERE ${bad.join(" OR ")}`);
  return rows;
}

/**
 * The input columns as written to the part. CSV takes them as they are. Parquet and JSONL keep types: a column
 * read as text is cast back to its sniffed type (a numeric feature: to DOUBLE if sniffed as text) when every
 * value fits it, else it stays text.
 */
async function outputColumns(
  connection: DuckDBConnection,
  job: ShardJob,
  sniffed: readonly DuckColumn[],
): Promise<{ names: string[]; sql: string }> {
  const held = await duckColumns(connection, "shard");
  const numericFeatures = new Set(job.features.filter((f) => f.dtype !== "string").map((f) => f.name));
  const target = sniffed.map((c) =>
    numericFeatures.has(c.name) && dtypeOfDuckDb(c.type) === "string" ? "DOUBLE" : c.type,
  );
  const recast =
    job.outputFormat === "csv"
      ? []
      : held.flatMap((c, i) => (c.type === "VARCHAR" && target[i] !== "VARCHAR" ? [i] : []));
  const fits = new Set<number>();
  if (recast.length > 0) {
    const misfits = recast.map(
      (i) =>
        `count(*) FILTER (WHERE ${ident(held[i]!.name)} IS NOT NULL AND TRY_CAST(${ident(held[i]!.name)} AS ${target[i]}) IS NULL)`,
    );
    const [counts] = (await connection.runAndReadAll(`SELECT ${misfits.join(", ")} FROM shard`)).getRowsJS();
    recast.forEach((i, k) => {
      if (Number(counts![k]) === 0) fits.add(i);
    });
  }
  const sql = held
    .map((c, i) =>
      fits.has(i) ? `TRY_CAST(${ident(c.name)} AS ${target[i]}) AS ${ident(c.name)}` : ident(c.name),
    )
    .join(", ");
  return { names: held.map((c) => c.name), sql };
}

/** A feature column as the model takes it: text, or float32/float64 with missing values as NaN. */
function featureSql(f: TableColumn): string {
  const col = ident(f.name);
  if (f.dtype === "string") return `CAST(${col} AS VARCHAR)`;
  const type = f.dtype === "float32" ? "FLOAT" : "DOUBLE";
  return `coalesce(TRY_CAST(${col} AS ${type}), 'NaN'::${type})`;
}

/**
 * The feature columns of table `shard`, in row order, as frames of `batchRows` rows (the last may be shorter).
 * They stream on a connection of their own, as predictions are appended on the first one meanwhile.
 */
async function* featureBatches(
  db: DuckDBInstance,
  features: readonly TableColumn[],
  batchRows: number,
): AsyncGenerator<Frame> {
  const connection = await db.connect();
  try {
    const stream = await connection.stream(`SELECT ${features.map(featureSql).join(", ")} FROM shard`);
    let batch = new Batch(features, batchRows);
    for (;;) {
      const chunk = await stream.fetchChunk();
      const n = chunk?.rowCount ?? 0;
      if (!chunk || n === 0) break;
      for (let at = 0; at < n; ) {
        const take = Math.min(n - at, batchRows - batch.rows);
        batch.fill(chunk, at, take);
        at += take;
        if (batch.rows === batchRows) {
          yield batch.frame();
          batch = new Batch(features, batchRows);
        }
      }
    }
    if (batch.rows > 0) yield batch.frame();
  } finally {
    connection.closeSync();
  }
}

/** One batch's feature columns. Fresh arrays per batch: the model may keep or transfer what it is given. */
class Batch {
  rows = 0;
  readonly #features: readonly TableColumn[];
  readonly #kinds: Dtype[];
  readonly #data: ColumnData[];

  constructor(features: readonly TableColumn[], capacity: number) {
    this.#features = features;
    this.#kinds = features.map((f) => (f.dtype === "string" || f.dtype === "float32" ? f.dtype : "float64"));
    this.#data = this.#kinds.map((k) =>
      k === "string"
        ? new Array<string | null>(capacity)
        : k === "float32"
          ? new Float32Array(capacity)
          : new Float64Array(capacity),
    );
  }

  fill(chunk: DuckDBDataChunk, from: number, count: number): void {
    this.#data.forEach((out, j) => {
      const vector = chunk.getColumnVector(j);
      for (let i = 0; i < count; i++) out[this.rows + i] = vector.getItem(from + i) as never;
    });
    this.rows += count;
  }

  frame(): Frame {
    return Frame.of(
      this.#features.map((f, j) => {
        const d = this.#data[j]!;
        return {
          name: f.name,
          kind: this.#kinds[j]!,
          data: Array.isArray(d) ? d.slice(0, this.rows) : d.subarray(0, this.rows),
        };
      }),
      this.rows,
    );
  }
}

/** One output column of a batch: `width` values per row (1 for a scalar column). */
interface OutColumn {
  name: string;
  dtype: Dtype;
  width: number;
  data: ColumnData;
}

function predictionColumns(out: Payload, rows: number): OutColumn[] {
  const columns: OutColumn[] =
    out instanceof Frame
      ? out.entries().map((c) => ({ name: c.name, dtype: c.kind, width: 1, data: c.data }))
      : out.map((t) => {
          if (t.shape.length > 2) {
            throw invalid(
              `output '${t.name}' has shape [${t.shape.join(", ")}]; a column holds [N] or [N, k]`,
            );
          }
          return { name: t.name, dtype: t.dtype, width: t.shape[1] ?? 1, data: t.data as ColumnData };
        });
  for (const c of columns) {
    if (c.data.length !== rows * c.width) {
      throw invalid(`output '${c.name}' has ${c.data.length / c.width} rows for a batch of ${rows}`);
    }
  }
  if (columns.length === 1) columns[0]!.name = "prediction";
  return columns;
}

const DUCK_TYPES: Readonly<Record<Dtype, DuckDBType>> = {
  float32: FLOAT,
  float64: DOUBLE,
  float16: FLOAT,
  int8: TINYINT,
  uint8: UTINYINT,
  int16: SMALLINT,
  uint16: USMALLINT,
  int32: INTEGER,
  uint32: UINTEGER,
  int64: BIGINT,
  uint64: UBIGINT,
  bool: BOOLEAN,
  string: VARCHAR,
};

/** Table `preds`: one row per scored row, filled with DuckDB's appender a chunk at a time. */
class Predictions {
  private constructor(
    private readonly columns: readonly Pick<OutColumn, "name" | "dtype" | "width">[],
    private readonly types: DuckDBType[],
    private readonly appender: Awaited<ReturnType<DuckDBConnection["createAppender"]>>,
  ) {}

  static async create(
    connection: DuckDBConnection,
    first: readonly OutColumn[],
    inputNames: readonly string[],
  ): Promise<Predictions> {
    const clash = first.find((c) => inputNames.includes(c.name));
    if (clash)
      throw invalid(`the input already has a column '${clash.name}'; the model's output would repeat it`);
    const types = first.map((c) =>
      c.width === 1 ? DUCK_TYPES[c.dtype] : ARRAY(DUCK_TYPES[c.dtype], c.width),
    );
    const defs = first.map((c, i) => `${ident(c.name)} ${types[i]!.toString()}`).join(", ");
    await connection.run(`CREATE TABLE preds (${defs})`);
    return new Predictions(first, types, await connection.createAppender("preds"));
  }

  append(out: readonly OutColumn[]): void {
    const shape = (cs: readonly Pick<OutColumn, "name" | "dtype" | "width">[]) =>
      cs.map((c) => `${c.name}:${c.dtype}x${c.width}`).join(",");
    if (shape(out) !== shape(this.columns)) {
      throw invalid(`the model returned [${shape(out)}] for a batch after [${shape(this.columns)}]`);
    }
    const rows = out[0]!.data.length / out[0]!.width;
    for (let at = 0; at < rows; at += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows - at);
      const chunk = DuckDBDataChunk.create(this.types, n);
      out.forEach((c, j) => {
        const vector = chunk.getColumnVector(j);
        for (let i = 0; i < n; i++) vector.setItem(i, cellOf(c, at + i));
        vector.flush();
      });
      this.appender.appendDataChunk(chunk);
    }
  }

  close(): void {
    this.appender.closeSync();
  }
}

function cellOf(c: OutColumn, row: number): DuckDBValue {
  if (c.width === 1) return duckValue(c.dtype, c.data[row]);
  const items: DuckDBValue[] = [];
  for (let k = 0; k < c.width; k++) items.push(duckValue(c.dtype, c.data[row * c.width + k]));
  return arrayValue(items);
}

function duckValue(dtype: Dtype, v: unknown): DuckDBValue {
  if (dtype === "bool") return v !== 0;
  if (dtype === "float16") return fromFloat16Bits(v as number);
  return v as DuckDBValue;
}
