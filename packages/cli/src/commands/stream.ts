// `switchyard stream …`: continuous scoring of a JetStream subject or a landing directory — create, list, status,
// stop, start, delete. Flags become the request's snake_case fields; the coordinator validates them (naming the
// field). Directories are made absolute here: scorers and the coordinator run elsewhere, in other directories.
import { readFileSync } from "node:fs";
import path from "node:path";
import type { SwitchyardClient } from "@switchyard/client";
import {
  DELIVERY,
  invalid,
  SINK_FORMATS,
  type StreamJobRequest,
  type StreamJobView,
  TABLE_FORMATS,
} from "@switchyard/protocol";
import { type Command, Option } from "commander";
import { table } from "../output.js";
import { type GlobalOptions, withClient } from "./context.js";
import { commaList, positiveInteger } from "./flags.js";

interface CreateFlags {
  name: string;
  model?: string;
  endpoint?: string;
  sourceStream?: string;
  sourceSubject?: string;
  start?: string;
  sourceDir?: string;
  format?: string;
  sinkSubject?: string;
  sinkDir?: string;
  sinkFormat?: string;
  key?: string;
  eventTime?: string;
  columns?: string;
  features?: string;
  batch?: string;
  maxWaitMs?: string;
  parallelism?: string;
  delivery?: string;
}

