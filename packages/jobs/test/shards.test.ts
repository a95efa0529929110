import type { TableFile, TableInfo } from "@switchyard/jobs";
import { planShards } from "@switchyard/jobs";
import { describe, expect, it } from "vitest";

const info = (format: TableInfo["format"], files: TableFile[]): TableInfo => ({
  format,
  files,
  columns: [],
  rows: files.reduce((n, f) => n + f.rows, 0),
});

describe("planShards", () => {
  it("cuts a file into the fewest ranges of at most shardRows, sizes differing by at most one", () => {
    const shards = planShards(info("csv", [{ path: "/d/a.csv", rows: 10, columns: [] }]), 3);
    expect(shards).toEqual([
      { index: 0, file: "/d/a.csv", first_row: 0, rows: 2 },
      { index: 1, file: "/d/a.csv", first_row: 2, rows: 3 },
      { index: 2, file: "/d/a.csv", first_row: 5, rows: 2 },
      { index: 3, file: "/d/a.csv", first_row: 7, rows: 3 },
    ]);
  });

  it("numbers shards across files in order and gives a file without rows no shard", () => {
    const shards = planShards(
      info("jsonl", [
        { path: "/d/1.jsonl", rows: 4, columns: [] },
        { path: "/d/2.jsonl", rows: 0, columns: [] },
        { path: "/d/3.jsonl", rows: 5, columns: [] },
      ]),
      4,
    );
    expect(shards.map((s) => [s.index, s.file, s.first_row, s.rows])).toEqual([
      [0, "/d/1.jsonl", 0, 4],
      [1, "/d/3.jsonl", 0, 2],
      [2, "/d/3.jsonl", 2, 3],
    ]);
  });

  it("cuts an indexed file on indexed rows and gives each shard its byte range", () => {
    // Rows start every 10 bytes after a 6-byte header; the index keeps every 2nd row.
    const rowIndex = { step: 2, offsets: [6, 26, 46, 66, 86], end: 106 };
    const shards = planShards(info("csv", [{ path: "/d/a.csv", rows: 10, columns: [], rowIndex }]), 3);
    // Ideal cuts 2, 5, 7 move to the nearest indexed rows 2, 6, 8.
    expect(shards).toEqual([
      { index: 0, file: "/d/a.csv", first_row: 0, rows: 2, bytes: [6, 26] },
      { index: 1, file: "/d/a.csv", first_row: 2, rows: 4, bytes: [26, 66] },
      { index: 2, file: "/d/a.csv", first_row: 6, rows: 2, bytes: [66, 86] },
      { index: 3, file: "/d/a.csv", first_row: 8, rows: 2, bytes: [86, 106] },
    ]);
  });

  it("never cuts twice at one indexed row when shardRows is below the index step", () => {
    const rowIndex = { step: 4, offsets: [0, 40, 80], end: 100 };
    const shards = planShards(info("jsonl", [{ path: "/d/a.jsonl", rows: 10, columns: [], rowIndex }]), 1);
    expect(shards.map((s) => [s.first_row, s.rows, s.bytes])).toEqual([
      [0, 4, [0, 40]],
      [4, 4, [40, 80]],
      [8, 2, [80, 100]],
    ]);
  });

  it("packs whole Parquet row groups up to shardRows; a larger group is a shard of its own", () => {
    const shards = planShards(
      info("parquet", [
        { path: "/d/a.parquet", rows: 350, columns: [], rowGroups: [100, 100, 100, 50] },
        { path: "/d/b.parquet", rows: 520, columns: [], rowGroups: [500, 10, 10] },
      ]),
      200,
    );
    expect(shards).toEqual([
      { index: 0, file: "/d/a.parquet", first_row: 0, rows: 200, row_groups: [0, 1] },
      { index: 1, file: "/d/a.parquet", first_row: 200, rows: 150, row_groups: [2, 3] },
      { index: 2, file: "/d/b.parquet", first_row: 0, rows: 500, row_groups: [0, 0] },
      { index: 3, file: "/d/b.parquet", first_row: 500, rows: 20, row_groups: [1, 2] },
    ]);
  });

  it("folds empty row groups into a neighbour, so no shard is empty", () => {
    const shards = planShards(
      info("parquet", [{ path: "/d/a.parquet", rows: 550, columns: [], rowGroups: [0, 50, 0, 500, 0] }]),
      100,
    );
    expect(shards.map((s) => [s.first_row, s.rows, s.row_groups])).toEqual([
      [0, 50, [0, 2]],
      [50, 500, [3, 4]],
    ]);
  });

  it("refuses a shard size that is not a positive integer", () => {
    const one = info("csv", [{ path: "/d/a.csv", rows: 1, columns: [] }]);
    expect(() => planShards(one, 0)).toThrow("shardRows must be a positive integer, got 0");
    expect(() => planShards(one, 1.5)).toThrow("shardRows must be a positive integer, got 1.5");
  });
});
