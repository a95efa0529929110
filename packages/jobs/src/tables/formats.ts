// The table formats as DuckDB reads and writes them: which extension is which format, the reader and writer
// SQL for each, and DuckDB's column types as our dtypes. Every reader option lives here, so a file is read the
// same way when it is inspected, scored and merged.
import { stat } from "node:fs/promises";
import type { DuckDBConnection } from "@duckdb/node-api";
import type { Dtype, TableFormat } from "@switchyard/protocol";

const EXTENSIONS: Readonly<Record<string, TableFormat>> = {
  ".csv": "csv",
  ".jsonl": "jsonl",
  ".ndjson": "jsonl",
  ".parquet": "parquet",
};

/** The format a file name's extension names, or undefined. */
export function formatOfPath(path: string): TableFormat | undefined {
  const dot = path.lastIndexOf(".");
  return dot < 0 ? undefined : EXTENSIONS[path.slice(dot).toLowerCase()];
}

/** A SQL string literal. */
export const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;
/** A SQL identifier (column names are whatever a file's header says). */
export const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** A column as DuckDB types it. */
export interface DuckColumn {
  name: string;
  type: string;
}

/**
 * The table function that reads `file`. CSV needs a header row (as pandas reads it). Types come from `schema`
 * when given (the columns sniffed from the whole file's first rows, so that a slice of it is typed the same),
 * else DuckDB sniffs them from the first rows, or from every row with `sniffAllRows` (a pass over the whole file,
 * after which no value can fail to convert and a malformed JSON line has already failed the sniff). `asText`
 * reads every column as text: no value can fail to convert.
 */
export function readerSql(
  file: string,
  format: TableFormat,
  schema?: readonly DuckColumn[],
  asText = false,
  sniffAllRows = false,
): string {
  const struct = (types: (c: DuckColumn) => string) =>
    `{${schema!.map((c) => `${literal(c.name)}: ${literal(types(c))}`).join(", ")}}`;
  const sample = sniffAllRows && !schema ? ", sample_size = -1" : "";
  switch (format) {
    case "csv": {
      const types = asText ? ", all_varchar = true" : schema ? `, types = ${struct((c) => c.type)}` : sample;
      // A 4 MiB read buffer instead of DuckDB's 32 MiB: the buffers sit outside the memory limit.
      return `read_csv(${literal(file)}, header = true, buffer_size = ${4 << 20}${types})`;
    }
    case "jsonl": {
      // DuckDB's JSON reader takes the type of every column or of none.
      const columns = schema ? `, columns = ${struct((c) => (asText ? "VARCHAR" : c.type))}` : sample;
      return `read_json(${literal(file)}, format = 'newline_delimited'${columns})`;
    }
    case "parquet":
      return `read_parquet(${literal(file)})`;
  }
}

/**
 * The columns of `file` as DuckDB sniffs them from its first rows. Remembered per file version (path, size,
 * modification time): a worker scoring many shards of one file sniffs it once, and every shard is typed alike.
 */
export async function sniffFile(
  connection: DuckDBConnection,
  file: string,
  format: TableFormat,
): Promise<DuckColumn[]> {
  const { size, mtimeMs } = await stat(file);
  const key = `${format}\u0000${file}\u0000${size}\u0000${mtimeMs}`;
  let columns = sniffed.get(key);
  if (!columns) {
    columns = await duckColumns(connection, readerSql(file, format));
    if (sniffed.size >= SNIFFED_FILES) sniffed.delete(sniffed.keys().next().value!);
    sniffed.set(key, columns);
  }
  return columns;
}

const SNIFFED_FILES = 64;
const sniffed = new Map<string, DuckColumn[]>();

/** The columns a table function or table yields, as DuckDB types them, without reading its rows. */
export async function duckColumns(connection: DuckDBConnection, from: string): Promise<DuckColumn[]> {
  const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${from}`);
  return reader.getRowsJS().map(([name, type]) => ({ name: String(name), type: String(type) }));
}

/**
 * The part's rows as `format` can hold them: JSON has no NaN or Infinity (DuckDB would write them as bare,
 * unparseable tokens), so in JSONL they become null, a Frame's missing value.
 */
export async function asWritten(
  connection: DuckDBConnection,
  select: string,
  format: TableFormat,
): Promise<string> {
  if (format !== "jsonl") return select;
  const columns = await duckColumns(connection, `(${select})`);
  const finite = columns.map(({ name, type }) =>
    type === "FLOAT" || type === "DOUBLE"
      ? `CASE WHEN isfinite(${ident(name)}) THEN ${ident(name)} END AS ${ident(name)}`
      : ident(name),
  );
  return `SELECT ${finite.join(", ")} FROM (${select})`;
}

/** The options of `COPY … TO file (…)` that write `format`. */
export function writerOptions(format: TableFormat): string {
  switch (format) {
    case "csv":
      return "FORMAT csv, HEADER true";
    case "jsonl":
      return "FORMAT json";
    case "parquet":
      return "FORMAT parquet";
  }
}

const FROM_DUCKDB: Readonly<Record<string, Dtype>> = {
  FLOAT: "float32",
  DOUBLE: "float64",
  TINYINT: "int8",
  SMALLINT: "int16",
  INTEGER: "int32",
  BIGINT: "int64",
  UTINYINT: "uint8",
  USMALLINT: "uint16",
  UINTEGER: "uint32",
  UBIGINT: "uint64",
  BOOLEAN: "bool",
};

/**
 * A DuckDB column type as our dtype. DECIMAL and HUGEINT read as float64; everything without a dtype of its
 * own (VARCHAR, dates, timestamps, nested types) is "string": a model sees it as text.
 */
export function dtypeOfDuckDb(type: string): Dtype {
  if (type.startsWith("DECIMAL") || type === "HUGEINT" || type === "UHUGEINT") return "float64";
  return FROM_DUCKDB[type] ?? "string";
}