/** The features spec file's JSON, as the request's `features` (the coordinator checks its fields). */
function readFeatures(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw invalid(`--features: cannot read '${file}': ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalid(`--features: '${file}' is not valid JSON: ${(err as Error).message}`);
  }
}

function streamRequestOf(f: CreateFlags): StreamJobRequest {
  const batch = positiveInteger(f.batch, "--batch");
  const maxWaitMs = positiveInteger(f.maxWaitMs, "--max-wait-ms");
  const parallelism = positiveInteger(f.parallelism, "--parallelism");
  const request: Record<string, unknown> = {
    name: f.name,
    model: f.model,
    endpoint: f.endpoint,
    source_stream: f.sourceStream,
    source_subject: f.sourceSubject,
    start: f.start,
    source_dir: f.sourceDir === undefined ? undefined : path.resolve(f.sourceDir),
    format: f.format,
    sink_subject: f.sinkSubject,
    sink_dir: f.sinkDir === undefined ? undefined : path.resolve(f.sinkDir),
    sink_format: f.sinkFormat,
    key: f.key === undefined ? undefined : commaList(f.key),
    event_time: f.eventTime,
    columns: f.columns === undefined ? undefined : commaList(f.columns),
    features: f.features === undefined ? undefined : readFeatures(f.features),
    batch,
    max_wait_ms: maxWaitMs,
    parallelism,
    delivery: f.delivery,
  };
  // Flags not given are left out, so the server's defaults apply and its "exactly one of" checks see only these.
  for (const k of Object.keys(request)) if (request[k] === undefined) delete request[k];
  return request as StreamJobRequest;
}

const requestIn = (j: StreamJobView) => j.request as Partial<Record<keyof StreamJobRequest, unknown>>;

function sourceOf(j: StreamJobView): string {
  const dir = requestIn(j).source_dir;
  if (typeof dir === "string") {
    const format = requestIn(j).format;
    return typeof format === "string" ? `${dir} (${format})` : dir;
  }
  return `${j.source.stream} ${j.source.subject}`;
}

function sinkOf(j: StreamJobView): string {
  return j.sink.kind === "dir"
    ? `${j.sink.dir} (${j.sink.format})`
    : `${j.sink.subject} (stream ${j.sink.stream})`;
}

/** What scores the events: the endpoint, or the model URI and the version the scorers use now. */
function scoredBy(j: StreamJobView): string {
  const { endpoint, model } = requestIn(j);
  if (typeof endpoint === "string") return `endpoint ${endpoint}`;
  const inUse = j.status.model
    ? `${j.status.model.name}/${j.status.model.version}`
    : "no scorer has reported yet";
  return `${String(model)} → ${inUse}`;
}

const rate = (j: StreamJobView) => String(Math.round(j.status.events_per_s));
const ms = (v: number | null) => (v === null ? "-" : `${v} ms`);

/** One line: what a person wants to know of a job at a glance. */
function line(j: StreamJobView): string {
  return (
    `${j.name} ${j.state} lag ${j.status.lag}, ${rate(j)} events/s, ${j.status.results} results` +
    (j.message ? ` — ${j.message}` : "")
  );
}

function details(j: StreamJobView): string {
  const s = j.status;
  const fields: [string, string | number][] = [
    ["state", j.state],
    ...(j.message ? [["message", j.message] as [string, string]] : []),
    ["source", sourceOf(j)],
    ["sink", sinkOf(j)],
    ["model", scoredBy(j)],
    ["delivery", s.delivery],
    ["lag", s.lag],
    ["events/s", rate(j)],
    ["latency", `p50 ${ms(s.latency_ms.p50)}, p99 ${ms(s.latency_ms.p99)}`],
    ["results", s.results],
    ["dlq", s.dlq],
    ["late", s.late],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  const head = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
  const scorers = s.scorers.length
    ? table(
        ["SCORER", "NODE", "STATE", "MESSAGE"],
        s.scorers.map((w) => [w.worker_id, w.node_id, w.state, w.message]),
      )
    : "no scorers running";
  return `stream ${j.name}\n${head}\n\n${scorers}`;
}

export function streamCommand(program: Command, globals: () => GlobalOptions): void {
  const stream = program
    .command("stream")
    .description("score JetStream subjects or landing directories continuously (stream jobs)");

  stream
    .command("create")
    .description("start a job that scores every event of a stream or a landing directory as it arrives")
    .requiredOption("--name <job>", "job name: 1-64 letters, digits, '_' or '-'")
    .option("--model <uri>", "models:/<name>/<version> or models:/<name>@<alias> (followed as it moves)")
    .option("--endpoint <name>", "score through a serving endpoint instead (traffic split and all)")
    .option("--source-stream <stream>", "the JetStream stream to read")
    .option("--source-subject <filter>", "a subject filter within that stream")
    .addOption(
      new Option(
        "--start <where>",
        "read from the stream's first message, or only new ones (default earliest)",
      ).choices(["earliest", "new"]),
    )
    .option("--source-dir <dir>", "a landing directory: each new file is read once, rows in order")
    .addOption(new Option("--format <format>", "landing files' format").choices([...TABLE_FORMATS]))
    .option("--sink-subject <subject>", "publish one result per event here (<subject>.dlq, .late beside it)")
    .option("--sink-dir <dir>", "write rolling part files here instead")
    .addOption(new Option("--sink-format <format>", "part files' format").choices([...SINK_FORMATS]))
    .option("--key <field[,field]>", "field(s) copied into each result; with --features, the window key")
    .option("--event-time <field>", "the event's time (ISO-8601 or epoch ms), copied into each result")
    .option("--columns <a,b,c>", "the model's input fields in order, for a model with one unnamed 2-D input")
    .option("--features <spec.json>", "keyed windows and KV lookups added to each event (a JSON file)")
    .option("--batch <n>", "events scored in one inference (default 256)")
    .option("--max-wait-ms <ms>", "how long a scorer waits to fill a batch (default 50)")
    .option("--parallelism <n>", "scorer processes sharing the job (default 1)")
    .addOption(
      new Option(
        "--delivery <mode>",
        "at-least-once skips the dedupe machinery (default exactly-once)",
      ).choices([...DELIVERY]),
    )
    .action(async (flags: CreateFlags) => {
      const request = streamRequestOf(flags);
      await withClient(globals(), async (client, out) => {
        const j = await client.streams.create(request);
        out.print(line(j), j);
      });
    });

  stream
    .command("list")
    .description("every stream job: state, source, sink, lag, events/s")
    .action(async () => {
      await withClient(globals(), async (client, out) => {
        const all = await client.streams.list();
        const rows = all.map((j) => [j.name, j.state, sourceOf(j), sinkOf(j), j.status.lag, rate(j)]);
        out.print(
          all.length ? table(["NAME", "STATE", "SOURCE", "SINK", "LAG", "EVENTS/S"], rows) : "no stream jobs",
          { streams: all },
        );
      });
    });

  /** A command on one job that prints the job the API answers with. */
  const onJob = (
    command: string,
    description: string,
    call: (client: SwitchyardClient, name: string) => Promise<StreamJobView>,
    human: (j: StreamJobView) => string,
  ) =>
    stream
      .command(command)
      .description(description)
      .argument("<job>", "stream job name")
      .action(async (name: string) => {
        await withClient(globals(), async (client, out) => {
          const j = await call(client, name);
          out.print(human(j), j);
        });
      });
  onJob(
    "status",
    "a job's state, lag, rate, latency, counts, model version and scorers",
    (c, name) => c.streams.get(name),
    details,
  );
  onJob(
    "stop",
    "stop the job's scorers; `start` resumes where it stopped",
    (c, name) => c.streams.stop(name),
    line,
  );
  onJob("start", "start a stopped job again from its checkpoint", (c, name) => c.streams.start(name), line);

  stream
    .command("delete")
    .description("stop the job and delete it")
    .argument("<job>", "stream job name")
    .action(async (name: string) => {
      await withClient(globals(), async (client, out) => {
        await client.streams.delete(name);
        out.print(`deleted stream ${name}`, {});
      });
    });
}
