// Part files: each written under a temporary name, synced, then renamed, so a reader never sees half a part and
// a redelivered shard replaces its part instead of adding one; and the merge of a job's parts into one file.
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TableFormat } from "@switchyard/protocol";
import { invalid } from "@switchyard/protocol";
import { type EngineOptions, withDuckDb } from "./engine.js";
import { literal, readerSql, writerOptions } from "./formats.js";
import { CHUNK } from "./lines.js";

/**
 * Makes `final` by `write(tmp)` to `<final>.tmp-<random>` in the same directory, then fsync and rename: a
 * crash leaves no half-written file under the final name, and a rerun replaces the file whole.
 */
export async function writeThenRename(
  final: string,
  write: (tmp: string) => Promise<unknown>,
): Promise<void> {
  await mkdir(dirname(final), { recursive: true });
  const tmp = `${final}.tmp-${randomBytes(6).toString("hex")}`;
  try {
    await write(tmp);
    const file = await open(tmp, "r+");
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes `parts` (written by scoreShard in `format`) as one file `outFile`, in part order, by write-then-rename;
 * the caller removes the parts after. CSV and JSONL parts are concatenated as bytes (CSV without each part's
 * header after the first: DuckDB writes the same header for every part), so a merge costs a copy, not a
 * parse; Parquet parts are rewritten by DuckDB.
 */
export async function mergeParts(
  parts: readonly string[],
  outFile: string,
  format: TableFormat,
  options: EngineOptions = {},
): Promise<void> {
  if (parts.length === 0) throw new RangeError("mergeParts needs at least one part");
  await withDuckDb(options, async (_db, connection, scratch) => {
    if (format === "parquet") {
      const list = `[${parts.map(literal).join(", ")}]`;
      await writeThenRename(outFile, (tmp) =>
        connection.run(
          `COPY (SELECT * FROM read_parquet(${list}, union_by_name = true)) TO ${literal(tmp)} (${writerOptions(format)})`,
        ),
      );
      return;
    }
    let header = Buffer.alloc(0);
    if (format === "csv") {
      const file = join(scratch, "header.csv");
      await connection.run(
        `COPY (SELECT * FROM ${readerSql(parts[0]!, "csv", undefined, true)} LIMIT 0) TO ${literal(file)} (${writerOptions("csv")})`,
      );
      header = await readFile(file);
    }
    await writeThenRename(outFile, async (tmp) => {
      const out = await open(tmp, "w");
      try {
        await out.write(header);
        for (const part of parts) await appendBody(out, part, header);
      } finally {
        await out.close();
      }
    });
  });
}

async function appendBody(out: FileHandle, part: string, header: Buffer): Promise<void> {
  const head = Buffer.alloc(header.length);
  const file = await open(part, "r");
  try {
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    if (bytesRead !== header.length || !head.equals(header)) {
      throw invalid(`part '${part}' does not start with the header of the first part: it has other columns`);
    }
  } finally {
    await file.close();
  }
  for await (const chunk of createReadStream(part, { start: header.length, highWaterMark: CHUNK })) {
    await out.write(chunk);
  }
}
