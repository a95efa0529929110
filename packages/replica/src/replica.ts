// The replica actor: one served model version behind the queue group `replicas` on its route subject.
// Admission, dynamic batching (batcher.ts), one worker hop per batch (runtime.ts), replies split per request,
// stats, status in KV. It subscribes only once the model is loaded and warm; on stop it drains before closing.
// When its NATS connection moves to another server it says so on its endpoint's replica-down subject, so routers
// send again what they had in flight on its route subject (lost with the server it left).
import type { KV } from "@nats-io/kv";
import {
  type Msg,
  type MsgHdrs,
  MsgHdrsImpl,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";
import { concatTensors, Frame, splitTensor, type Tensor } from "@switchyard/data";
import type { Params } from "@switchyard/formats";
import { onReconnect, openBucket } from "@switchyard/nats";
import {
  clusterNames,
  DEFAULT_TIMEOUT_MS,
  type EnvelopePart,
  type ErrorCode,
  H,
  headerBlock,
  keys,
  QUEUE_GROUPS,
  type ReplicaSpec,
  type ReplicaStatsSnapshot,
  ReplicaStatus,
  replicaDownOf,
  SwitchyardError,
  unpackEnvelope,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { isLoadFailure, ModelRunner, StartupMarks, type WarmPool } from "@switchyard/runtime";
import { type Logger, pino } from "pino";
import { type BatchClock, type BatchConfig, Batcher, type Pending } from "./batcher.js";
import { type Answer, EnvelopeReply } from "./envelope-reply.js";
import { ReplicaStats } from "./stats.js";
import {
  type DecodedRequest,
  decodeRequest,
  encodeError,
  encodeReply,
  familyOf,
  type ReplyFamily,
} from "./wire.js";

export interface ReplicaOptions {
  nc: NatsConnection;
  spec: ReplicaSpec;
  cluster: string;
  nodeId: string;
  /** Where verified artifacts are cached on this host. */
  cacheDir: string;
  /** Default: `Registry.open(nc, { cluster })`. */
  registry?: Registry;
  /** The cluster's KV bucket (default: opened here). */
  clusterKv?: KV;
  /** Worker threads started before the model was known (used when their count is the spec's threads). */
  warmPool?: WarmPool;
  /** The process's start-up so far (a replica process's cold start); the READY log line reports every step. */
  marks?: StartupMarks;
  /** Default: warnings and errors as JSON lines on stderr. */
  logger?: Logger;
  /** Test fixtures: a worker module wrapping `dist/worker.js`. */
  workerFile?: string;
  statsIntervalMs?: number;
}

interface Job extends Pending {
  /** Where its reply goes: the request's own message, or its part of an envelope's reply. */
  msg: Answer;
  req: DecodedRequest;
  requestId: string;
  /** Time from arrival until its batch was dispatched. */
  queueUs: number;
}

/** Real time for the batcher: monotonic µs; a zero delay waits only for the current tick's I/O. */
export const REAL_CLOCK: BatchClock = {
  now: () => performance.now() * 1000,
  setTimer(fn, delayUs) {
    if (delayUs <= 0) {
      const h = setImmediate(fn);
      return () => clearImmediate(h);
    }
    const h = setTimeout(fn, Math.ceil(delayUs / 1000));
    return () => clearTimeout(h);
  },
};

export class Replica {
  readonly stats = new ReplicaStats();
  readonly config: Readonly<BatchConfig>;
  private readonly batcher: Batcher<Job>;
  private readonly solo: boolean;
  private sub: Subscription | null = null;
  private statsSub: Subscription | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private stopReconnects: (() => void) | null = null;
  private state: "READY" | "DRAINING" = "READY";
  private unanswered = 0;
  private idle: (() => void) | null = null;
  private stopping: Promise<void> | null = null;
  private seq = 0;
  private startedAt = Date.now();
  private readonly statsSubject: string;

  private constructor(
    private readonly o: ReplicaOptions,
    readonly runner: ModelRunner,
    private readonly kv: KV,
    private readonly log: Logger,
  ) {
    const s = o.spec;
    // The coordinator filled every default into the spec (targets.ts batchingOf): none apply here.
    this.config = { max_batch_size: s.max_batch_size, max_delay_us: s.max_delay_us, max_queue: s.max_queue };
    this.batcher = new Batcher<Job>(this.config, runner.threads, REAL_CLOCK, {
      dispatch: (batch) => this.runBatch(batch),
      expire: (job) =>
        this.fail(job, job.req.family, new SwitchyardError("DEADLINE_EXCEEDED", deadlineMessage)),
    });
    this.solo = !runner.batches;
    this.statsSubject = clusterNames(o.cluster).subjects.replicaStats(s.replica_id);
  }

  /**
   * Loads `models:/<model_name>/<model_version>`, warms every worker, subscribes, writes READY. On a load
   * failure it writes FAILED with the reason and throws (`isLoadFailure(err)` tells the kind).
   */
  static async start(o: ReplicaOptions): Promise<Replica> {
    const s = o.spec;
    const log =
      o.logger ??
      pino(
        {
          level: "warn",
          base: { endpoint: s.endpoint, servedModel: s.served_model, replicaId: s.replica_id },
        },
        pino.destination(2),
      );
    const marks = o.marks ?? new StartupMarks();
    const [kv, registry] = await Promise.all([
      o.clusterKv ?? openBucket(o.nc, clusterNames(o.cluster), "cluster"),
      o.registry ?? Registry.open(o.nc, { cluster: o.cluster }),
    ]);
    let runner: ModelRunner;
    try {
      const version = await registry.getVersion(s.model_name, s.model_version);
      marks.mark("version");
      runner = await ModelRunner.load({
        registry,
        version,
        cacheDir: o.cacheDir,
        threads: s.threads,
        marks,
        ...(o.warmPool ? { warmPool: o.warmPool } : {}),
        ...(o.workerFile ? { workerFile: o.workerFile } : {}),
        onSiteChange: ({ site, computeUs, hopUs, error }) =>
          log[error ? "warn" : "info"](
            { event: "batch_site", site, compute_us: computeUs, hop_us: hopUs, ...(error ? { error } : {}) },
            error ??
              `batches now run ${site === "inline" ? "on the replica's thread" : "in its worker threads"}`,
          ),
      });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      log.error(
        { err, event: "load_failed" },
        `models:/${s.model_name}/${s.model_version} failed to load: ${reason}`,
      );
      if (isLoadFailure(err)) await writeStatus(kv, o, "FAILED", reason).catch(() => {});
      throw err;
    }
    const replica = new Replica(o, runner, kv, log);
    await replica.serve(marks);
    return replica;
  }

  private async serve(marks: StartupMarks): Promise<void> {
    const { nc, spec } = this.o;
    this.sub = nc.subscribe(spec.subject, {
      queue: QUEUE_GROUPS.replicas,
      callback: (err, msg) => {
        if (!err) this.onRequest(msg);
      },
    });
    this.statsSub = nc.subscribe(this.statsSubject, {
      callback: (err, msg) => {
        if (!err && msg.reply) msg.respond(JSON.stringify(this.snapshot()));
      },
    });
    this.stopReconnects = onReconnect(nc, (server) => this.reportReconnect(server));
    await nc.flush();
    marks.mark("subscribed");
    this.startedAt = Date.now();
    const every = this.o.statsIntervalMs ?? 1_000;
    this.statsTimer = setInterval(() => {
      try {
        nc.publish(this.statsSubject, JSON.stringify(this.snapshot()));
      } catch (err) {
        this.log.warn({ err, event: "stats_publish_failed" }, "could not publish stats");
      }
    }, every);
    this.statsTimer.unref();
    await writeStatus(this.kv, this.o, "READY", "");
    marks.mark("ready");
    this.log.info(
      {
        event: "ready",
        subject: spec.subject,
        threads: this.runner.threads,
        // ONNX models: batches start in the worker threads and move to this thread while they compute in less
        // than the hop costs (each move is a batch_site event; stats count batches per site).
        inline: this.runner.inlineCapable,
        config: this.config,
        // Where the cold start went: ms per step, each after the one before; launched → ready is what an
        // assignment waited for (a warm spare did the steps before "launched" ahead of time).
        startup_ms: marks.durations(),
        startup_at: marks.instants(),
        launch_to_ready_ms: marks.since("launched"),
      },
      "serving",
    );
  }

  snapshot(): ReplicaStatsSnapshot {
    const s = this.o.spec;
    return {
      replica_id: s.replica_id,
      endpoint: s.endpoint,
      served_model: s.served_model,
      model_name: s.model_name,
      model_version: s.model_version,
      generation: s.generation,
      node_id: this.o.nodeId,
      pid: process.pid,
      state: this.state,
      threads: this.runner.threads,
      config: { ...this.config },
      at: Date.now(),
      uptime_ms: Date.now() - this.startedAt,
      in_flight: this.batcher.inFlight,
      queued: this.batcher.queued,
      busy_us: this.busyUs(),
      batch_sites: this.runner.batchSites(),
      ...this.stats.counters(),
    };
  }

  private busyUs(): number {
    this.stats.level(this.unanswered);
    return this.stats.busyUs;
  }

  /**
   * The connection moved to another server: a request that was being forwarded to this replica through the old
   * one, or a reply it had written there, is lost. Replies written while disconnected were buffered and are not.
   * The notice every router re-sends on is the one a node agent publishes when a replica dies.
   */
  private reportReconnect(server: string): void {
    const s = this.o.spec;
    try {
      const down = replicaDownOf(s, this.o.nodeId, `reconnected to NATS (${server})`);
      this.o.nc.publish(clusterNames(this.o.cluster).subjects.replicaDown(s.endpoint), JSON.stringify(down));
      this.log.info(
        { event: "reconnected", server },
        "reconnected to NATS; routers re-send what they had here",
      );
    } catch (err) {
      // The requests still end at their deadlines; routers just learn of the loss later.
      this.log.warn({ err, event: "reconnect_notice_failed" }, "could not report the reconnect");
    }
  }

  // ---- hot path ---------------------------------------------------------------------------------------

  private onRequest(msg: Msg): void {
    const parts = msg.headers?.get(H.batch);
    if (parts) this.onEnvelope(msg, parts);
    else this.admit(msg.data, msg.headers, msg);
  }

  /**
   * A router's batch envelope: every part is admitted on its own, as if it had come alone (its own decode,
   * batcher key, deadline and capacity), and the replies leave together once the last part is answered.
   */
  private onEnvelope(msg: Msg, count: string): void {
    let parts: EnvelopePart[];
    try {
      parts = unpackEnvelope(msg.data, count);
    } catch (err) {
      // Nothing of it can be read: one error, which the router gives to every request of the envelope.
      this.stats.requests++;
      this.reject(msg, "mlflow", `${this.o.spec.replica_id}-${++this.seq}`, err);
      return;
    }
    const asked: (MsgHdrs | undefined)[] = new Array(parts.length);
    const max = this.o.nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
    const reply = new EnvelopeReply(msg, parts.length, max, (i) => this.tooLarge(asked[i]));
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      let h: MsgHdrs;
      try {
        h = MsgHdrsImpl.decode(part.headers);
      } catch (err) {
        this.stats.requests++;
        this.reject(reply.part(i), "mlflow", `${this.o.spec.replica_id}-${++this.seq}`, invalidHeaders(err));
        continue;
      }
      asked[i] = h;
      this.admit(part.body, h, reply.part(i));
    }
  }

  /** A part's reply swapped for a retryable error: the envelope of replies would not fit in one message. */
  private tooLarge(h: MsgHdrs | undefined): EnvelopePart {
    const e = new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      "the reply did not fit in one message with the others of its batch; retry",
    );
    this.stats.error(e.code);
    const out = this.baseHeaders(h?.get(H.requestId) ?? "");
    out.set(H.errorCode, e.code);
    const family = familyOf(h?.get(H.contentType) ?? "", h?.get(H.format) ?? "");
    return { headers: headerBlock(out), body: encodeError(family, e.toBody()) };
  }

  private admit(data: Uint8Array, h: MsgHdrs | undefined, to: Answer): void {
    const arrivedUs = performance.now() * 1000;
    this.stats.requests++;
    const contentType = h?.get(H.contentType) ?? "";
    const format = h?.get(H.format) ?? "";
    const requestId = h?.get(H.requestId) || `${this.o.spec.replica_id}-${++this.seq}`;
    let req: DecodedRequest;
    let key: string;
    let rows: number;
    try {
      req = decodeRequest(data, contentType, format, this.runner.signature, this.runner.frames);
      rows = req.frame ? req.frame.length : rowsOf(req.feeds);
      key =
        this.solo || rows < 0
          ? `solo:${this.seq++}`
          : req.frame
            ? frameBatchKey(req.frame, req.params)
            : batchKey(req.feeds, req.params);
    } catch (err) {
      this.reject(to, familyOf(contentType, format), requestId, err);
      return;
    }
    const deadlineUs = arrivedUs + (deadlineOf(h) - Date.now()) * 1000;
    const job: Job = {
      key,
      rows: Math.max(rows, 0),
      arrivedUs,
      deadlineUs,
      msg: to,
      req,
      requestId,
      queueUs: 0,
    };
    const admitted = this.batcher.offer(job);
    if (admitted === "queued") {
      this.stats.level(this.unanswered);
      this.unanswered++;
      return;
    }
    this.reject(
      to,
      req.family,
      requestId,
      admitted === "full"
        ? new SwitchyardError(
            "TEMPORARILY_UNAVAILABLE",
            `replica ${this.o.spec.replica_id} is at capacity (${this.config.max_queue} requests queued or running); retry`,
          )
        : new SwitchyardError("DEADLINE_EXCEEDED", deadlineMessage),
    );
  }

  private runBatch(batch: Job[]): void {
    const startedUs = performance.now() * 1000;
    let totalRows = 0;
    let deadlineUs = 0;
    for (const job of batch) {
      totalRows += job.rows;
      deadlineUs = Math.max(deadlineUs, job.deadlineUs);
      job.queueUs = startedUs - job.arrivedUs;
      this.stats.queueUs.record(job.queueUs);
    }
    let feeds: Tensor[] | Frame;
    try {
      const first = batch[0]!.req;
      if (first.frame) {
        feeds = batch.length === 1 ? first.frame : Frame.concat(batch.map((j) => j.req.frame!));
      } else {
        feeds =
          batch.length === 1
            ? first.feeds
            : first.feeds.map((_, i) => concatTensors(batch.map((j) => j.req.feeds[i]!)));
      }
    } catch (err) {
      this.batcher.done(batch);
      for (const job of batch) this.fail(job, job.req.family, err);
      return;
    }
    // Custom code is bounded by the latest deadline in the batch (its worker is replaced when that passes).
    const timeoutMs = (deadlineUs - performance.now() * 1000) / 1000;
    this.runner.runTimed(feeds, batch[0]!.req.params, { timeoutMs }).then(
      ({ outputs, computeUs }) => {
        const hopUs = performance.now() * 1000 - startedUs - computeUs;
        this.stats.batch(totalRows, computeUs, hopUs);
        this.batcher.done(batch);
        this.answer(batch, outputs, totalRows, computeUs);
      },
      (err: unknown) => {
        this.batcher.done(batch);
        for (const job of batch) this.fail(job, job.req.family, err);
      },
    );
  }

  private answer(batch: Job[], outputs: Tensor[], totalRows: number, computeUs: number): void {
    if (batch.length === 1) {
      this.reply(batch[0]!, outputs, totalRows, computeUs);
      return;
    }
    const counts = batch.map((j) => j.rows);
    let pieces: Tensor[][];
    try {
      pieces = outputs.map((o) => {
        if (o.shape[0] !== totalRows) {
          throw new SwitchyardError(
            "INTERNAL_ERROR",
            `model output '${o.name}' has shape [${o.shape.join(", ")}] for a batch of ${totalRows} rows; it cannot be batched`,
          );
        }
        return splitTensor(o, counts);
      });
    } catch (err) {
      for (const job of batch) this.fail(job, job.req.family, err);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      this.reply(
        batch[i]!,
        pieces.map((p) => p[i]!),
        totalRows,
        computeUs,
      );
    }
  }

  private reply(job: Job, outputs: Tensor[], batchRows: number, computeUs: number): void {
    let body: Uint8Array;
    try {
      body = encodeReply(job.req.family, outputs, job.req, this.identity(job.requestId));
    } catch (err) {
      this.fail(job, job.req.family, err);
      return;
    }
    const h = this.baseHeaders(job.requestId);
    h.set(H.queueUs, String(Math.round(job.queueUs)));
    h.set(H.computeUs, String(Math.round(computeUs)));
    h.set(H.batchSize, String(batchRows));
    job.msg.respond(body, { headers: h });
    this.stats.succeeded++;
    this.answered();
  }

  /** An admitted job that will not run or failed. */
  private fail(job: Job, family: ReplyFamily, err: unknown): void {
    this.reject(job.msg, family, job.requestId, err);
    this.answered();
  }

  private reject(msg: Answer, family: ReplyFamily, requestId: string, err: unknown): void {
    const e = SwitchyardError.from(err);
    if (e.code === "INTERNAL_ERROR") {
      this.log.error(
        {
          err: err instanceof SwitchyardError && err.cause ? err.cause : err,
          requestId,
          event: "internal_error",
        },
        e.message,
      );
    }
    this.stats.error(e.code as ErrorCode);
    const h = this.baseHeaders(requestId);
    h.set(H.errorCode, e.code);
    msg.respond(encodeError(family, e.toBody()), { headers: h });
  }

  private baseHeaders(requestId: string) {
    const s = this.o.spec;
    const h = natsHeaders();
    h.set(H.servedModel, s.served_model);
    h.set(H.modelName, s.model_name);
    h.set(H.modelVersion, String(s.model_version));
    h.set(H.requestId, requestId);
    return h;
  }

  private identity(requestId: string) {
    return { modelName: this.o.spec.model_name, modelVersion: this.o.spec.model_version, requestId };
  }

  private answered(): void {
    this.stats.level(this.unanswered);
    this.unanswered--;
    if (this.unanswered === 0 && this.idle) this.idle();
  }

  // ---- stop --------------------------------------------------------------------------------------------

  /** Drains: no new requests (unsubscribe, keeping what was delivered), answer everything admitted, then
   * close the pool. Writes DRAINING first. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    this.state = "DRAINING";
    await writeStatus(this.kv, this.o, "DRAINING", "").catch((err) =>
      this.log.warn({ err, event: "status_write_failed" }, "could not write DRAINING"),
    );
    // drain(): the server stops sending at once; messages already delivered still reach the callback.
    await this.sub?.drain().catch(() => {});
    if (this.unanswered > 0) {
      await new Promise<void>((resolve) => {
        this.idle = resolve;
      });
    }
    if (this.statsTimer) clearInterval(this.statsTimer);
    await this.statsSub?.drain().catch(() => {});
    await this.o.nc.flush().catch(() => {});
    this.stopReconnects?.();
    await this.runner.close();
    this.log.info({ event: "stopped", stats: this.stats.counters() }, "drained");
  }
}

const deadlineMessage = "the request's deadline passed before it could run";

const invalidHeaders = (err: unknown) =>
  new SwitchyardError(
    "BAD_REQUEST",
    `malformed batch envelope: a part's headers do not parse (${err instanceof Error ? err.message : String(err)})`,
  );

function deadlineOf(h: MsgHdrs | undefined): number {
  const abs = Number(h?.get(H.deadline) || Number.NaN);
  if (Number.isFinite(abs)) return abs;
  const rel = Number(h?.get(H.timeoutMs) || Number.NaN);
  return Date.now() + (Number.isFinite(rel) && rel > 0 ? rel : DEFAULT_TIMEOUT_MS);
}

/** Rows of a request (every feed must agree); -1 when a feed has no row dimension (it runs alone). */
function rowsOf(feeds: readonly Tensor[]): number {
  const first = feeds[0];
  if (!first || first.shape.length === 0) return -1;
  const rows = first.shape[0]!;
  for (const f of feeds) {
    if (f.shape.length === 0) return -1;
    if (f.shape[0] !== rows) {
      throw new SwitchyardError(
        "INVALID_PARAMETER_VALUE",
        `input '${f.name}' has ${f.shape[0]} rows but input '${first.name}' has ${rows}; every input must have the same number of rows`,
      );
    }
  }
  return rows;
}

/** Requests share a batch only with equal input names, dtypes, trailing dimensions and params. */
function batchKey(feeds: readonly Tensor[], params: Params): string {
  let key = "";
  for (const f of feeds) {
    key += `${f.name}:${f.dtype}`;
    for (let i = 1; i < f.shape.length; i++) key += `,${f.shape[i]}`;
    key += "|";
  }
  for (const _ in params) return `${key}${JSON.stringify(params)}`;
  return key;
}

/** Frames share a batch only with the same columns (names, order, kinds) and params. */
function frameBatchKey(frame: Frame, params: Params): string {
  const key = `frame|${frame.schemaKey()}|`;
  for (const _ in params) return `${key}${JSON.stringify(params)}`;
  return key;
}

async function writeStatus(
  kv: KV,
  o: Pick<ReplicaOptions, "spec" | "nodeId">,
  state: ReplicaStatus["state"],
  message: string,
): Promise<void> {
  const key = keys.replica(o.spec.replica_id);
  let restarts = 0;
  const cur = await kv.get(key).catch(() => null);
  if (cur && cur.operation === "PUT") {
    try {
      restarts = (JSON.parse(cur.string()) as { restarts?: number }).restarts ?? 0;
    } catch {
      // An unreadable record is replaced.
    }
  }
  const status: ReplicaStatus = ReplicaStatus.parse({
    replica_id: o.spec.replica_id,
    node_id: o.nodeId,
    endpoint: o.spec.endpoint,
    served_model: o.spec.served_model,
    generation: o.spec.generation,
    pid: process.pid,
    state,
    message,
    restarts,
    updated_at: Date.now(),
  });
  await kv.put(key, JSON.stringify(status));
}
