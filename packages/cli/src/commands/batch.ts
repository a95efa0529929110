// `switchyard batch …`: score files with a registered model — submit (and watch), status, list, cancel.
// Paths are made absolute here: workers and the coordinator run elsewhere, with other working directories.
import path from "node:path";
import type { BatchJobRequest, BatchJobView } from "@switchyard/protocol";
import { TABLE_FORMATS } from "@switchyard/protocol";
import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { table, when } from "../output.js";
import { type GlobalOptions, withClient } from "./context.js";
import { commaList, positiveInteger } from "./flags.js";

interface SubmitFlags {
  model: string;
  input: string;
  output: string;
  inputFormat?: string;
  outputFormat?: string;
  shardRows?: string;
  onError?: string;
  columns?: string;
  workers?: string;
  resume?: string;
  wait?: boolean;
}

/** A path as the cluster sees it: absolute, a trailing `/` (an output directory) kept. */
function absolute(p: string): string {
  const abs = path.resolve(p);
  return p.endsWith("/") || p.endsWith(path.sep) ? `${abs}/` : abs;
}

export function requestOf(f: SubmitFlags): BatchJobRequest {
  const shardRows = positiveInteger(f.shardRows, "--shard-rows");
  const workers = positiveInteger(f.workers, "--workers");
  return {
    model: f.model,
    input: absolute(f.input),
    output: absolute(f.output),
    ...(f.inputFormat ? { input_format: f.inputFormat as BatchJobRequest["input_format"] } : {}),
    ...(f.outputFormat ? { output_format: f.outputFormat as BatchJobRequest["output_format"] } : {}),
    ...(shardRows ? { shard_rows: shardRows } : {}),
    ...(f.onError ? { on_error: f.onError as "fail" | "skip" } : {}),
    ...(f.columns ? { columns: commaList(f.columns) } : {}),
    ...(workers ? { workers } : {}),
    ...(f.resume ? { resume: f.resume } : {}),
  };
}

const rowsOf = (j: BatchJobView) => j.progress.rows_done;
const seconds = (j: BatchJobView) => ((j.finished_at ?? Date.now()) - (j.started_at ?? j.created_at)) / 1000;

/** One line: what a person wants to know of a job at a glance. */
function line(j: BatchJobView): string {
  const pct = j.total_rows ? Math.floor((100 * rowsOf(j)) / j.total_rows) : 100;
  const rate = seconds(j) > 0 ? Math.round(rowsOf(j) / seconds(j)) : 0;
  return (
    `${j.id} ${j.state} ${rowsOf(j)}/${j.total_rows} rows (${pct}%), ` +
    `shards ${j.progress.shards_done}/${j.shards}, ${rate} rows/s` +
    (j.progress.error_rows ? `, ${j.progress.error_rows} rows skipped` : "") +
    (j.message ? ` — ${j.message}` : "")
  );
}

/** The end-of-job summary `--json` prints: id, state, rows, output, model with its resolved version, timings. */
function summaryJson(j: BatchJobView) {
  return {
    id: j.id,
    state: j.state,
    message: j.message,
    rows: rowsOf(j),
    total_rows: j.total_rows,
    error_rows: j.progress.error_rows,
    shards: j.shards,
    output: j.output,
    model: { uri: j.model.uri, name: j.model.name, version: j.model.version },
    timings: {
      created_at: j.created_at,
      started_at: j.started_at,
      finished_at: j.finished_at,
      seconds: seconds(j),
      rows_per_second: seconds(j) > 0 ? rowsOf(j) / seconds(j) : 0,
    },
  };
}

/** Watches a job to its end: a live bar on a TTY, a line every few seconds elsewhere, nothing with --json. */
async function follow(watch: (p: (j: BatchJobView) => void) => Promise<BatchJobView>, json: boolean) {
  if (json) return watch(() => {});
  if (process.stderr.isTTY) {
    const bar = new SingleBar(
      {
        format: "{bar} {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted} | {state}",
        stream: process.stderr,
        hideCursor: true,
      },
      undefined,
    );
    let started = false;
    const end = await watch((j) => {
      const rate = seconds(j) > 0 ? Math.round(rowsOf(j) / seconds(j)) : 0;
      if (!started) {
        bar.start(Math.max(1, j.total_rows), rowsOf(j), { rate, state: j.state });
        started = true;
      }
      bar.update(rowsOf(j), { rate, state: j.state });
    });
    bar.stop();
    return end;
  }
  let last = 0;
  return watch((j) => {
    if (Date.now() - last >= 5_000) {
      last = Date.now();
      process.stderr.write(`${line(j)}\n`);
    }
  });
}

