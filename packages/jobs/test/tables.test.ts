// The table layer against real DuckDB on files made here. Outputs are read back independently: CSV with
// csv-parse, JSONL with JSON.parse, Parquet with a DuckDB query of the test's own; expected values are worked
// out from the rows the test wrote.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DuckDBInstance } from "@duckdb/node-api";
import { Frame, type Payload } from "@switchyard/data";
import {
  inspect,
  mergeParts,
  planShards,
  type ShardJob,
  scoreShard,
  type TableColumn,
} from "@switchyard/jobs";
import type { Shard, TableFormat } from "@switchyard/protocol";
import { parse } from "csv-parse/sync";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "jobs-tables-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs SQL on a DuckDB of the test's own (to write Parquet inputs and read Parquet outputs). */
async function duck<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowObjectsJS() as T[];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

const csvField = (v: string | number) => {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

/** Rows as read back from a part or output file: plain objects, numbers as numbers. */
async function readTable(file: string, format: TableFormat): Promise<Record<string, unknown>[]> {
  if (format === "csv") return parse(await readFile(file), { columns: true }) as Record<string, unknown>[];
  if (format === "jsonl") {
    const text = await readFile(file, "utf8");
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l));
  }
  return duck(`SELECT * FROM read_parquet('${file}')`);
}

