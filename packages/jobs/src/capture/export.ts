// `switchyard capture export`: an endpoint's inference table — its captured requests on the capture stream — read
// with an ordered consumer from a start time up to the last capture there when the export began, and written as
// one JSONL or Parquet file by write-then-rename. It only reads the stream: exporting twice gives the same rows.
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  CAPTURE_COLUMNS,
  CaptureRecord,
  clusterNames,
  invalid,
  isResourceName,
  notFound,
} from "@switchyard/protocol";
import type { EngineOptions } from "../tables/engine.js";
import { formatOfPath } from "../tables/formats.js";
import { JsonlWriter, jsonlToParquet } from "../tables/records.js";

export interface CaptureExportOptions {
  nc: NatsConnection;
  /** Cluster name (default `sy`). */
  cluster?: string;
  endpoint: string;
  /** The file to write, `.parquet` or `.jsonl` (its directory is created if missing). */
  output: string;
  /** Only captures of requests received at or after this time (epoch ms); default: all the stream keeps. */
  sinceMs?: number;
  /** DuckDB's threads and memory while writing Parquet. */
  engine?: EngineOptions;
}

export interface CaptureExport {
  endpoint: string;
  output: string;
  format: "parquet" | "jsonl";
  rows: number;
  /** Messages on the capture subject that are not capture records (published there by something else). */
  skipped: number;
  since: string | null;
}

/** Messages read per pull; also how many rows are buffered before they are appended to the file. */
const BATCH = 1024;
/** A pull that brings nothing within this means the subject has nothing more (captures aged out meanwhile). */
const PULL_EXPIRES_MS = 5_000;

export async function exportCapture(o: CaptureExportOptions): Promise<CaptureExport> {
  if (!isResourceName(o.endpoint)) {
    throw invalid(`endpoint: expected an endpoint name ([A-Za-z0-9_-]{1,63}), got '${o.endpoint}'`);
  }
  const format = formatOfPath(o.output);
  if (format !== "parquet" && format !== "jsonl") {
    throw invalid(`--output: expected a file ending in .parquet or .jsonl, got '${o.output}'`);
  }
  const names = clusterNames(o.cluster);
  const stream = names.streams.capture;
  // One subject per request; captures stored before that layout share the endpoint's one subject.
  const subjects = [names.subjects.captureOf(o.endpoint), names.subjects.capturePrefix(o.endpoint)];
  const jsm = await jetstreamManager(o.nc);
  if (!(await jsm.streams.info(stream).catch(() => undefined))) {
    throw notFound(`the capture stream '${stream}' does not exist (a coordinator creates it when it starts)`);
  }
  // The export ends at the last capture present now; captures arriving meanwhile wait for the next export.
  const lasts = await Promise.all(
    subjects.map((s) => jsm.streams.getMessage(stream, { last_by_subj: s }).catch(() => null)),
  );
  const last = lasts.reduce((a, b) => (b && (!a || b.seq > a.seq) ? b : a), null);
  const since = o.sinceMs === undefined ? undefined : new Date(o.sinceMs);

  await mkdir(dirname(o.output), { recursive: true });
  const tag = `${o.output}.tmp-${randomBytes(4).toString("hex")}`;
  const jsonlPath = format === "jsonl" ? tag : `${tag}.jsonl`;
  const writer = await JsonlWriter.create(jsonlPath);
  let rows = 0;
  let skipped = 0;
  let closed = false;
  try {
    if (last && !(since && last.time < since)) {
      const consumer = await jetstream(o.nc).consumers.get(stream, {
        filter_subjects: subjects,
        ...(since
          ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() }
          : { deliver_policy: DeliverPolicy.All }),
      });
      let done = false;
      while (!done) {
        const batch: Record<string, unknown>[] = [];
        const messages = await consumer.fetch({ max_messages: BATCH, expires: PULL_EXPIRES_MS });
        let seen = 0;
        for await (const m of messages) {
          seen++;
          const parsed = CaptureRecord.safeParse(parseJson(m.data));
          if (parsed.success) {
            batch.push(Object.fromEntries(CAPTURE_COLUMNS.map((c) => [c.name, parsed.data[c.name]])));
          } else {
            skipped++;
          }
          if (m.seq >= last.seq || m.info.pending === 0) {
            done = true;
            break;
          }
        }
        if (seen === 0) done = true;
        await writer.write(batch);
        rows += batch.length;
      }
    }
    closed = true;
    await writer.close();
    if (format === "parquet") await jsonlToParquet(jsonlPath, tag, CAPTURE_COLUMNS, o.engine ?? {});
    await rename(tag, o.output);
  } catch (err) {
    if (!closed) await writer.close(false).catch(() => undefined);
    await rm(tag, { force: true });
    throw err;
  } finally {
    if (jsonlPath !== tag) await rm(jsonlPath, { force: true });
  }
  return {
    endpoint: o.endpoint,
    output: o.output,
    format,
    rows,
    skipped,
    since: since ? since.toISOString() : null,
  };
}

function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
