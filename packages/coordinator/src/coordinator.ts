// A coordinator: serves the management API (every instance), competes for the leader lease, and — while it
// leads — reconciles on every change it sees in KV (endpoints, cluster, node heartbeats, models) and on a
// periodic tick, then fires the batch schedules that are due. Passes never overlap; a failed pass is logged and
// the next one starts from KV again.
import { randomBytes } from "node:crypto";
import type { KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import { AccuracyFeed, SCALE_DEFAULTS, type ScaleSettings } from "@switchyard/autoscaler";
import {
  connectNats,
  DEFAULT_REPLICATION,
  type NatsOptions,
  parseReplication,
  provisionBuckets,
  type ReplicationSetting,
} from "@switchyard/nats";
import { type ClusterNames, clusterNames, keys } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { type Logger, pino } from "pino";
import { ManagementApi } from "./api.js";
import { AUTOSCALE_DEFAULTS, Autoscale } from "./autoscale.js";
import { type BatchFiles, BatchJobs } from "./batch.js";
import { type AccuracySource, CanaryLoop } from "./canary-loop.js";
import { ensureCaptureStream } from "./capture.js";
import { FeedbackJoin } from "./feedback.js";
import { LeaderLease } from "./lease.js";
import { Reconciler } from "./reconcile.js";
import { ScheduleRunner, type SubmitBatch } from "./schedule-runner.js";
import { openStores, type Stores } from "./state.js";
import { type DataPath, StreamJobs } from "./streams.js";

export interface CoordinatorOptions {
  /** An open connection (kept open on stop), or how to open one (closed on stop). */
  nc?: NatsConnection;
  nats?: NatsOptions;
  /** Cluster name (default `sy`). */
  cluster?: string;
  /** This coordinator's id, the lease holder name (default: `coord-<random>`). */
  id?: string;
  logger?: Logger;
  /** A new generation not READY within this fails its rollout (default 120 s). */
  rolloutTimeoutMs?: number;
  /** Reconcile at least this often while leading (default 2 s). */
  tickMs?: number;
  /** Reads batch inputs and writes batch outputs (@switchyard/jobs); without it batch jobs are not served. */
  batchFiles?: BatchFiles;
  /** How long a batch shard may go unacked before it is redelivered (default 60 s). */
  batchAckWaitMs?: number;
  /** How a schedule's due tick submits its batch job (default: this coordinator's batch jobs, when it has
   * `batchFiles`); without either, schedules are kept but never fire. */
  submitBatch?: SubmitBatch;
  /** Resolves a stream job's landing or sink directory under the data roots; without it such jobs are refused. */
  dataPath?: DataPath;
  /** How long a stream message may go unacked before it is redelivered (default 30 s). */
  streamAckWaitMs?: number;
  /** The autoscaler's settings (defaults: SCALE_DEFAULTS and AUTOSCALE_DEFAULTS). */
  autoscaler?: AutoscalerOptions;
  /** Labelled accuracy per served model for canaries with an accuracy guard (default: the outcome stream's). */
  accuracy?: AccuracySource;
  /** How often running canaries are judged (default 1 s). */
  canaryIntervalMs?: number;
  /**
   * How many NATS servers keep each stream, bucket and object store it creates (1..5, default 1); an existing
   * one with another count is changed to it where the server allows, else the difference is logged.
   */
  replication?: number;
  /**
   * The cluster's KV buckets and object store already exist with the replication setting: whoever composes the
   * roles in one process (`switchyard up`) made them once, so this coordinator does not again (default false:
   * a coordinator started on its own, in any order with the other roles, provisions them at start).
   */
  bucketsProvisioned?: boolean;
}

export interface AutoscalerOptions extends Partial<ScaleSettings> {
  /** How often the policy runs (default 1 s). */
  intervalMs?: number;
  /** How far back the average load reaches (default 3 s). */
  windowMs?: number;
}

export const COORDINATOR_DEFAULTS = { rolloutTimeoutMs: 120_000, tickMs: 2_000 } as const;

export class Coordinator {
  readonly id: string;
  readonly names: ClusterNames;
  private readonly log: Logger;
  private nc: NatsConnection | undefined;
  private ownsConnection = false;
  private stores: Stores | undefined;
  private api: ManagementApi | undefined;
  private lease: LeaderLease | undefined;
  private reconciler: Reconciler | undefined;
  private batch: BatchJobs | undefined;
  private streams: StreamJobs | undefined;
  private schedules: ScheduleRunner | undefined;
  private autoscale: Autoscale | undefined;
  private canary: CanaryLoop | undefined;
  private feedback: FeedbackJoin | undefined;
  private accuracy: AccuracyFeed | undefined;
  private watches: Array<QueuedIterator<KvWatchEntry>> = [];
  private tick: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;

  constructor(private readonly opts: CoordinatorOptions) {
    if (!opts.nc && !opts.nats) throw new TypeError("options.nc or options.nats is required");
    if (opts.replication !== undefined) parseReplication(opts.replication, "options.replication");
    this.names = clusterNames(opts.cluster);
    this.id = opts.id ?? `coord-${randomBytes(4).toString("hex")}`;
    this.log = (opts.logger ?? pino({ name: "coordinator" })).child({
      coordinator: this.id,
      cluster: this.names.cluster,
    });
  }

  get isLeader(): boolean {
    return this.lease?.isLeader ?? false;
  }

  async start(): Promise<void> {
    this.nc =
      this.opts.nc ?? (await connectNats({ ...this.opts.nats!, name: this.opts.nats?.name ?? this.id }));
    this.ownsConnection = !this.opts.nc;
    const replication: ReplicationSetting = {
      replicas: this.opts.replication ?? DEFAULT_REPLICATION,
      log: this.log,
    };
    const provision = !this.opts.bucketsProvisioned;
    if (provision) await provisionBuckets(this.nc, this.names, replication);
    this.stores = await openStores(this.nc, this.names);
    const registry = await Registry.open(this.nc, {
      cluster: this.names.cluster,
      ...(provision ? { replication } : {}),
    });
    await ensureCaptureStream(this.nc, this.names, replication);
    // Every coordinator joins labels (not only the leader): they share one durable consumer.
    this.feedback = await FeedbackJoin.start({
      nc: this.nc,
      names: this.names,
      endpoints: this.stores.endpoints,
      log: this.log,
      replication,
    });
    if (this.opts.batchFiles) {
      this.batch = new BatchJobs({
        nc: this.nc,
        names: this.names,
        jobs: this.stores.jobs,
        registry,
        files: this.opts.batchFiles,
        log: this.log,
        replication,
        ...(this.opts.batchAckWaitMs ? { ackWaitMs: this.opts.batchAckWaitMs } : {}),
      });
      await this.batch.start();
    }
    this.streams = new StreamJobs({
      nc: this.nc,
      names: this.names,
      stores: this.stores,
      registry,
      log: this.log,
      replication,
      ...(this.opts.dataPath ? { dataPath: this.opts.dataPath } : {}),
      ...(this.opts.streamAckWaitMs ? { ackWaitMs: this.opts.streamAckWaitMs } : {}),
    });
    await this.streams.open();
    this.api = new ManagementApi({
      nc: this.nc,
      names: this.names,
      stores: this.stores,
      registry,
      log: this.log,
      streams: this.streams,
      ...(this.batch ? { batch: this.batch } : {}),
    });
    this.api.start();
    const scaling = this.opts.autoscaler ?? {};
    const autoscale = new Autoscale({
      nc: this.nc,
      names: this.names,
      stores: this.stores,
      log: this.log,
      settings: {
        targetConcurrency: scaling.targetConcurrency ?? SCALE_DEFAULTS.targetConcurrency,
        upStabilizationMs: scaling.upStabilizationMs ?? SCALE_DEFAULTS.upStabilizationMs,
        downStabilizationMs: scaling.downStabilizationMs ?? SCALE_DEFAULTS.downStabilizationMs,
        scaleToZeroAfterMs: scaling.scaleToZeroAfterMs ?? SCALE_DEFAULTS.scaleToZeroAfterMs,
      },
      intervalMs: scaling.intervalMs ?? AUTOSCALE_DEFAULTS.intervalMs,
      windowMs: scaling.windowMs ?? AUTOSCALE_DEFAULTS.windowMs,
      isLeader: () => this.isLeader,
      streams: this.streams,
      onChange: () => this.schedule(),
    });
    this.autoscale = autoscale;
    this.reconciler = new Reconciler({
      names: this.names,
      stores: this.stores,
      registry,
      log: this.log,
      rolloutTimeoutMs: this.opts.rolloutTimeoutMs ?? COORDINATOR_DEFAULTS.rolloutTimeoutMs,
      streams: this.streams,
      scorers: (job) => autoscale.scorers(job),
      ...(this.batch ? { batch: this.batch } : {}),
    });
    // Schedules submit through this coordinator's batch jobs unless told otherwise (tests count submits).
    const batch = this.batch;
    const submit: SubmitBatch | undefined =
      this.opts.submitBatch ??
      (batch
        ? async (request, origin) => ({
            job_id: (await batch.submit(request, { schedule: origin.schedule })).id,
          })
        : undefined);
    if (submit) this.schedules = new ScheduleRunner({ jobs: this.stores.jobs, submit, log: this.log });
    for (const [kv, key] of [
      [this.stores.endpoints, ">"],
      [this.stores.cluster, ">"],
      [this.stores.liveness, keys.nodes],
      [this.stores.models, ">"],
      [this.stores.jobs, ">"],
    ] as const) {
      const w = await kv.watch({ key, ignoreDeletes: false });
      this.watches.push(w);
      void (async () => {
        for await (const _e of w) this.schedule();
      })().catch((err: unknown) => this.log.warn({ err }, "watch ended"));
    }
    this.lease = new LeaderLease(this.stores.liveness, this.id, this.log, (leader) => {
      if (leader) this.schedule();
    });
    this.lease.start();
    this.autoscale.start();
    // The canary's accuracy guard reads the joined labels (the outcome stream) as the bridges' metrics do. The
    // feed (a 24 h replay) starts on the first canary with an accuracy guard, not in every coordinator; until it
    // has caught up the guard sees too few labels and holds the stage.
    const nc = this.nc;
    const accuracy: AccuracySource = this.opts.accuracy ?? {
      since: (endpoint, served, since) => {
        this.accuracy ??= AccuracyFeed.start(nc, this.names);
        return this.accuracy.windows.since(endpoint, served, since);
      },
    };
    this.canary = new CanaryLoop({
      nc: this.nc,
      names: this.names,
      stores: this.stores,
      registry,
      log: this.log,
      isLeader: () => this.isLeader,
      ...(this.opts.canaryIntervalMs ? { intervalMs: this.opts.canaryIntervalMs } : {}),
      accuracy,
    });
    this.canary.start();
    this.tick = setInterval(() => this.schedule(), this.opts.tickMs ?? COORDINATOR_DEFAULTS.tickMs);
    this.log.info("coordinator started");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.tick);
    for (const w of this.watches) w.stop();
    await this.autoscale?.stop();
    await this.canary?.stop();
    await this.feedback?.stop();
    await this.accuracy?.stop();
    await this.running;
    await this.lease?.stop();
    await this.api?.stop();
    if (this.ownsConnection) await this.nc?.close();
    this.log.info("coordinator stopped");
  }

  /** Asks for a reconcile pass (coalesced: at most one runs, and one more follows if asked meanwhile). */
  private schedule(): void {
    if (this.stopped || !this.isLeader) return;
    this.dirty = true;
    if (this.running) return;
    this.running = (async () => {
      while (this.dirty && !this.stopped && this.isLeader) {
        this.dirty = false;
        await new Promise((r) => setTimeout(r, 20)); // let a burst of KV events coalesce
        try {
          await this.reconciler!.pass();
        } catch (err) {
          this.log.error({ err }, "reconcile pass failed");
        }
        try {
          await this.batch?.pass();
        } catch (err) {
          this.log.error({ err }, "batch pass failed");
        }
        try {
          await this.schedules?.pass();
        } catch (err) {
          this.log.error({ err }, "schedule pass failed");
        }
      }
    })().finally(() => {
      this.running = undefined;
    });
  }
}
