// The autoscaler's shell: while this coordinator leads, once a second it feeds the pure policy
// (@switchyard/autoscaler) with each served model's load — its replicas' stats over NATS, requests routers
// hold — and the room the nodes' thread budget leaves, and stores each decision in KV (`scale.<ep>.<served>`)
// when it changes; the reconciler runs that many replicas. A router's wake for a served model at zero gets one
// replica at once. It keeps only what the policy needs between steps; a new leader continues from KV.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  ConcurrencyWindow,
  decideScale,
  type Recommendation,
  replicaBounds,
  resumeScale,
  type ScaleSettings,
  type ScaleState,
  StatsFeed,
  streamScorers,
  wakeScale,
} from "@switchyard/autoscaler";
import { readValue } from "@switchyard/nats";
import {
  type ClusterNames,
  EndpointRecord,
  keys,
  NodeHeartbeat,
  type ReplicaStatsSnapshot,
  type RouterStatsSnapshot,
  ScaleDecision,
  ScaleWake,
  STREAM_DEFAULTS,
  type StreamJob,
} from "@switchyard/protocol";
import type { Logger } from "pino";
import { readAll, readScales, readWork, type Stores } from "./state.js";

export const AUTOSCALE_DEFAULTS = {
  /** How often the policy runs. */
  intervalMs: 1_000,
  /** How far back the average load reaches (replicas report once a second). */
  windowMs: 3_000,
} as const;

/** Running stream jobs and their consumers' lag, whose scorers the autoscaler sizes. */
export interface StreamLag {
  running(): Promise<StreamJob[]>;
  lag(job: StreamJob): Promise<number>;
}

export interface AutoscaleOptions {
  nc: NatsConnection;
  names: ClusterNames;
  stores: Stores;
  log: Logger;
  settings: ScaleSettings;
  intervalMs: number;
  windowMs: number;
  isLeader: () => boolean;
  streams?: StreamLag;
  /** Asks for a reconcile pass (scorer counts are not in KV, so nothing else would tell placement). */
  onChange: () => void;
  now?: () => number;
}

export class Autoscale {
  private readonly now: () => number;
  private readonly window: ConcurrencyWindow;
  private readonly states = new Map<string, ScaleState>();
  private readonly scorerHistory = new Map<string, Recommendation[]>();
  private readonly scorerCounts = new Map<string, number>();
  private feed: StatsFeed | undefined;
  private wakes: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Steps and wakes run one at a time, so a wake never races a step's write of the same decision. */
  private queue: Promise<void> = Promise.resolve();
  /** A step is queued or running: a tick meanwhile is skipped, so slow steps never pile up ahead of wakes. */
  private stepping = false;
  private leading = false;

  constructor(private readonly o: AutoscaleOptions) {
    this.now = o.now ?? Date.now;
    this.window = new ConcurrencyWindow(o.windowMs);
  }