async function header(file: string, format: TableFormat): Promise<string[]> {
  if (format === "csv") return (parse(await readFile(file), { to_line: 1 }) as string[][])[0]!;
  if (format === "jsonl") return Object.keys(JSON.parse((await readFile(file, "utf8")).split("\n")[0]!));
  return (await duck<{ column_name: string }>(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).map(
    (r) => r.column_name,
  );
}

/** A model computed here: the sum of its feature columns. */
const sumOf =
  (scale = 1) =>
  async (frame: Frame): Promise<Payload> => {
    const sum = new Float64Array(frame.length);
    for (const name of frame.columns) {
      const col = frame.column(name) as Float64Array;
      for (let i = 0; i < frame.length; i++) sum[i]! += col[i]! * scale;
    }
    return Frame.fromColumns({ sum });
  };

const f64 = (...names: string[]): TableColumn[] => names.map((name) => ({ name, dtype: "float64" }));

/** Scores every shard of `info` into `<out>/part-<i>.<ext>` and returns the parts in order. */
async function scoreAll(
  input: string,
  shardRows: number,
  job: Omit<ShardJob, "shard" | "part" | "format">,
  score = sumOf(),
): Promise<{ parts: string[]; shards: Shard[] }> {
  const info = await inspect([input]);
  const shards = planShards(info, shardRows);
  const parts: string[] = [];
  for (const shard of shards) {
    const part = join(dir, "out", `part-${String(shard.index).padStart(5, "0")}.${job.outputFormat}`);
    await scoreShard({ ...job, shard, part, format: info.format }, score);
    parts.push(part);
  }
  return { parts, shards };
}

// 50 rows: an integer id, text with commas and quotes, two float features (exact binary fractions).
const N = 50;
const names = Array.from({ length: N }, (_, i) => (i % 3 === 0 ? `n${i}, "quoted"` : `n${i}`));
const a = (i: number) => i * 0.25 - 3;
const b = (i: number) => (i % 7) * 1.5;

async function writeInput(format: TableFormat): Promise<string> {
  const jsonl = join(dir, "in.jsonl");
  await writeFile(
    jsonl,
    names.map((name, i) => `${JSON.stringify({ id: i, name, a: a(i), b: b(i) })}\n`).join(""),
  );
  if (format === "jsonl") return jsonl;
  if (format === "csv") {
    const file = join(dir, "in.csv");
    const rows = names.map((name, i) => [i, name, a(i), b(i)].map(csvField).join(","));
    await writeFile(file, `id,name,a,b\n${rows.join("\n")}\n`);
    return file;
  }
  const file = join(dir, "in.parquet");
  await duck(`COPY (SELECT * FROM read_json('${jsonl}')) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`);
  return file;
}

describe("every format in and out", () => {
  const formats: TableFormat[] = ["csv", "jsonl", "parquet"];
  for (const inFormat of formats) {
    for (const outFormat of formats) {
      it(`${inFormat} → ${outFormat}: every input column, then the prediction, row by row in order`, async () => {
        const input = await writeInput(inFormat);
        const { parts, shards } = await scoreAll(input, 16, {
          features: f64("a", "b"),
          onError: "fail",
          outputFormat: outFormat,
        });
        // Parquet written in one row group is one shard; CSV/JSONL are cut in 4.
        expect(shards.length).toBe(inFormat === "parquet" ? 1 : 4);
        const out = join(dir, `scored.${outFormat}`);
        await mergeParts(parts, out, outFormat);
        expect(await header(out, outFormat)).toEqual(["id", "name", "a", "b", "prediction"]);
        const rows = await readTable(out, outFormat);
        expect(
          rows.map((r) => [Number(r.id), r.name, Number(r.a), Number(r.b), Number(r.prediction)]),
        ).toEqual(names.map((name, i) => [i, name, a(i), b(i), a(i) + b(i)]));
      });
    }
  }
});

describe("CSV", () => {
  it("keeps quoted fields, embedded commas, quotes and newlines unchanged through a part and a merge", async () => {
    const input = join(dir, "quoted.csv");
    const text = [
      "line one\nline two",
      'say "hi", then go',
      "plain",
      "a,b,c",
      "ends with newline\n",
      "ünïcödé ✓",
    ];
    const rows = text.map((t, i) => [csvField(t), i + 0.5, i].join(","));
    await writeFile(input, `text,x,y\n${rows.join("\n")}\n`);
    const info = await inspect([input]);
    expect(info.rows).toBe(6);
    expect(info.columns).toEqual([
      { name: "text", dtype: "string" },
      { name: "x", dtype: "float64" },
      { name: "y", dtype: "int64" },
    ]);
    // Rows spanning lines: no byte index, shards are found by row number.
    expect(info.files[0]!.rowIndex).toBeUndefined();
    const { parts } = await scoreAll(input, 4, {
      features: f64("x", "y"),
      onError: "fail",
      outputFormat: "csv",
    });
    const out = join(dir, "scored.csv");
    await mergeParts(parts, out, "csv");
    const back = parse(await readFile(out), { columns: true }) as Record<string, string>[];
    expect(back).toEqual(
      text.map((t, i) => ({
        text: t,
        x: String(i + 0.5),
        y: String(i),
        prediction: String(i + 0.5 + i),
      })),
    );
  });

  it("reads exactly a shard's rows from the middle of a file, by byte range and by row number", async () => {
    const input = join(dir, "ids.csv");
    const lines = Array.from({ length: 100 }, (_, i) => `${i},${i * 2}\n`);
    await writeFile(input, `id,x\n${lines.join("")}`);
    const info = await inspect([input]);
    // Row i starts after the header and the i rows before it.
    const starts = lines.map((_, i) => "id,x\n".length + lines.slice(0, i).join("").length);
    expect(info.files[0]!.rowIndex).toEqual({ step: 1, offsets: starts, end: 5 + lines.join("").length });
    const shards = planShards(info, 30);
    expect(shards.map((s) => [s.first_row, s.rows])).toEqual([
      [0, 25],
      [25, 25],
      [50, 25],
      [75, 25],
    ]);
    const middle = shards[2]!;
    expect(middle.bytes).toBeDefined();
    const { bytes: _, ...byRowNumber } = middle;
    for (const shard of [middle, byRowNumber]) {
      const part = join(dir, "part.csv");
      const outcome = await scoreShard(
        { shard, format: "csv", features: f64("x"), onError: "fail", part, outputFormat: "csv" },
        sumOf(),
      );
      expect(outcome.rows).toBe(25);
      const rows = parse(await readFile(part), { columns: true }) as Record<string, string>[];
      expect(rows.map((r) => [Number(r.id), Number(r.prediction)])).toEqual(
        Array.from({ length: 25 }, (_, k) => [50 + k, (50 + k) * 2]),
      );
    }
  });

  it("counts an empty file and a header-only file as 0 rows, with no shard", async () => {
    await writeFile(join(dir, "empty.csv"), "");
    await writeFile(join(dir, "header.csv"), "a,b\n");
    const empty = await inspect([join(dir, "empty.csv")]);
    expect(empty.files).toEqual([{ path: join(dir, "empty.csv"), rows: 0, columns: [] }]);
    expect(planShards(empty, 10)).toEqual([]);
    const headerOnly = await inspect([join(dir, "header.csv")]);
    expect(headerOnly.rows).toBe(0);
    expect(headerOnly.columns.map((c) => c.name)).toEqual(["a", "b"]);
    expect(planShards(headerOnly, 10)).toEqual([]);
    // Both together: columns come from the file that has them.
    const both = await inspect([dir], "csv");
    expect(both.files.map((f) => f.rows)).toEqual([0, 0]);
    expect(both.columns.map((c) => c.name)).toEqual(["a", "b"]);
  });
});

describe("JSONL", () => {
  it("hands a column of strings to a text model and writes its named outputs", async () => {
    const input = join(dir, "texts.ndjson");
    const texts = ["great product", 'said "no"', "", "multi\nline", "ünïcödé ✓", "short"];
    await writeFile(input, texts.map((text) => `${JSON.stringify({ text })}\n`).join(""));
    const info = await inspect([input]);
    expect(info).toMatchObject({ format: "jsonl", rows: 6, columns: [{ name: "text", dtype: "string" }] });
    const seen: string[] = [];
    const model = async (frame: Frame): Promise<Payload> => {
      const col = frame.column("text") as string[];
      seen.push(...col);
      return Frame.fromColumns({
        label: col.map((t) => (t.length > 6 ? "long" : "short")),
        length: new Float64Array(col.map((t) => t.length)),
      });
    };
    const { parts } = await scoreAll(
      input,
      4,
      { features: [{ name: "text", dtype: "string" }], onError: "fail", outputFormat: "jsonl", batchRows: 2 },
      model,
    );
    expect(seen).toEqual(texts);
    const rows = (await Promise.all(parts.map((p) => readTable(p, "jsonl")))).flat();
    expect(rows).toEqual(
      texts.map((text) => ({ text, label: text.length > 6 ? "long" : "short", length: text.length })),
    );
  });
  it("writes NaN and Infinity as null, since JSON has neither", async () => {
    const input = join(dir, "special.csv");
    await writeFile(input, "x\n1\nnan\ninf\n");
    const [shard] = planShards(await inspect([input]), 10);
    const part = join(dir, "p.jsonl");
    await scoreShard(
      { shard: shard!, format: "csv", features: f64("x"), onError: "fail", part, outputFormat: "jsonl" },
      async () => Frame.fromColumns({ y: new Float64Array([0.5, Number.NaN, Number.NEGATIVE_INFINITY]) }),
    );
    expect(await readTable(part, "jsonl")).toEqual([
      { x: 1, prediction: 0.5 },
      { x: null, prediction: null },
      { x: null, prediction: null },
    ]);
  });
});

describe("Parquet", () => {
  it("plans shards on row-group boundaries and reads exactly each shard's groups", async () => {
    const input = join(dir, "groups.parquet");
    await duck(
      `COPY (SELECT i AS id, i * 0.5 AS x FROM range(10000) t(i)) TO '${input}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`,
    );
    const info = await inspect([input]);
    expect(info.files[0]!.rowGroups).toEqual([2048, 2048, 2048, 2048, 1808]);
    const shards = planShards(info, 4100);
    expect(shards.map((s) => [s.first_row, s.rows, s.row_groups])).toEqual([
      [0, 4096, [0, 1]],
      [4096, 4096, [2, 3]],
      [8192, 1808, [4, 4]],
    ]);
    const part = join(dir, "part.parquet");
    await scoreShard(
      {
        shard: shards[1]!,
        format: "parquet",
        features: f64("x"),
        onError: "fail",
        part,
        outputFormat: "parquet",
      },
      sumOf(),
    );
    const rows = await duck<{ id: bigint; prediction: number }>(`SELECT id, prediction FROM '${part}'`);
    expect(rows.map((r) => [Number(r.id), r.prediction])).toEqual(
      Array.from({ length: 4096 }, (_, k) => [4096 + k, (4096 + k) * 0.5]),
    );
  });

  it("writes [N] and [N, k] tensor outputs as a column and a list column", async () => {
    const input = await writeInput("parquet");
    const model = async (frame: Frame): Promise<Payload> => {
      const x = frame.column("a") as Float64Array;
      const probs = new Float32Array(frame.length * 2);
      const label = new BigInt64Array(frame.length);
      for (let i = 0; i < frame.length; i++) {
        probs[2 * i] = 0.25;
        probs[2 * i + 1] = 0.75;
        label[i] = x[i]! > 0 ? 1n : 0n;
      }
      return [
        { name: "label", dtype: "int64", shape: [frame.length], data: label },
        { name: "probabilities", dtype: "float32", shape: [frame.length, 2], data: probs },
      ];
    };
    const { parts } = await scoreAll(
      input,
      100,
      { features: f64("a"), onError: "fail", outputFormat: "parquet" },
      model,
    );
    const types = await duck<{ column_name: string; column_type: string }>(
      `DESCRIBE SELECT label, probabilities FROM '${parts[0]}'`,
    );
    expect(types.map((t) => [t.column_name, t.column_type])).toEqual([
      ["label", "BIGINT"],
      // Parquet has no fixed-size list: DuckDB's FLOAT[2] is stored as a list.
      ["probabilities", "FLOAT[]"],
    ]);
    const rows = await duck<{ label: bigint; probabilities: number[] }>(
      `SELECT label, probabilities FROM '${parts[0]}'`,
    );
    expect(rows.map((r) => [Number(r.label), r.probabilities])).toEqual(
      names.map((_, i) => [a(i) > 0 ? 1 : 0, [0.25, 0.75]]),
    );
  });
});

describe("inputs", () => {
  it("takes a directory's files of the format, sorted, and a glob; data files only", async () => {
    await mkdir(join(dir, "in"));
    for (const name of ["b.csv", "a.csv", "_SUCCESS", ".hidden.csv", "notes.txt"]) {
      await writeFile(join(dir, "in", name), "x\n1\n");
    }
    const fromDir = await inspect([join(dir, "in")]);
    expect(fromDir.format).toBe("csv");
    expect(fromDir.files.map((f) => f.path)).toEqual([join(dir, "in", "a.csv"), join(dir, "in", "b.csv")]);
    const fromGlob = await inspect([join(dir, "in", "*.csv")]);
    expect(fromGlob.files.map((f) => f.path)).toEqual([join(dir, "in", "a.csv"), join(dir, "in", "b.csv")]);
    expect(fromGlob.rows).toBe(2);
  });

  it("refuses files whose columns differ, naming both", async () => {
    await writeFile(join(dir, "1.csv"), "a,b\n1,2\n");
    await writeFile(join(dir, "2.csv"), "a,c\n1,2\n");
    await expect(inspect([join(dir, "1.csv"), join(dir, "2.csv")])).rejects.toThrow(
      `input files have different columns: '${join(dir, "1.csv")}' has [a, b], '${join(dir, "2.csv")}' has [a, c]`,
    );
  });

  it("names a missing feature column and lists the columns found", async () => {
    const input = await writeInput("csv");
    const [shard] = planShards(await inspect([input]), 100);
    await expect(
      scoreShard(
        {
          shard: shard!,
          format: "csv",
          features: f64("a", "c"),
          onError: "fail",
          part: join(dir, "p.csv"),
          outputFormat: "csv",
        },
        sumOf(),
      ),
    ).rejects.toThrow(`${input} has no column 'c'; its columns are: id, name, a, b`);
  });
});

describe("a non-numeric value in a numeric feature", () => {
  // Row 1 spans two lines, so row numbers are not line numbers.
  const csv = 'id,name,x\n1,"two\nlines",1.5\n2,b,abc\n3,c,3\n4,d,oops\n5,e,5\n';

  it("fails the shard naming the file, the data row, the column and the value", async () => {
    const input = join(dir, "bad.csv");
    await writeFile(input, csv);
    const [shard] = planShards(await inspect([input]), 100);
    await expect(
      scoreShard(
        {
          shard: shard!,
          format: "csv",
          features: f64("x"),
          onError: "fail",
          part: join(dir, "p.csv"),
          outputFormat: "csv",
        },
        sumOf(),
      ),
    ).rejects.toThrow(`${input}: row 2, column 'x': "abc" is not a number`);
    expect(await readdir(dir)).toEqual(["bad.csv"]);
  });

  it("with skip, leaves those rows out of the part and returns them with the raw row", async () => {
    const input = join(dir, "bad.csv");
    await writeFile(input, csv);
    const [shard] = planShards(await inspect([input]), 100);
    const part = join(dir, "p.parquet");
    const outcome = await scoreShard(
      { shard: shard!, format: "csv", features: f64("x"), onError: "skip", part, outputFormat: "parquet" },
      sumOf(),
    );
    expect(outcome.rows).toBe(3);
    expect(outcome.badRows).toEqual([
      { row: 2, column: "x", reason: '"abc" is not a number', raw: '{"id":2,"name":"b","x":"abc"}' },
      { row: 4, column: "x", reason: '"oops" is not a number', raw: '{"id":4,"name":"d","x":"oops"}' },
    ]);
    // The kept rows' x is a number again in a typed output.
    const rows = await duck<{ id: bigint; x: number; prediction: number }>(
      `SELECT id, x, prediction FROM '${part}'`,
    );
    expect(rows.map((r) => [Number(r.id), r.x, r.prediction])).toEqual([
      [1, 1.5, 1.5],
      [3, 3, 3],
      [5, 5, 5],
    ]);
  });

  it("finds a bad value past the rows DuckDB sniffs types from, in a shard read by byte range", async () => {
    const input = join(dir, "late.csv");
    const lines = Array.from({ length: 30_000 }, (_, i) => `${i + 1},${i === 24_999 ? "n/a" : i / 4}`);
    await writeFile(input, `id,x\n${lines.join("\n")}\n`);
    const info = await inspect([input]);
    expect(info.columns).toEqual([
      { name: "id", dtype: "int64" },
      { name: "x", dtype: "float64" },
    ]);
    const shards = planShards(info, 10_000);
    const shard = shards.find((s) => s.first_row <= 24_999 && 24_999 < s.first_row + s.rows)!;
    expect(shard.bytes).toBeDefined();
    const job = { shard, format: "csv" as const, features: f64("x"), outputFormat: "jsonl" as const };
    await expect(
      scoreShard({ ...job, onError: "fail", part: join(dir, "p.jsonl") }, sumOf()),
    ).rejects.toThrow(`${input}: row 25000, column 'x': "n/a" is not a number`);
    const outcome = await scoreShard({ ...job, onError: "skip", part: join(dir, "p.jsonl") }, sumOf());
    expect(outcome.badRows).toEqual([
      { row: 25000, column: "x", reason: '"n/a" is not a number', raw: '{"id":"25000","x":"n/a"}' },
    ]);
    const rows = await readTable(join(dir, "p.jsonl"), "jsonl");
    expect(rows.length).toBe(shard.rows - 1);
    // Read as text after the typed read failed, the columns are typed again on the way out.
    const expected = Array.from({ length: shard.rows }, (_, k) => shard.first_row + k)
      .filter((i) => i !== 24_999)
      .map((i) => ({ id: i + 1, x: i / 4, prediction: i / 4 }));
    expect(rows).toEqual(expected);
  });
});

describe("parts", () => {
  it("are written by write-then-rename: no temporary file is left and a rerun replaces the part", async () => {
    const input = await writeInput("csv");
    const [shard] = planShards(await inspect([input]), 100);
    const part = join(dir, "out", "part-00000.csv");
    const job: ShardJob = {
      shard: shard!,
      format: "csv",
      features: f64("a", "b"),
      onError: "fail",
      part,
      outputFormat: "csv",
    };
    await scoreShard(job, sumOf());
    await scoreShard(job, sumOf(2));
    expect(await readdir(join(dir, "out"))).toEqual(["part-00000.csv"]);
    const rows = parse(await readFile(part), { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => Number(r.prediction))).toEqual(names.map((_, i) => 2 * (a(i) + b(i))));
    // A shard that fails leaves the previous part as it was.
    const before = await readFile(part);
    await expect(scoreShard(job, () => Promise.reject(new Error("model crashed")))).rejects.toThrow(
      "model crashed",
    );
    expect(await readdir(join(dir, "out"))).toEqual(["part-00000.csv"]);
    expect(await readFile(part)).toEqual(before);
  });

  it("merge in part order into one file, with no temporary file left", async () => {
    const input = await writeInput("jsonl");
    const { parts } = await scoreAll(input, 5, {
      features: f64("a", "b"),
      onError: "fail",
      outputFormat: "parquet",
    });
    expect(parts.length).toBe(10);
    const out = join(dir, "final", "scored.parquet");
    await mergeParts(parts, out, "parquet");
    expect(await readdir(join(dir, "final"))).toEqual(["scored.parquet"]);
    const rows = await duck<{ id: bigint }>(`SELECT id FROM '${out}'`);
    expect(rows.map((r) => Number(r.id))).toEqual(names.map((_, i) => i));
  });
});

describe("memory", () => {
  it("scores a file ten times DuckDB's memory limit in a process smaller than the file", async () => {
    // ~324 MB of CSV (400k rows of ~800 bytes of text) through a 32 MiB DuckDB, as one shard, in a child process.
    const input = join(dir, "large.csv");
    await duck(
      `COPY (SELECT i AS id, i % 100 AS x, repeat(chr(97 + (i % 26)::INT), 800) AS pad FROM range(400000) t(i))
       TO '${input}' (FORMAT csv, HEADER true)`,
    );
    const fileMb = (await stat(input)).size / 2 ** 20;
    expect(Math.round(fileMb)).toBe(309);
    const fixture = fileURLToPath(new URL("./fixtures/score-file.mjs", import.meta.url));
    const part = join(dir, "part.csv");
    const { stdout } = await promisify(execFile)(process.execPath, [fixture, input, part, "32"]);
    const result = JSON.parse(stdout) as { rows: number; predictionSum: number; maxRssMb: number };
    expect(result.rows).toBe(400_000);
    // x cycles through 0..99 four thousand times.
    expect(result.predictionSum).toBe(4000 * 4950);
    expect((await stat(part)).size).toBeGreaterThan((await stat(input)).size);
    expect(result.maxRssMb).toBeLessThan(fileMb * 0.8);
  });
});
