// Stream jobs in the control plane: create (check the model or endpoint, the source and the sink; make the sink
// stream when none captures the sink subject; create the durable consumer the scorers share), read, list,
// stop, start and delete — served by every coordinator. The leader places each running job's scorers beside
// replicas (reconcile.ts). Nothing here reads an event: the scorers (@switchyard/jobs) do.
import { stat } from "node:fs/promises";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { casUpdate, ensureStream, type ReplicationSetting, readAll, readValue } from "@switchyard/nats";
import {
  type ClusterNames,
  invalid,
  keys,
  LATENCY_BOUNDS_MS,
  notFound,
  requiredDuplicateWindowMs,
  ScorerReport,
  STREAM_DEFAULTS,
  StreamJob,
  StreamJobRequest,
  type StreamJobSpec,
  type StreamJobView,
  SwitchyardError,
  streamKeys,
  WorkerStatus,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { Logger } from "pino";
import { z } from "zod";
import { readWork, type Stores } from "./state.js";

/** Resolves a user's path under the cluster's data roots (INVALID_PARAMETER_VALUE naming `field` if not). */
export type DataPath = (path: string, field: string) => Promise<string>;

export interface StreamJobsOptions {
  nc: NatsConnection;
  names: ClusterNames;
  stores: Stores;
  registry: Registry;
  log: Logger;
  /** Without it, jobs reading or writing directories are refused (this coordinator has no data roots). */
  dataPath?: DataPath;
  now?: () => number;
  /** A message held this long unacked is redelivered (default STREAM_DEFAULTS.ack_wait_ms; tests shorten it). */
  ackWaitMs?: number;
  /** The replica count of the landing and sink streams it creates (default: one, existing streams as they are). */
  replication?: ReplicationSetting;
}

/** A scorer report older than this is from a scorer that is gone. */
const REPORT_FRESH_MS = 10_000;
const NS = 1_000_000;

/** What a directory sink's ledger says (the scorers' `DirSink` writes it; only the counts are read here). */
const SinkCounts = z.object({ rows: z.number(), dlq: z.number(), late: z.number() }).passthrough();

export class StreamJobs {
  private jsm: JetStreamManager | undefined;
  private readonly now: () => number;
  private readonly ackWaitMs: number;

  constructor(private readonly o: StreamJobsOptions) {
    this.now = o.now ?? Date.now;
    this.ackWaitMs = o.ackWaitMs ?? STREAM_DEFAULTS.ack_wait_ms;
  }

  async open(): Promise<void> {
    this.jsm = await jetstreamManager(this.o.nc);
  }

  async create(body: unknown): Promise<StreamJobView> {
    const parsed = StreamJobRequest.safeParse(body);
    if (!parsed.success) {
      throw invalid(parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
    }
    const req = { ...parsed.data };
    const name = req.name;
    if (await readValue(this.o.stores.jobs, streamKeys.job(name), StreamJob, `stream job '${name}'`)) {
      throw new SwitchyardError("RESOURCE_ALREADY_EXISTS", `stream job '${name}' already exists`);
    }
    if (req.model) await this.o.registry.resolve(req.model);
    if (req.endpoint) {
      const e = await this.o.stores.endpoints.get(keys.endpoint(req.endpoint));
      if (e?.operation !== "PUT") throw invalid(`endpoint: endpoint '${req.endpoint}' does not exist`);
    }
    if (req.source_dir) req.source_dir = await this.directory(req.source_dir, "source_dir", true);
    if (req.sink_dir) req.sink_dir = await this.directory(req.sink_dir, "sink_dir", false);
    const source = await this.source(req);
    const sink = req.sink_subject
      ? { kind: "subject" as const, subject: req.sink_subject, stream: await this.sinkStream(req, source) }
      : { kind: "dir" as const, dir: req.sink_dir!, format: req.sink_format ?? "parquet" };
    const job: StreamJob = {
      name,
      kind: "stream",
      request: req,
      source,
      sink,
      ack_wait_ms: this.ackWaitMs,
      state: "RUNNING",
      message: "",
      created_at: this.now(),
      updated_at: this.now(),
    };
    await this.jsm!.consumers.add(source.stream, {
      durable_name: source.consumer,
      filter_subject: source.subject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: req.start === "new" ? DeliverPolicy.New : DeliverPolicy.All,
      ack_wait: this.ackWaitMs * NS,
      // Never dropped after N deliveries: poison events are terminated by the scorer, with a dead letter.
      max_deliver: -1,
      max_ack_pending: STREAM_DEFAULTS.max_ack_pending,
    });
    try {
      await this.o.stores.jobs.create(streamKeys.job(name), JSON.stringify(job));
    } catch (err) {
      // Another create of the same name won the race: its consumer is the one just "added" (same config).
      throw new SwitchyardError("RESOURCE_ALREADY_EXISTS", `stream job '${name}' already exists`, {
        cause: err,
      });
    }
    this.o.log.info(
      {
        stream: name,
        source: `${source.stream}:${source.subject}`,
        sink: sink.kind === "dir" ? sink.dir : sink.subject,
      },
      "stream job created",
    );
    return this.view(job);
  }

  async get(name: string): Promise<StreamJob> {
    const found = await readValue(
      this.o.stores.jobs,
      streamKeys.job(name),
      StreamJob,
      `stream job '${name}'`,
    );
    if (!found) throw notFound(`stream job '${name}' does not exist`);
    return found.value;
  }

  async getView(name: string): Promise<StreamJobView> {
    return this.view(await this.get(name));
  }

  async list(): Promise<{ streams: StreamJobView[] }> {
    const all = await readAll(this.o.stores.jobs, streamKeys.allJobs, StreamJob, "stream job", {
      invalid: "skip",
    });
    const jobs = all.map((r) => r.value).sort((a, b) => (a.name < b.name ? -1 : 1));
    return { streams: await Promise.all(jobs.map((j) => this.view(j))) };
  }

  /** Scorers stop at a batch boundary; the consumer keeps the position, so `start` resumes there. */
  stop(name: string): Promise<StreamJobView> {
    return this.setState(name, "STOPPED", (cur) => {
      if (cur.state === "STOPPED") throw conflict(`stream job '${name}' is already stopped`);
    });
  }

  start(name: string): Promise<StreamJobView> {
    return this.setState(name, "RUNNING", (cur) => {
      if (cur.state === "RUNNING") throw conflict(`stream job '${name}' is already running`);
    });
  }

  /**
   * Removes the job: its record (placement stops its scorers), its consumer, its landing rows and its state
   * (windows, ledgers, reports). Results already written — the sink stream or directory — stay.
   */
  async delete(name: string): Promise<Record<string, never>> {
    const job = await this.get(name);
    await this.o.stores.jobs.delete(streamKeys.job(name));
    await this.jsm!.consumers.delete(job.source.stream, job.source.consumer).catch(() => undefined);
    if (job.source.stream === this.o.names.streams.landing) {
      await this.jsm!.streams.purge(job.source.stream, { filter: job.source.subject }).catch(() => undefined);
    }
    const rest = await readAll(this.o.stores.jobs, streamKeys.everything(name), z.unknown(), "stream state", {
      invalid: "skip",
    });
    for (const r of rest) await this.o.stores.jobs.purge(r.key);
    await this.o.stores.jobs.purge(streamKeys.job(name));
    this.o.log.info({ stream: name }, "stream job deleted");
    return {};
  }

  /** Running jobs: the leader places `parallelism` scorers for each. */
  async running(): Promise<StreamJob[]> {
    const all = await readAll(this.o.stores.jobs, streamKeys.allJobs, StreamJob, "stream job", {
      invalid: "skip",
    });
    return all.map((r) => r.value).filter((j) => j.state === "RUNNING");
  }

  /** Messages of a job's source its consumer has not delivered yet (what its scorers scale on). */
  async lag(job: StreamJob): Promise<number> {
    const consumer = await this.jsm!.consumers.info(job.source.stream, job.source.consumer);
    return consumer.num_pending;
  }

  private async setState(
    name: string,
    state: StreamJob["state"],
    check: (cur: StreamJob) => void,
  ): Promise<StreamJobView> {
    const { value } = await casUpdate(
      this.o.stores.jobs,
      streamKeys.job(name),
      StreamJob,
      (cur): StreamJob => {
        if (!cur) throw notFound(`stream job '${name}' does not exist`);
        check(cur);
        return { ...cur, state, message: "", updated_at: this.now() };
      },
      { what: `stream job '${name}'` },
    );
    this.o.log.info({ stream: name, state }, "stream job state changed");
    return this.view(value);
  }

  private async directory(p: string, field: string, mustExist: boolean): Promise<string> {
    if (!this.o.dataPath) {
      throw invalid(
        `${field}: this cluster has no data roots, so stream jobs cannot read or write directories`,
      );
    }
    const real = await this.o.dataPath(p, field);
    const s = await stat(real).catch(() => undefined);
    if (s ? !s.isDirectory() : mustExist) {
      throw invalid(`${field}: expected a directory, but '${p}' ${s ? "is a file" : "does not exist"}`);
    }
    return real;
  }

  /** The stream and subject the job's consumer reads (a landing directory's rows go to the landing stream). */
  private async source(req: StreamJobSpec): Promise<StreamJob["source"]> {
    const consumer = this.o.names.streamConsumer(req.name);
    if (req.source_dir) {
      const stream = this.o.names.streams.landing;
      await this.ensureStream({
        name: stream,
        subjects: [this.o.names.subjects.allLanding],
        duplicate_window: requiredDuplicateWindowMs(this.ackWaitMs) * NS,
      });
      return { stream, subject: this.o.names.subjects.landingOf(req.name), consumer };
    }
    const stream = req.source_stream!;
    const info = await this.jsm!.streams.info(stream).catch(() => undefined);
    if (!info) throw invalid(`source_stream: stream '${stream}' does not exist`);
    const subject =
      req.source_subject ?? (info.config.subjects?.length === 1 ? info.config.subjects[0]! : ">");
    if (req.source_subject && !info.config.subjects?.some((s) => subjectWithin(req.source_subject!, s))) {
      throw invalid(
        `source_subject: stream '${stream}' captures ${(info.config.subjects ?? []).join(", ")}, not '${req.source_subject}'`,
      );
    }
    return { stream, subject, consumer };
  }

  /**
   * The stream capturing the sink subject and its `.dlq` and `.late`: an existing one, checked, or a new
   * `<C>_SINK_<job>`. Exactly-once needs its duplicate window to outlast redelivery; a stream that cannot keep
   * that, or that is the job's own source (results would be scored again), is refused.
   */
  private async sinkStream(req: StreamJobSpec, source: StreamJob["source"]): Promise<string> {
    const subject = req.sink_subject!;
    const wanted = [subject, `${subject}.dlq`, `${subject}.late`];
    const need = requiredDuplicateWindowMs(this.ackWaitMs);
    const owners = await Promise.all(wanted.map((s) => this.jsm!.streams.find(s).catch(() => undefined)));
    const existing = owners.find((o) => o !== undefined);
    if (existing === undefined) {
      const stream = this.o.names.streams.sink(req.name);
      await this.ensureStream({ name: stream, subjects: wanted, duplicate_window: need * NS });
      return stream;
    }
    const missing = wanted.filter((_, i) => owners[i] !== existing);
    if (missing.length) {
      throw invalid(
        `sink_subject: stream '${existing}' captures part of what the job writes but not ${missing.join(", ")}; ` +
          "add them to it, or choose another sink subject",
      );
    }
    if (existing === source.stream && subjectWithin(subject, source.subject)) {
      throw invalid(`sink_subject: '${subject}' is read by the job itself (stream '${existing}')`);
    }
    const info = await this.jsm!.streams.info(existing);
    const window = (info.config.duplicate_window ?? 0) / NS;
    if (req.delivery === "exactly-once" && window < need) {
      throw invalid(
        `sink_subject: stream '${existing}' has a duplicate window of ${window / 1000} s; exactly-once needs at ` +
          `least ${need / 1000} s (four ack waits), so raise it or use delivery at-least-once`,
      );
    }
    return existing;
  }

  private async ensureStream(
    cfg: Partial<StreamConfig> & { name: string; subjects: string[] },
  ): Promise<void> {
    await ensureStream(this.jsm!, { storage: StorageType.File, ...cfg }, this.o.replication).catch(
      (err: unknown) => {
        throw invalid(`could not create stream '${cfg.name}': ${(err as Error).message}`);
      },
    );
  }

  private async view(job: StreamJob): Promise<StreamJobView> {
    const req = job.request as StreamJobSpec;
    const [consumer, reports, scorers, counts] = await Promise.all([
      this.jsm!.consumers.info(job.source.stream, job.source.consumer).catch(() => undefined),
      readAll(this.o.stores.jobs, streamKeys.scorersOf(job.name), ScorerReport, "scorer report", {
        invalid: "skip",
      }),
      this.scorers(job.name),
      this.counts(job),
    ]);
    const fresh = reports.map((r) => r.value).filter((r) => this.now() - r.updated_at < REPORT_FRESH_MS);
    const latency = LATENCY_BOUNDS_MS.map((_, i) =>
      fresh.reduce((a, r) => a + (r.latency_counts[i] ?? 0), 0),
    );
    latency.push(fresh.reduce((a, r) => a + (r.latency_counts[LATENCY_BOUNDS_MS.length] ?? 0), 0));
    return {
      ...job,
      status: {
        lag: consumer ? consumer.num_pending + consumer.num_ack_pending : 0,
        events_per_s: Math.round(fresh.reduce((a, r) => a + r.events_per_s, 0) * 10) / 10,
        latency_ms: { p50: percentile(latency, 0.5), p99: percentile(latency, 0.99) },
        ...counts,
        delivery: req.delivery ?? "exactly-once",
        model: fresh.find((r) => r.model)?.model ?? null,
        scorers,
      },
    };
  }

  private async scorers(name: string): Promise<StreamJobView["status"]["scorers"]> {
    const [work, statuses] = await Promise.all([
      readWork(this.o.stores),
      readAll(this.o.stores.cluster, keys.workers, WorkerStatus, "worker status", { invalid: "skip" }),
    ]);
    const byId = new Map(statuses.map((s) => [s.value.worker_id, s.value]));
    return work.workers
      .filter((w) => w.spec.kind === "stream" && w.spec.job_id === name)
      .map((w) => {
        const s = byId.get(w.worker_id);
        return {
          worker_id: w.worker_id,
          node_id: w.node_id,
          state: s?.state ?? "PENDING",
          message: s?.message ?? "",
        };
      });
  }

  /** Results, dead letters and late events so far: the sink stream's per-subject counts, or the dir ledger's. */
  private async counts(job: StreamJob): Promise<{ results: number; dlq: number; late: number }> {
    if (job.sink.kind === "dir") {
      const ledger = await readValue(
        this.o.stores.jobs,
        streamKeys.sinkLedger(job.name),
        SinkCounts,
        "sink ledger",
      );
      return { results: ledger?.value.rows ?? 0, dlq: ledger?.value.dlq ?? 0, late: ledger?.value.late ?? 0 };
    }
    const { stream, subject } = job.sink;
    const count = async (s: string) => {
      const info = await this.jsm!.streams.info(stream, { subjects_filter: s }).catch(() => undefined);
      return info?.state.subjects?.[s] ?? 0;
    };
    const [results, dlq, late] = await Promise.all([subject, `${subject}.dlq`, `${subject}.late`].map(count));
    return { results: results ?? 0, dlq: dlq ?? 0, late: late ?? 0 };
  }
}

const conflict = (message: string) => new SwitchyardError("RESOURCE_CONFLICT", message);

/** Whether every subject `sub` matches is matched by `filter` (both may hold wildcards). */
export function subjectWithin(sub: string, filter: string): boolean {
  const a = sub.split(".");
  const b = filter.split(".");
  for (let i = 0; i < b.length; i++) {
    if (b[i] === ">") return i < a.length;
    if (i >= a.length) return false;
    if (b[i] === "*") {
      if (a[i] === ">") return false;
      continue;
    }
    if (a[i] !== b[i]) return false;
  }
  return a.length === b.length;
}

/** The upper bound of the bucket holding the q-th quantile of `counts` (LATENCY_BOUNDS_MS + overflow). */
function percentile(counts: number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= q * total) return LATENCY_BOUNDS_MS[i] ?? LATENCY_BOUNDS_MS.at(-1)!;
  }
  return LATENCY_BOUNDS_MS.at(-1)!;
}