export function batchCommand(program: Command, globals: () => GlobalOptions): void {
  const batch = program
    .command("batch")
    .description("score files of rows with a registered model (batch jobs)");
  const formats = [...TABLE_FORMATS];

  const jobOptions = (c: Command) =>
    c
      .requiredOption(
        "--model <uri>",
        "models:/<name>/<version>, models:/<name>@<alias> or models:/<name>/latest",
      )
      .requiredOption("--input <path>", "a file, a directory of files, or a glob")
      .requiredOption(
        "--output <path>",
        "dir/ for part files + _manifest.json + _SUCCESS, or file.<ext> for one file",
      )
      .addOption(new Option("--input-format <format>", "default: from the extension").choices(formats))
      .addOption(
        new Option("--output-format <format>", "default: from the extension, else the input's").choices(
          formats,
        ),
      )
      .option("--shard-rows <n>", "rows per shard (default 100000)")
      .addOption(
        new Option("--on-error <mode>", "a bad row fails the job, or goes to _errors.jsonl").choices([
          "fail",
          "skip",
        ]),
      )
      .option("--columns <a,b,c>", "the model's feature columns, when the input has others")
      .option("--workers <n>", "worker processes (default: the cluster's thread budget)");

  jobOptions(batch.command("submit"))
    .description("score a CSV, JSONL or Parquet file (or a directory or glob of them) with a model")
    .option("--resume <job-id>", "run only the shards that job did not finish, with its model version")
    .option("--wait", "watch the job until it ends; exit code 1 if it failed")
    .action(async (flags: SubmitFlags) => {
      const g = globals();
      await withClient(g, async (client, out) => {
        const job = await client.submitBatch(requestOf(flags));
        if (!flags.wait) {
          out.print(job.id, summaryJson(job));
          return;
        }
        if (!g.json)
          process.stderr.write(`submitted ${job.id}: ${job.shards} shards, ${job.total_rows} rows\n`);
        const end = await follow((onProgress) => client.waitForBatch(job.id, { onProgress }), out.json);
        out.print(line(end), summaryJson(end));
        if (end.state !== "SUCCEEDED") process.exitCode = 1;
      });
    });

  batch
    .command("status")
    .argument("<id>", "batch job id")
    .option("--follow", "watch the job until it ends")
    .action(async (id: string, flags: { follow?: boolean }) => {
      await withClient(globals(), async (client, out) => {
        const end = flags.follow
          ? await follow((onProgress) => client.waitForBatch(id, { onProgress }), out.json)
          : await client.batchStatus(id);
        out.print(line(end), summaryJson(end));
        if (flags.follow && end.state !== "SUCCEEDED") process.exitCode = 1;
      });
    });

  batch.command("list").action(async () => {
    await withClient(globals(), async (client, out) => {
      const jobs = await client.batch.list();
      const rows = jobs.map((j) => [
        j.id,
        j.state,
        `${j.model.name}/${j.model.version}`,
        `${rowsOf(j)}/${j.total_rows}`,
        when(j.created_at),
        j.output,
      ]);
      out.print(
        jobs.length ? table(["ID", "STATE", "MODEL", "ROWS", "CREATED", "OUTPUT"], rows) : "no batch jobs",
        {
          jobs: jobs.map(summaryJson),
        },
      );
    });
  });

  batch
    .command("cancel")
    .argument("<id>", "batch job id")
    .action(async (id: string) => {
      await withClient(globals(), async (client, out) => {
        const j = await client.batch.cancel(id);
        out.print(line(j), summaryJson(j));
      });
    });

  const schedule = batch.command("schedule").description("batch jobs submitted on a cron schedule");
  jobOptions(
    schedule
      .command("create")
      .description(
        "submit a batch job at every tick of a cron expression ({date} in paths = the tick's date)",
      )
      .requiredOption("--name <name>", "schedule name")
      .requiredOption("--cron <expr>", 'five-field cron expression, e.g. "0 2 * * *"')
      .option("--tz <zone>", "IANA time zone of the expression and of {date} (default UTC)"),
  ).action(async (flags: SubmitFlags & { name: string; cron: string; tz?: string }) => {
    const job = requestOf(flags);
    await withClient(globals(), async (client, out) => {
      const s = await client.batch.createSchedule({
        name: flags.name,
        cron: flags.cron,
        ...(flags.tz ? { tz: flags.tz } : {}),
        job,
      });
      out.print(`schedule ${s.name}: next run ${s.next_tick ? when(s.next_tick) : "never"}`, s);
    });
  });

  schedule.command("list").action(async () => {
    await withClient(globals(), async (client, out) => {
      const all = await client.batch.listSchedules();
      const rows = all.map((s) => {
        const last = s.history.at(-1);
        return [
          s.name,
          s.cron,
          s.tz,
          s.next_tick ? when(s.next_tick) : "-",
          last ? `${when(last.tick)} ${last.job_id ?? last.skipped ?? ""}` : "-",
        ];
      });
      out.print(all.length ? table(["NAME", "CRON", "TZ", "NEXT", "LAST"], rows) : "no schedules", {
        schedules: all,
      });
    });
  });

  schedule
    .command("delete")
    .argument("<name>", "schedule name")
    .action(async (name: string) => {
      await withClient(globals(), async (client, out) => {
        await client.batch.deleteSchedule(name);
        out.print(`deleted schedule ${name}`, {});
      });
    });
}
