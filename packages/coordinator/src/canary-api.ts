// The management API's `rollout.*` operations: start a staged canary on an endpoint (its `rollout` section with
// the body's overrides), read its status, pause, resume or abort it. They write the stored canary and the
// endpoint's routes (start and abort move traffic at once); the leader's canary loop does the rest.
import {
  type CanaryView,
  canaryActive,
  keys,
  notFound,
  type StoredCanary,
  SwitchyardError,
} from "@switchyard/protocol";
import type { Logger } from "pino";
import {
  abortCanary,
  canarySpec,
  canaryView,
  challengerPercent,
  pauseCanary,
  resumeCanary,
  startCanary,
} from "./canary.js";
import { readCanary, syncCanaryRoutes, updateCanary } from "./canary-store.js";
import { readRecord, type Stores } from "./state.js";

export interface CanaryApiOptions {
  stores: Stores;
  log: Logger;
}

/** Why a config update must wait: the canary that holds the endpoint's routes, or nothing. */
export async function activeCanaryConflict(
  stores: Stores,
  endpoint: string,
): Promise<SwitchyardError | undefined> {
  const found = await readCanary(stores, endpoint);
  if (!found || !canaryActive(found.value.state.phase)) return undefined;
  const { spec, state } = found.value;
  return new SwitchyardError(
    "RESOURCE_CONFLICT",
    `endpoint '${endpoint}' has a canary ${state.phase} (${spec.challenger} at ${spec.stages[state.stage]}% ` +
      `against ${spec.champion}); abort it first (switchyard endpoints rollout abort ${endpoint})`,
  );
}

/**
 * What the endpoint's GET body says of its canary (`canary`: the phase, who against whom, the challenger's
 * share), so readers know there is one to ask `rollout status` about; undefined when it has none or it cannot
 * be read (the rest of the body never fails for it).
 */
export async function canaryOf(
  stores: Stores,
  endpoint: string,
): Promise<Pick<CanaryView, "phase" | "champion" | "challenger" | "stage" | "percent"> | undefined> {
  const found = await readCanary(stores, endpoint).catch(() => null);
  if (!found) return undefined;
  const { spec, state } = found.value;
  return {
    phase: state.phase,
    champion: spec.champion,
    challenger: spec.challenger,
    stage: state.stage,
    percent: challengerPercent(spec, state),
  };
}

export class CanaryApi {
  constructor(private readonly o: CanaryApiOptions) {}

  /** Starts a canary: stored at its first stage, and the endpoint's routes set to that stage at once. */
  async start(name: string, body: Record<string, unknown>): Promise<CanaryView> {
    const { name: _n, ...overrides } = body;
    const found = await readRecord(this.o.stores, name);
    if (!found || found.record.deleted) throw notFound(`endpoint '${name}' does not exist`);
    const { record } = found;
    if (record.state.config_update === "IN_PROGRESS") {
      throw new SwitchyardError(
        "RESOURCE_CONFLICT",
        `endpoint '${name}' has an update in progress (config version ${record.pending_config_version}); ` +
          "start the canary once it completes",
      );
    }
    if (!record.config) {
      throw new SwitchyardError(
        "RESOURCE_CONFLICT",
        `endpoint '${name}' serves no config yet; wait until it is READY`,
      );
    }
    const spec = canarySpec(record.config, overrides);
    const now = Date.now();
    const { state } = startCanary(spec, now);
    const canary: StoredCanary = { spec, state, readings: null };
    await updateCanary(this.o.stores, name, (current) => {
      if (current && canaryActive(current.state.phase)) {
        const c = current.spec;
        throw new SwitchyardError(
          "RESOURCE_CONFLICT",
          `endpoint '${name}' already has a canary ${current.state.phase} (${c.challenger} at ` +
            `${c.stages[current.state.stage]}% against ${c.champion}); abort it first`,
        );
      }
      return canary;
    });
    try {
      await syncCanaryRoutes(this.o.stores, name);
    } catch (err) {
      // An update that began meanwhile owns the routes: the canary never started.
      await this.o.stores.cluster.delete(keys.canary(name)).catch(() => undefined);
      throw err;
    }
    this.o.log.info(
      { endpoint: name, champion: spec.champion, challenger: spec.challenger, stages: spec.stages },
      state.history[0]!.message,
    );
    return canaryView(name, canary, now);
  }

  async status(name: string): Promise<CanaryView> {
    const found = await readCanary(this.o.stores, name);
    if (!found) throw notFound(`endpoint '${name}' has no canary (start one with rollout start)`);
    return canaryView(name, found.value, Date.now());
  }

  pause(name: string): Promise<CanaryView> {
    return this.change(name, (c, now) => ({ ...c, state: pauseCanary(c.spec, c.state, now) }));
  }

  resume(name: string): Promise<CanaryView> {
    return this.change(name, (c, now) => ({
      ...c,
      state: resumeCanary(c.spec, c.state, now),
      readings: null,
    }));
  }

  /** Ends the canary; the champion takes all traffic back at once. */
  abort(name: string): Promise<CanaryView> {
    return this.change(name, (c, now) => ({ ...c, state: abortCanary(c.spec, c.state, now).state }));
  }

  private async change(
    name: string,
    next: (current: StoredCanary, now: number) => StoredCanary,
  ): Promise<CanaryView> {
    const now = Date.now();
    const { value: stored } = await updateCanary(this.o.stores, name, (current) => {
      if (!current) throw notFound(`endpoint '${name}' has no canary (start one with rollout start)`);
      return next(current, now);
    });
    const event = stored.state.history[stored.state.history.length - 1]!;
    await syncCanaryRoutes(this.o.stores, name).catch((err: unknown) =>
      // Only an endpoint deleted meanwhile gets here (updates wait for the canary); the leader's loop sets the
      // routes of a canary still running or paused on its next step anyway.
      this.o.log.warn({ err, endpoint: name }, "canary routes left for the leader"),
    );
    this.o.log.info(
      { endpoint: name, event: event.event, stage: event.stage, percent: event.percent },
      event.message,
    );
    return canaryView(name, stored, now);
  }
}
