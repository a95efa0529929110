// The staged canary's shell: while this coordinator leads, once a second per running canary it reads the
// champion's and the challenger's traffic over the current stage (routers' counters now minus a mark taken when
// the stage began, or when this leader first saw it), asks the pure policy (canary.ts) what to do, and does it:
// routes to the next stage, back to the champion, or all to the challenger (and the registry aliases). It keeps
// only the marks in memory; a leader that takes over continues from the stored stage. It never throws out of a
// step: a canary it cannot read or write is logged and tried again next second.
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ClusterMetrics,
  Counters,
  percentilesMs,
  type SeriesTotals,
  StatsFeed,
} from "@switchyard/autoscaler";
import { casUpdate } from "@switchyard/nats";
import {
  type CanaryReadings,
  type ClusterNames,
  canaryActive,
  type EndpointRecord,
  EndpointRecord as EndpointRecordSchema,
  keys,
  StoredCanary,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { Logger } from "pino";
import {
  type CanaryObservation,
  type CanaryWindow,
  configAfterAliasPromotion,
  decideCanary,
  type LabelledAccuracy,
} from "./canary.js";
import { syncCanaryRoutes, updateCanary } from "./canary-store.js";
import { readAll, readRecord, type Stores } from "./state.js";

/**
 * Accuracy of a served model on labelled requests (the feedback join): the requests it answered at or after
 * `sinceMs` that have a label, and the share it got right; undefined when none has a label yet.
 */
export interface AccuracySource {
  since(endpoint: string, served: string, sinceMs: number): LabelledAccuracy | undefined;
}

export const CANARY_LOOP_DEFAULTS = {
  /** How often each running canary is judged. */
  intervalMs: 1_000,
  /**
   * How long after this process began hearing stats before it marks a stage: every router reports once a
   * second, and a router first heard after the mark would count all it ever served as the stage's traffic.
   */
  warmupMs: 3_000,
} as const;

export interface CanaryLoopOptions {
  nc: NatsConnection;
  names: ClusterNames;
  stores: Stores;
  registry: Registry;
  log: Logger;
  isLeader: () => boolean;
  intervalMs?: number;
  warmupMs?: number;
  accuracy?: AccuracySource;
  now?: () => number;
}

/** How stale the stored readings (what `rollout status` shows) may get while nothing in them changes. */
export const READINGS_EVERY_MS = 2_000;

/** The routers' counters of the champion and the challenger when this leader began counting the stage. */
interface Mark {
  /** Identifies the stage: the canary's start, the stage index and the stage's start. */
  stage: string;
  since: number;
  champion: Counters;
  challenger: Counters;
}

/** Thrown inside a compare-and-set when the stored canary is no longer the one decided on (the API changed it). */
class Superseded extends Error {}

const stageId = (c: StoredCanary) => `${c.state.started_at}/${c.state.stage}/${c.state.stage_started_at}`;

export class CanaryLoop {
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly warmupMs: number;
  private readonly marks = new Map<string, Mark>();
  private feed: StatsFeed | undefined;
  private metrics: ClusterMetrics | undefined;
  private followingSince = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly o: CanaryLoopOptions) {
    this.now = o.now ?? Date.now;
    this.intervalMs = o.intervalMs ?? CANARY_LOOP_DEFAULTS.intervalMs;
    this.warmupMs = o.warmupMs ?? CANARY_LOOP_DEFAULTS.warmupMs;
  }

  start(): void {
    this.feed = StatsFeed.start(this.o.nc, this.o.names, { now: this.now });
    this.metrics = ClusterMetrics.follow(this.feed, { now: this.now });
    this.followingSince = this.now();
    this.timer = setInterval(() => {
      // Steps never overlap: a slow one (KV under load) makes the next tick skip.
      if (this.running) return;
      this.running = this.step()
        .catch((err: unknown) => this.o.log.error({ err }, "canary step failed"))
        .finally(() => {
          this.running = undefined;
        });
    }, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    this.metrics?.close();
    await this.feed?.stop();
  }

  private async step(): Promise<void> {
    if (!this.o.isLeader()) {
      // Whoever leads next marks the stages it sees from then on; so will this one if it leads again.
      this.marks.clear();
      return;
    }
    if (this.now() - this.followingSince < this.warmupMs) return;
    const canaries = await readAll(this.o.stores.cluster, keys.canaries, StoredCanary, "canary");
    const totals = this.metrics!.totals();
    const seen = new Set<string>();
    for (const { key, value } of canaries) {
      const endpoint = key.slice(key.indexOf(".") + 1);
      seen.add(endpoint);
      if (!canaryActive(value.state.phase)) {
        this.marks.delete(endpoint);
        if (!value.state.alias_move) continue;
      }
      try {
        if (value.state.alias_move) await this.finishAliasMove(endpoint, value);
        else await this.judge(endpoint, value, totals);
      } catch (err) {
        if (err instanceof Superseded) continue;
        this.o.log.error({ err, endpoint }, "canary: step failed");
      }
    }
    for (const endpoint of this.marks.keys()) if (!seen.has(endpoint)) this.marks.delete(endpoint);
  }

  /** One canary's step: observe the stage, decide, and do what was decided. */
  private async judge(endpoint: string, canary: StoredCanary, totals: SeriesTotals[]): Promise<void> {
    const found = await readRecord(this.o.stores, endpoint);
    if (!found || found.record.deleted) return;
    // Routes follow the stored stage (a leader that died between writing the stage and the routes, a pause).
    if (await syncCanaryRoutes(this.o.stores, endpoint)) {
      this.o.log.info({ endpoint, stage: canary.state.stage }, "canary: routes set to the stored stage");
    }
    const now = this.now();
    const { spec, state } = canary;
    let mark = this.marks.get(endpoint);
    if (mark?.stage !== stageId(canary)) {
      mark = this.markOf(endpoint, canary, totals, now);
      this.marks.set(endpoint, mark);
    }
    const observation: CanaryObservation = {
      now,
      champion: windowOf(totals, endpoint, spec.champion, mark.champion),
      challenger: windowOf(totals, endpoint, spec.challenger, mark.challenger),
    };
    const accuracy = spec.guards.min_accuracy && this.accuracyOf(endpoint, canary);
    if (accuracy) observation.accuracy = accuracy;
    const d = decideCanary(spec, state, observation);
    const action = d.action;
    if (action.kind === "finished") return;
    if (action.kind === "hold") {
      const readings: CanaryReadings = {
        at: now,
        stage_started_at: state.stage_started_at,
        observed_since: mark.since,
        requests: { champion: observation.champion.requests, challenger: observation.challenger.requests },
        guards: d.guards,
        message: action.message,
      };
      if (this.worthWriting(canary.readings, readings))
        await this.store(endpoint, canary, { ...canary, readings });
      return;
    }
    const next: StoredCanary = { spec, state: d.state, readings: null };
    if (action.kind === "promote" && action.move_alias) {
      next.state = { ...next.state, alias_move: this.aliasMoveOf(found.record, action.champion) };
    }
    await this.store(endpoint, canary, next);
    if (action.kind === "advance") this.marks.set(endpoint, this.markOf(endpoint, next, totals, now));
    else this.marks.delete(endpoint);
    await syncCanaryRoutes(this.o.stores, endpoint);
    if (next.state.alias_move) await this.finishAliasMove(endpoint, next);
    const event = d.state.history[d.state.history.length - 1]!;
    const failed =
      action.kind === "rollback" ? { guard: action.guard, value: action.value, limit: action.limit } : {};
    this.o.log.info(
      { endpoint, event: event.event, stage: event.stage, percent: event.percent, ...failed },
      event.message,
    );
  }

  /**
   * Readings are written when what they say changes (a guard's state, why the stage holds) and otherwise every
   * READINGS_EVERY_MS: each write wakes every coordinator's reconcile, so not once a second per canary.
   */
  private worthWriting(before: CanaryReadings | null, next: CanaryReadings): boolean {
    if (!before || before.stage_started_at !== next.stage_started_at) return true;
    if (next.at - before.at >= READINGS_EVERY_MS) return true;
    const states = (r: CanaryReadings) => r.guards.map((g) => g.state).join();
    const reason = (r: CanaryReadings) => r.message.slice(0, r.message.indexOf(":"));
    return states(before) !== states(next) || reason(before) !== reason(next);
  }

  /** Writes the canary if it is still the one judged (the API may have paused or aborted it meanwhile). */
  private async store(endpoint: string, judged: StoredCanary, next: StoredCanary): Promise<void> {
    await updateCanary(this.o.stores, endpoint, (current) => {
      if (!current || stageId(current) !== stageId(judged) || current.state.phase !== judged.state.phase) {
        throw new Superseded();
      }
      return next;
    });
  }

  private markOf(endpoint: string, canary: StoredCanary, totals: SeriesTotals[], now: number): Mark {
    return {
      stage: stageId(canary),
      since: now,
      champion: countersOf(totals, endpoint, canary.spec.champion),
      challenger: countersOf(totals, endpoint, canary.spec.challenger),
    };
  }

  private accuracyOf(endpoint: string, canary: StoredCanary): CanaryObservation["accuracy"] {
    const source = this.o.accuracy;
    if (!source) return undefined;
    // Labels are durable (they join captured requests), so the whole stage counts, even across a failover.
    const since = canary.state.stage_started_at;
    const champion = source.since(endpoint, canary.spec.champion, since);
    const challenger = source.since(endpoint, canary.spec.challenger, since);
    if (!champion && !challenger) return undefined;
    const none = { labelled: 0, accuracy: 0 };
    return { champion: champion ?? none, challenger: challenger ?? none };
  }

  /** The model and version `@champion` moves to: the promoted challenger's, as it serves now. */
  private aliasMoveOf(record: EndpointRecord, challenger: string): { model: string; version: number } {
    const served = record.config?.served_models.find((s) => s.name === challenger);
    const version = record.resolved[challenger];
    if (!served || version === undefined) {
      throw new Error(`served model '${challenger}' has no resolved version to move @champion to`);
    }
    return { model: served.model_name, version };
  }

  /**
   * Promotion with `promote_alias`: `@champion` → the challenger's version, the config rewritten so nothing
   * follows `@challenger`, then `@challenger` removed. Every step can run again (a leader that died halfway, a
   * write that failed): the move is taken from the stored canary and removed from it once all are done.
   */
  private async finishAliasMove(endpoint: string, canary: StoredCanary): Promise<void> {
    const move = canary.state.alias_move!;
    await this.o.registry.setAlias(move.model, "champion", move.version);
    // Before `@challenger` goes: served models following it would no longer resolve (and a config that cannot
    // resolve stops following aliases). The rewrite is an update like any other: the reconciler starts the
    // champion's replicas on the promoted version and flips once they are ready; the challenger serves meanwhile.
    await casUpdate(
      this.o.stores.endpoints,
      keys.endpoint(endpoint),
      EndpointRecordSchema,
      (rec): EndpointRecord => {
        if (!rec?.config || rec.deleted) throw new Superseded();
        // An update in progress (this rewrite, written before a failure) is left to finish.
        if (rec.state.config_update === "IN_PROGRESS") throw new Superseded();
        const config = configAfterAliasPromotion(rec.config, canary.spec, move.model, move.version);
        if (!config) throw new Superseded();
        const now = this.now();
        return {
          ...rec,
          last_updated_timestamp: now,
          pending_config: config,
          pending_config_version: rec.config_version + 1,
          pending_start_time: now,
          state: { ...rec.state, config_update: "IN_PROGRESS", message: "" },
        };
      },
      { what: `endpoint '${endpoint}'` },
    ).then(
      () => this.o.log.info({ endpoint }, "canary: config rewritten to follow the moved @champion"),
      (err: unknown) => {
        if (!(err instanceof Superseded)) throw err;
      },
    );
    const model = await this.o.registry.getModel(move.model);
    if (Object.hasOwn(model.aliases, "challenger"))
      await this.o.registry.deleteAlias(move.model, "challenger");
    await updateCanary(this.o.stores, endpoint, (current) => {
      if (!current?.state.alias_move) throw new Superseded();
      const { alias_move: _done, ...state } = current.state;
      return { ...current, state };
    });
    this.o.log.info(
      { endpoint, model: move.model, version: move.version },
      `canary: @champion of ${move.model} moved to version ${move.version}; @challenger removed`,
    );
  }
}

/** A copy of one served model's running totals (zero when routers never reported it). */
function countersOf(totals: SeriesTotals[], endpoint: string, served: string): Counters {
  const t = totals.find((x) => x.endpoint === endpoint && x.served === served);
  return t ? new Counters().add(t.counters) : new Counters();
}

/**
 * One served model's traffic since `mark`: requests, errors by code, and the latency percentiles of the requests
 * that found a replica at once: a request that waited for one to start (a challenger scaled to zero at 0 %)
 * measures the cold start, not the model.
 */
function windowOf(totals: SeriesTotals[], endpoint: string, served: string, mark: Counters): CanaryWindow {
  const c = countersOf(totals, endpoint, served).add(mark, -1);
  return {
    requests: c.requests,
    errors: Object.fromEntries([...c.errors].filter(([, n]) => n > 0)),
    latency_ms: percentilesMs(c.answeredLatency()),
  };
}