  start(): void {
    this.feed = StatsFeed.start(this.o.nc, this.o.names, { now: this.now });
    this.feed.onReport((kind, r) => {
      if (kind === "replica") this.window.add(r.snapshot as ReplicaStatsSnapshot, r.receivedAt);
    });
    this.wakes = this.o.nc.subscribe(this.o.names.subjects.allScaleWake, {
      callback: (err, msg) => {
        if (err) return;
        let wake: ScaleWake;
        try {
          wake = ScaleWake.parse(msg.json());
        } catch (e) {
          this.o.log.warn({ err: e, subject: msg.subject }, "autoscale: ignoring a wake that does not parse");
          return;
        }
        this.serial(() => this.wake(wake));
      },
    });
    this.timer = setInterval(() => {
      if (this.stepping) return;
      this.stepping = true;
      this.serial(() =>
        this.step().finally(() => {
          this.stepping = false;
        }),
      );
    }, this.o.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.wakes?.unsubscribe();
    await this.queue;
    await this.feed?.stop();
  }

  /** Scorers wanted for a running stream job; undefined until the autoscaler has seen it (then `parallelism`). */
  scorers(job: StreamJob): number | undefined {
    return this.scorerCounts.get(job.name);
  }

  private serial(work: () => Promise<void>): void {
    this.queue = this.queue.then(work).catch((err: unknown) => {
      this.o.log.error({ err }, "autoscale step failed");
    });
  }

  /** One policy step over every served model of every serving config, then stream jobs. */
  private async step(): Promise<void> {
    if (!this.o.isLeader()) {
      if (this.leading) {
        // Lost the lease: whoever leads next continues from KV; so will this one if it leads again.
        this.states.clear();
        this.scorerHistory.clear();
        this.scorerCounts.clear();
      }
      this.leading = false;
      return;
    }
    this.leading = true;
    const now = this.now();
    const [records, stored, work, nodes] = await Promise.all([
      readAll(this.o.stores.endpoints, ">", EndpointRecord, "endpoint record"),
      readScales(this.o.stores),
      readWork(this.o.stores),
      readAll(this.o.stores.liveness, keys.nodes, NodeHeartbeat, "node heartbeat"),
    ]);
    const budget = nodes.reduce((a, n) => a + n.value.threads, 0);
    const routers = this.feed?.routers() ?? [];
    const named = new Set<string>();
    for (const { value: rec } of records) {
      if (rec.deleted) continue;
      // A served model of an update in progress keeps its decision (the same name in the next config).
      for (const s of rec.pending_config?.served_models ?? []) named.add(keys.scale(rec.name, s.name));
      for (const s of rec.config?.served_models ?? []) {
        const key = keys.scale(rec.name, s.name);
        named.add(key);
        try {
          const mine = (a: { spec: { endpoint: string; served_model: string } }) =>
            a.spec.endpoint === rec.name && a.spec.served_model === s.name;
          const others = work.workers.length + work.replicas.filter((a) => !mine(a)).length;
          const load = this.window.load(rec.name, s.name, now);
          const before = stored.get(key);
          const prev = this.states.get(key) ?? (before && resumeScale(before, now));
          const next = decideScale(this.o.settings, prev, {
            now,
            bounds: replicaBounds(s),
            capacity: Math.max(0, budget - others),
            concurrency: load.concurrency,
            requests: load.requests,
            held: heldBy(routers, rec.name, s.name),
          });
          this.states.set(key, next);
          if (this.worthWriting(before, next.decision)) {
            await this.o.stores.cluster.put(key, JSON.stringify(next.decision));
            if (before?.desired !== next.decision.desired) {
              const d = next.decision;
              this.o.log.info(
                {
                  endpoint: rec.name,
                  servedModel: s.name,
                  desired: d.desired,
                  wanted: d.wanted,
                  limitedBy: d.limited_by,
                  reason: d.reason,
                },
                "scale decision",
              );
            }
          }
        } catch (err) {
          this.o.log.error(
            { err, endpoint: rec.name, servedModel: s.name },
            "autoscale: served model step failed",
          );
        }
      }
    }
    // Decisions of served models no config names any more (cleanupEndpoint removes a deleted endpoint's).
    for (const key of stored.keys()) if (!named.has(key)) await this.o.stores.cluster.delete(key);
    for (const key of this.states.keys()) if (!named.has(key)) this.states.delete(key);
    await this.scaleStreams(now);
  }

  /**
   * Writes a decision when what it decides changed, or when the last request seen moved on far enough that a
   * leader taking over would otherwise scale to zero early (a fraction of scaleToZeroAfter, at most a minute).
   */
  private worthWriting(before: ScaleDecision | undefined, d: ScaleDecision): boolean {
    if (!before) return true;
    if (before.desired !== d.desired || before.wanted !== d.wanted || before.limited_by !== d.limited_by) {
      return true;
    }
    const slack = Math.min(60_000, Math.max(1_000, this.o.settings.scaleToZeroAfterMs / 4));
    return d.last_request_at - before.last_request_at >= slack;
  }

  /** A router holds a request for a served model nothing answers: from zero to one replica at once. */
  private async wake(w: ScaleWake): Promise<void> {
    if (!this.o.isLeader()) return;
    const key = keys.scale(w.endpoint, w.served_model);
    let prev = this.states.get(key);
    if (!prev) {
      const found = await readValue(this.o.stores.cluster, key, ScaleDecision, "scale decision");
      // No decision yet: the served model runs its initial replicas, nothing to wake.
      if (!found) return;
      prev = resumeScale(found.value, this.now());
    }
    const next = wakeScale(prev, this.now());
    this.states.set(key, next);
    // Written only when it starts a replica; a held request's time goes out with the next step's decision.
    if (prev.decision.desired > 0) return;
    await this.o.stores.cluster.put(key, JSON.stringify(next.decision));
    this.o.log.info(
      { endpoint: w.endpoint, servedModel: w.served_model },
      "scale from zero: a request is held",
    );
  }

  /** Stream jobs: scorers follow the consumer's lag up to `parallelism`; a job starts with `parallelism`. */
  private async scaleStreams(now: number): Promise<void> {
    if (!this.o.streams) return;
    const jobs = await this.o.streams.running();
    let changed = false;
    for (const job of jobs) {
      try {
        const req = job.request as { parallelism?: number; batch?: number };
        const parallelism = req.parallelism ?? STREAM_DEFAULTS.parallelism;
        const history = this.scorerHistory.get(job.name) ?? [{ at: now, replicas: parallelism }];
        const r = streamScorers(this.o.settings, history, {
          now,
          lag: await this.o.streams.lag(job),
          batch: req.batch ?? STREAM_DEFAULTS.batch,
          parallelism,
        });
        this.scorerHistory.set(job.name, r.recommendations);
        const before = this.scorerCounts.get(job.name) ?? parallelism;
        this.scorerCounts.set(job.name, r.scorers);
        if (before !== r.scorers) {
          changed = true;
          this.o.log.info({ stream: job.name, scorers: r.scorers, was: before }, "stream scorers follow lag");
        }
      } catch (err) {
        this.o.log.error({ err, stream: job.name }, "autoscale: stream job step failed");
      }
    }
    const running = new Set(jobs.map((j) => j.name));
    for (const name of [...this.scorerHistory.keys()]) {
      if (!running.has(name)) {
        this.scorerHistory.delete(name);
        this.scorerCounts.delete(name);
      }
    }
    if (changed) this.o.onChange();
  }
}

/** Requests routers hold now for one served model (none answers it). */
function heldBy(routers: { snapshot: RouterStatsSnapshot }[], endpoint: string, served: string): number {
  let held = 0;
  for (const r of routers) held += r.snapshot.endpoints[endpoint]?.[served]?.held ?? 0;
  return held;
}
