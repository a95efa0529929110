// A job's `input` → the files it names and their format: a file, a directory (its files of the format, sorted),
// or a glob. It reads directory listings only; whether a path is allowed (the data roots) is checked elsewhere.
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import type { TableFormat } from "@switchyard/protocol";
import { invalid, notFound } from "@switchyard/protocol";
import { formatOfPath, literal } from "./formats.js";

export interface ResolvedInputs {
  format: TableFormat;
  /** Absolute paths, in input order; a directory's or a glob's files sorted by name. */
  files: string[];
}

/**
 * The files `inputs` name. The format is `format` when given, else the one their extensions name
 * (.csv, .jsonl/.ndjson, .parquet), which must be the same for all. In a directory, files whose names start
 * with `.` or `_` (`_SUCCESS`, `_manifest.json`, hidden files) are not data.
 */
export async function resolveInputs(
  connection: DuckDBConnection,
  inputs: readonly string[],
  format?: TableFormat,
): Promise<ResolvedInputs> {
  const files: string[] = [];
  for (const input of inputs) {
    const found = await filesOf(connection, resolve(input), format);
    if (found.length === 0) {
      throw notFound(`no ${format ?? "csv, jsonl or parquet"} file matches input '${input}'`);
    }
    for (const f of found) if (!files.includes(f)) files.push(f);
  }
  if (files.length === 0) throw invalid("no input given");
  return { format: format ?? formatOfFiles(files), files };
}

async function filesOf(
  connection: DuckDBConnection,
  path: string,
  format: TableFormat | undefined,
): Promise<string[]> {
  const info = await stat(path).catch(() => undefined);
  if (info?.isFile()) return [path];
  const isData = (name: string) =>
    !/^[._]/.test(name) && (format ? formatOfPath(name) === format : formatOfPath(name) !== undefined);
  if (info?.isDirectory()) {
    const entries = await readdir(path, { withFileTypes: true });
    return entries
      .filter((e) => e.isFile() && isData(e.name))
      .map((e) => join(path, e.name))
      .sort();
  }
  if (!/[*?[{]/.test(path)) throw notFound(`input '${path}' does not exist`);
  // Node 20 has no glob of its own; DuckDB's is the one its readers use.
  const reader = await connection.runAndReadAll(`SELECT file FROM glob(${literal(path)}) ORDER BY file`);
  return reader
    .getRowsJS()
    .map(([file]) => String(file))
    .filter((f) => isData(f.slice(f.lastIndexOf("/") + 1)));
}

function formatOfFiles(files: readonly string[]): TableFormat {
  const formats = new Set<TableFormat>();
  for (const f of files) {
    const format = formatOfPath(f);
    if (!format) {
      throw invalid(`cannot tell the format of '${f}' from its extension; give the input format`);
    }
    formats.add(format);
  }
  if (formats.size > 1) {
    throw invalid(`the inputs mix formats (${[...formats].join(", ")}); give one format or split the job`);
  }
  return [...formats][0]!;
}
