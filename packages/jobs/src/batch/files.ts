// The file side of batch jobs, for the coordinator: plan a job (inputs checked under the data roots, inspected,
// feature columns matched to the model's signature, shards planned, where each part goes) and finish it (merge
// the parts into one file or keep them, gather skipped rows into `_errors.jsonl`, write the manifest, then
// `_SUCCESS` last, so a reader that sees `_SUCCESS` sees a complete output).
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type {
  BatchJob,
  BatchJobRequest,
  Dtype,
  ShardResult,
  Signature,
  TableFormat,
} from "@switchyard/protocol";
import { invalid } from "@switchyard/protocol";
import { underDataRoots } from "../paths.js";
import { withDuckDb } from "../tables/engine.js";
import { formatOfPath, literal } from "../tables/formats.js";
import { inspect, type TableColumn } from "../tables/inspect.js";
import { mergeParts, writeThenRename } from "../tables/parts.js";
import { planShards } from "../tables/shards.js";
import { errorsPathOf } from "./worker.js";

type Request = Omit<BatchJobRequest, "shard_rows" | "on_error"> & {
  shard_rows: number;
  on_error: "fail" | "skip";
};

/** Shard parts of a single-file output are staged beside it, then merged into it. */
const stagingOf = (file: string) => `${file}.parts`;
const partName = (index: number, format: TableFormat) => `part-${String(index).padStart(5, "0")}.${format}`;

export interface BatchFilesOptions {
  /** Directories jobs may read and write; everything else is refused before a job starts. */
  dataRoots: string[];
}

