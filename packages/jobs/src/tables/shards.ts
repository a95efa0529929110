// Shard planning: an inspected input → the shards a job's workers score, in output order. Pure: it reads no
// file, so the coordinator can plan, re-plan a resumed job, and test the plan without touching a disk.
import type { Shard } from "@switchyard/protocol";
import type { TableInfo } from "./inspect.js";
import type { RowIndex } from "./lines.js";

/**
 * The shards of `info`, numbered in file order then row order (part `part-<index>` keeps the input's order).
 * CSV and JSONL files are cut into the fewest row ranges of about `shardRows`, of near-equal size; where the
 * file has a row index, cuts fall on indexed rows and each shard carries its byte range. Parquet shards are
 * whole row groups, packed in order while they hold at most `shardRows` rows; a row group larger than that is
 * a shard of its own, since a group is the smallest unit a Parquet reader can start at. A file without rows
 * has no shard.
 */
export function planShards(info: TableInfo, shardRows: number): Shard[] {
  if (!Number.isSafeInteger(shardRows) || shardRows < 1) {
    throw new RangeError(`shardRows must be a positive integer, got ${shardRows}`);
  }
  const shards: Shard[] = [];
  for (const f of info.files) {
    if (f.rows === 0) continue;
    const ranges = f.rowGroups
      ? rowGroupRanges(f.rowGroups, shardRows)
      : rowRanges(f.rows, shardRows, f.rowIndex);
    for (const r of ranges) shards.push({ index: shards.length, file: f.path, ...r });
  }
  return shards;
}

type Range = Omit<Shard, "index" | "file">;

function rowRanges(rows: number, shardRows: number, index: RowIndex | undefined): Range[] {
  const step = index?.step ?? 1;
  const count = Math.ceil(rows / shardRows);
  const cuts = [0];
  for (let i = 1; i < count; i++) {
    const cut = Math.round(Math.floor((i * rows) / count) / step) * step;
    if (cut > cuts.at(-1)! && cut < rows) cuts.push(cut);
  }
  cuts.push(rows);
  const byteAt = (row: number) => (row === rows ? index!.end : index!.offsets[row / step]!);
  return cuts.slice(1).map((end, i) => {
    const first = cuts[i]!;
    const range: Range = { first_row: first, rows: end - first };
    if (index) range.bytes = [byteAt(first), byteAt(end)];
    return range;
  });
}

function rowGroupRanges(groups: readonly number[], shardRows: number): Range[] {
  const out: Range[] = [];
  let current: Range | undefined;
  let firstRow = 0;
  groups.forEach((rows, g) => {
    // An empty row group joins its neighbour, so no shard is empty.
    if (current && (rows === 0 || current.rows === 0 || current.rows + rows <= shardRows)) {
      current.rows += rows;
      current.row_groups = [current.row_groups![0], g];
    } else {
      current = { first_row: firstRow, rows, row_groups: [g, g] };
      out.push(current);
    }
    firstRow += rows;
  });
  return out;
}
