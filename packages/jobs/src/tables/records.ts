// JSON records (stream sink parts, capture exports) written as JSONL or Parquet files. Parquet goes through DuckDB
// from a JSONL file, one typed column per top-level field. Every file is fsynced; renaming it is the caller's.
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EngineOptions, withDuckDb } from "./engine.js";
import { ident, literal } from "./formats.js";

/** A Parquet column: a top-level field and its DuckDB type. */
export interface RecordColumn {
  name: string;
  type: string;
}

const TYPES: Readonly<Record<string, string>> = { number: "DOUBLE", string: "VARCHAR", boolean: "BOOLEAN" };

/**
 * Column types from the values, so that files written apart agree: all numbers → DOUBLE (JSON does not tell 1
 * from 1.0), all strings → VARCHAR, all booleans → BOOLEAN, anything else (objects, arrays, mixed, only nulls) →
 * JSON text.
 */
export function columnsOfRecords(bodies: readonly Record<string, unknown>[]): RecordColumn[] {
  const kinds = new Map<string, Set<string>>();
  for (const body of bodies) {
    for (const [field, value] of Object.entries(body)) {
      const seen = kinds.get(field) ?? new Set<string>();
      kinds.set(field, seen);
      if (value !== null && value !== undefined) seen.add(Array.isArray(value) ? "array" : typeof value);
    }
  }
  return [...kinds].map(([name, seen]) => {
    const only = seen.size === 1 ? TYPES[[...seen][0]!] : undefined;
    return { name, type: only ?? "JSON" };
  });
}

/** Appends records as JSON lines to a new file (never an existing one); `close` fsyncs it. */
export class JsonlWriter {
  private constructor(private readonly file: Awaited<ReturnType<typeof open>>) {}

  static async create(path: string): Promise<JsonlWriter> {
    return new JsonlWriter(await open(path, "wx"));
  }

  async write(bodies: readonly Record<string, unknown>[]): Promise<void> {
    if (bodies.length) await this.file.writeFile(`${bodies.map((b) => JSON.stringify(b)).join("\n")}\n`);
  }

  /** Fsyncs (unless aborting) and closes. */
  async close(sync = true): Promise<void> {
    try {
      if (sync) await this.file.sync();
    } finally {
      await this.file.close();
    }
  }
}

export async function writeJsonl(path: string, bodies: readonly Record<string, unknown>[]): Promise<void> {
  const writer = await JsonlWriter.create(path);
  let ok = false;
  try {
    await writer.write(bodies);
    ok = true;
  } finally {
    await writer.close(ok);
  }
}

/** A JSONL file of records as a Parquet file with these columns (fields beyond them are left out). */
export async function jsonlToParquet(
  jsonl: string,
  path: string,
  columns: readonly RecordColumn[],
  engine: EngineOptions,
): Promise<void> {
  await withDuckDb(engine, async (_db, connection) => {
    const struct = columns.map((c) => `${literal(c.name)}: ${literal(c.type)}`).join(", ");
    const select = columns.map((c) => ident(c.name)).join(", ");
    await connection.run(
      `COPY (SELECT ${select} FROM read_json(${literal(jsonl)}, format = 'newline_delimited', columns = {${struct}}))
       TO ${literal(path)} (FORMAT parquet)`,
    );
  });
  const file = await open(path, "r+");
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Records as a Parquet file, with `columns` (default: typed from the values, see columnsOfRecords). */
export async function writeParquet(
  path: string,
  bodies: readonly Record<string, unknown>[],
  engine: EngineOptions,
  columns: readonly RecordColumn[] = columnsOfRecords(bodies),
): Promise<void> {
  const scratch = await mkdtemp(join(engine.scratchDir ?? tmpdir(), "switchyard-records-"));
  try {
    const jsonl = join(scratch, "records.jsonl");
    await writeJsonl(jsonl, bodies);
    await jsonlToParquet(jsonl, path, columns, engine);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