export function batchFiles(o: BatchFilesOptions) {
  if (o.dataRoots.length === 0) throw new TypeError("options.dataRoots must name at least one directory");
  return {
    async plan(req: Request, signature: Signature | null) {
      const input = await underDataRoots(req.input, o.dataRoots, "input");
      const output = await underDataRoots(req.output, o.dataRoots, "output");
      const info = await inspect([globSafe(input, req.input)], req.input_format);
      // A directory's files, or a glob's, may be symlinks out of the roots: each one is checked too.
      for (const f of info.files) await underDataRoots(f.path, o.dataRoots, "input");
      const singleFile = !req.output.endsWith("/") && formatOfPath(output) !== undefined;
      const outputFormat = req.output_format ?? (singleFile ? formatOfPath(output)! : info.format);
      if (singleFile && formatOfPath(output) !== outputFormat) {
        throw invalid(
          `output: '${req.output}' does not end in .${outputFormat} (output_format ${outputFormat})`,
        );
      }
      // Empty files have no columns to match: a job over nothing but them scores nothing, and succeeds.
      const featureColumns =
        info.columns.length === 0 && info.rows === 0
          ? []
          : featureColumnsOf(info.columns, signature, req.columns);
      const dir = singleFile ? stagingOf(output) : output;
      return {
        inputs: info.files.map((f) => f.path),
        input_format: info.format,
        output: singleFile ? output : `${output.replace(/\/+$/, "")}/`,
        output_format: outputFormat,
        single_file: singleFile,
        feature_columns: featureColumns,
        shards: planShards(info, req.shard_rows),
        total_rows: info.rows,
        part: (index: number) => path.join(dir, partName(index, outputFormat)),
      };
    },

    async finalize(job: BatchJob, results: ShardResult[]) {
      const ordered = [...results].sort((a, b) => a.index - b.index);
      const parts = ordered.filter((r) => r.state === "DONE").map((r) => r.part);
      const dir = job.single_file ? stagingOf(job.output) : job.output;
      // A single file's staging is never created here: an empty input is finalized twice at once (its submit and
      // the leader's pass), and one's rm of the staging between the other's mkdir EEXIST and stat is an ENOENT.
      if (!job.single_file) await mkdir(dir, { recursive: true });
      const errors = await gatherErrors(ordered.map((r) => r.part));
      const manifest = {
        job_id: job.id,
        model: job.model,
        inputs: job.inputs,
        output: job.output,
        output_format: job.output_format,
        rows: ordered.reduce((a, r) => a + r.rows, 0),
        error_rows: ordered.reduce((a, r) => a + r.error_rows, 0),
        shards: ordered.map((r) => ({
          index: r.index,
          state: r.state,
          file: job.single_file ? undefined : path.basename(r.part),
          rows: r.rows,
          error_rows: r.error_rows,
          attempts: r.attempts,
          worker: r.worker,
          started_at: r.started_at,
          finished_at: r.finished_at,
          timings: r.timings,
          ...(r.error ? { error: r.error } : {}),
        })),
        created_at: job.created_at,
        finished_at: Date.now(),
      };
      if (job.single_file) {
        if (parts.length) await mergeParts(parts, job.output, job.output_format);
        else await writeEmpty(job.output, job.output_format);
        if (errors) await writeAtomic(`${job.output}.errors.jsonl`, errors);
        await writeAtomic(`${job.output}.manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`);
        await rm(dir, { recursive: true, force: true });
        return;
      }
      if (errors) await writeAtomic(path.join(dir, "_errors.jsonl"), errors);
      await writeAtomic(path.join(dir, "_manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
      await writeAtomic(path.join(dir, "_SUCCESS"), "");
    },
  };
}

/** A checked input path keeps the user's glob characters (realpath cannot resolve them). */
function globSafe(checked: string, asGiven: string): string {
  return /[*?[]/.test(asGiven) ? path.resolve(asGiven) : checked;
}

/**
 * The input columns a model reads, in the order it takes them, with the dtype it takes each in. Given `columns`,
 * those (each must exist). Else, a model with one 2-D input (`[N, k]`) takes every numeric column in input
 * order; a model with named inputs (or a custom model's signature) takes the columns of those names; a custom
 * model without a signature takes every column as it is.
 */
export function featureColumnsOf(
  columns: readonly TableColumn[],
  signature: Signature | null,
  chosen: readonly string[] | undefined,
): TableColumn[] {
  const names = columns.map((c) => c.name);
  const only = signature?.inputs.length === 1 ? signature.inputs[0]! : undefined;
  const wide = only?.shape?.length === 2 && !(names.includes(only.name) && !chosen) ? only : undefined;
  const dtypeOf = (name: string): Dtype =>
    wide?.dtype ??
    signature?.inputs.find((i) => i.name === name)?.dtype ??
    columns.find((c) => c.name === name)!.dtype;
  const missing = (want: readonly string[]) => want.filter((c) => !names.includes(c));
  if (chosen) {
    const absent = missing(chosen);
    if (absent.length) {
      throw invalid(
        `columns: ${absent.map((c) => `'${c}'`).join(", ")} not in the input (its columns: ${names.join(", ") || "none"})`,
      );
    }
    return chosen.map((name) => ({ name, dtype: dtypeOf(name) }));
  }
  if (!signature) return [...columns];
  if (wide) {
    const numeric = columns.filter((c) => c.dtype !== "string" && c.dtype !== "bool").map((c) => c.name);
    const k = wide.shape![1];
    if (typeof k === "number" && k >= 0 && numeric.length !== k) {
      throw invalid(
        `columns: model input '${wide.name}' takes ${k} features per row; the input has ${numeric.length} ` +
          `numeric columns (${numeric.join(", ") || "none"}): choose them with --columns`,
      );
    }
    return numeric.map((name) => ({ name, dtype: wide.dtype }));
  }
  const wanted = signature.inputs.map((i) => i.name);
  const absent = missing(wanted);
  if (absent.length) {
    throw invalid(
      `columns: the model's input${absent.length > 1 ? "s" : ""} ${absent.map((c) => `'${c}'`).join(", ")} ` +
        `${absent.length > 1 ? "are" : "is"} not in the input (its columns: ${names.join(", ") || "none"})`,
    );
  }
  return wanted.map((name) => ({ name, dtype: dtypeOf(name) }));
}

/** The shards' skipped rows in shard order (each shard's file then removed), or undefined when none. */
async function gatherErrors(parts: string[]): Promise<string | undefined> {
  let all = "";
  for (const part of parts) {
    const file = errorsPathOf(part);
    const text = await readFile(file, "utf8").catch(() => "");
    all += text;
    await rm(file, { force: true });
  }
  return all || undefined;
}

/**
 * The output of a job with no rows (an empty input): CSV and JSONL are empty files; Parquet, which needs a
 * schema, holds a `prediction` column and no row.
 */
async function writeEmpty(file: string, format: TableFormat): Promise<void> {
  if (format !== "parquet") return writeAtomic(file, "");
  await writeThenRename(file, (tmp) =>
    withDuckDb({}, (_db, c) =>
      c.run(`COPY (SELECT NULL::DOUBLE AS prediction WHERE false) TO ${literal(tmp)} (FORMAT parquet)`),
    ),
  );
}

/** Written then renamed; a random temporary name, so two finalizes of one job (a submit of an empty input and
 * the leader's pass) never rename each other's file away. */
async function writeAtomic(file: string, content: string): Promise<void> {
  await writeThenRename(file, (tmp) => writeFile(tmp, content));
}
