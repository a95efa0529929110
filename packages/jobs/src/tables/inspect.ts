// What a job's input holds, before any shard runs: its files, their columns and row counts, Parquet's row
// groups and where CSV/JSONL rows start. Parquet is answered from file metadata; CSV and JSONL take a count by
// DuckDB (which converts no value) and a newline count, and only agree when every row is one line.
import { stat } from "node:fs/promises";
import type { DuckDBConnection } from "@duckdb/node-api";
import type { Dtype, TableFormat } from "@switchyard/protocol";
import { invalid } from "@switchyard/protocol";
import { type EngineOptions, numbers, withDuckDb } from "./engine.js";
import { dtypeOfDuckDb, literal, readerSql, sniffFile } from "./formats.js";
import { resolveInputs } from "./inputs.js";
import { indexLines, type RowIndex } from "./lines.js";

export interface TableColumn {
  name: string;
  dtype: Dtype;
}

export interface TableFile {
  /** Absolute path. */
  path: string;
  rows: number;
  /** Empty for an empty file. */
  columns: TableColumn[];
  /** Parquet: the rows of each row group, in file order. */
  rowGroups?: number[];
  /** CSV/JSONL whose rows are one line each: where rows start, so that shards are read by byte range. */
  rowIndex?: RowIndex;
}

export interface TableInfo {
  format: TableFormat;
  files: TableFile[];
  /** The columns every non-empty file has, in order; a dtype the files disagree on is widened. */
  columns: TableColumn[];
  rows: number;
}

/** Inspects `inputs` (files, directories or globs; see resolveInputs). Files must share their column names. */
export async function inspect(
  inputs: readonly string[],
  format?: TableFormat,
  options: EngineOptions = {},
): Promise<TableInfo> {
  return withDuckDb(options, async (_db, connection) => {
    const resolved = await resolveInputs(connection, inputs, format);
    const files: TableFile[] = [];
    for (const path of resolved.files) files.push(await inspectFile(connection, path, resolved.format));
    return {
      format: resolved.format,
      files,
      columns: commonColumns(files),
      rows: files.reduce((sum, f) => sum + f.rows, 0),
    };
  });
}

async function inspectFile(
  connection: DuckDBConnection,
  path: string,
  format: TableFormat,
): Promise<TableFile> {
  // DuckDB reads an empty CSV as one unnamed column and an empty JSONL as a `json` column: neither is data.
  if ((await stat(path)).size === 0) return { path, rows: 0, columns: [] };
  const columns = (await sniffFile(connection, path, format)).map((c) => ({
    name: c.name,
    dtype: dtypeOfDuckDb(c.type),
  }));
  if (format === "parquet") {
    const groups = await numbers(
      connection,
      `SELECT any_value(row_group_num_rows) FROM parquet_metadata(${literal(path)})
       GROUP BY row_group_id ORDER BY row_group_id`,
    );
    return { path, rows: groups.reduce((a, b) => a + b, 0), columns, rowGroups: groups };
  }
  const [[rows = 0], lines] = await Promise.all([
    numbers(connection, `SELECT count(*) FROM ${readerSql(path, format)}`),
    indexLines(path, format === "csv" ? 1 : 0),
  ]);
  return rows === lines.rows ? { path, rows, columns, rowIndex: lines.index } : { path, rows, columns };
}

function commonColumns(files: readonly TableFile[]): TableColumn[] {
  const withColumns = files.filter((f) => f.columns.length > 0);
  const first = withColumns[0];
  if (!first) return [];
  const names = first.columns.map((c) => c.name);
  for (const f of withColumns) {
    const these = f.columns.map((c) => c.name);
    if (these.join("\u0000") !== names.join("\u0000")) {
      throw invalid(
        `input files have different columns: '${first.path}' has [${names.join(", ")}], ` +
          `'${f.path}' has [${these.join(", ")}]`,
      );
    }
  }
  return first.columns.map((c, i) => ({
    name: c.name,
    dtype: withColumns.reduce<Dtype>((dtype, f) => widen(dtype, f.columns[i]!.dtype), c.dtype),
  }));
}

/** Two files' dtypes for one column as one: equal stays, text wins over numbers, numbers become float64. */
function widen(a: Dtype, b: Dtype): Dtype {
  if (a === b) return a;
  return a === "string" || b === "string" ? "string" : "float64";
}
