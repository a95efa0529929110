// One DuckDB database per call, in memory, within the caller's thread and memory budget: nothing is shared
// between shards, and all a call held (tables, spill files) is freed when it returns. It never loads extensions.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";

export interface EngineOptions {
  /** DuckDB's worker threads, drawn by the batch worker from the node's thread budget. */
  threads?: number;
  /** DuckDB's memory limit in MiB; tables beyond it spill to disk under `scratchDir`. */
  memoryMb?: number;
  /** Where each call makes (then removes) its scratch directory: spilled tables, a shard's bytes. */
  scratchDir?: string;
}

export const ENGINE_DEFAULTS = { threads: 1, memoryMb: 256 } as const;

/**
 * Runs `work` with a fresh in-memory DuckDB and a scratch directory of its own (where DuckDB also spills), then
 * closes the database and removes the directory.
 */
export async function withDuckDb<T>(
  options: EngineOptions,
  work: (db: DuckDBInstance, connection: DuckDBConnection, scratch: string) => Promise<T>,
): Promise<T> {
  const threads = options.threads ?? ENGINE_DEFAULTS.threads;
  const memoryMb = options.memoryMb ?? ENGINE_DEFAULTS.memoryMb;
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new RangeError(`options.threads must be a positive integer, got ${threads}`);
  }
  if (!Number.isSafeInteger(memoryMb) || memoryMb < 16) {
    throw new RangeError(`options.memoryMb must be an integer of at least 16, got ${memoryMb}`);
  }
  // Several workers on one host must not share DuckDB's spill files, whose names are fixed.
  const scratch = await mkdtemp(join(options.scratchDir ?? tmpdir(), "switchyard-duckdb-"));
  let db: DuckDBInstance | undefined;
  try {
    db = await DuckDBInstance.create(":memory:", {
      threads: String(threads),
      memory_limit: `${memoryMb}MiB`,
      temp_directory: scratch,
      // Output rows must come in input order, whatever the thread count.
      preserve_insertion_order: "true",
      // Parquet and JSON are built in; nothing may be fetched from the network.
      autoinstall_known_extensions: "false",
      autoload_known_extensions: "false",
    });
    const connection = await db.connect();
    try {
      return await work(db, connection, scratch);
    } finally {
      connection.closeSync();
    }
  } finally {
    db?.closeSync();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The first column of a query's rows, as numbers (counts, sizes). */
export async function numbers(connection: DuckDBConnection, sql: string): Promise<number[]> {
  const reader = await connection.runAndReadAll(sql);
  return reader.getRowsJS().map(([n]) => Number(n));
}
