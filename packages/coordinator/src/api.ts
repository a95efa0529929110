// The management API every coordinator serves (queue group `api`): Databricks' serving-endpoints bodies in,
// Databricks' response shapes out, errors as `{"error_code","message"}` plus the error-code header. Writes
// to the endpoints bucket use compare-and-set on the KV revision; it never reconciles (the leader does), and
// never fires a schedule (the leader's ScheduleRunner does).
import { randomUUID } from "node:crypto";
import {
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";
import { casUpdate, clusterUnsettled, readValue } from "@switchyard/nats";
import {
  type ApiOp,
  assertResourceName,
  BatchSchedule,
  type ClusterNames,
  type ConfigProblem,
  CreateEndpointRequest,
  configError,
  type EndpointRecord,
  EndpointRecord as EndpointRecordSchema,
  EndpointRoutes,
  H,
  invalid,
  isResourceName,
  jobKeys,
  keys,
  NodeHeartbeat,
  notFound,
  parseRateLimits,
  QUEUE_GROUPS,
  ReplicaStatus,
  type ScaleDecision,
  STREAM_NAME,
  SwitchyardError,
  updatedAutoCapture,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { Logger } from "pino";
import type { BatchJobs } from "./batch.js";
import { activeCanaryConflict, CanaryApi, canaryOf } from "./canary-api.js";
import { ModelLookup, resolveVersions, validateConfig } from "./resolve.js";
import { deploymentOf } from "./rollout.js";
import { newSchedule, type ScheduleView, scheduleView } from "./schedules.js";
import { cleanupEndpoint, readAll, readAssignments, readRecord, readScales, type Stores } from "./state.js";
import type { StreamJobs } from "./streams.js";
import { liveTargets, type ServedTarget, scaledTarget, targetsOf } from "./targets.js";
import { type EndpointObservation, type EndpointView, endpointView, type ServedObservation } from "./view.js";

export interface ApiOptions {
  nc: NatsConnection;
  names: ClusterNames;
  stores: Stores;
  registry: Registry;
  log: Logger;
  /** Batch jobs; without it the `batch.*` operations are not served (no coordinator answers them). */
  batch?: BatchJobs;
  /** Stream jobs; without it the `streams.*` operations are not served. */
  streams?: StreamJobs;
}

export class ManagementApi {
  private readonly subs: Subscription[] = [];
  private readonly canary: CanaryApi;

  constructor(private readonly o: ApiOptions) {
    this.canary = new CanaryApi({ stores: o.stores, log: o.log });
  }

  start(): void {
    const batch = this.o.batch;
    const streams = this.o.streams;
    const ops: Partial<Record<ApiOp, (body: Record<string, unknown>, msg: Msg) => Promise<unknown>>> = {
      "endpoints.create": (b, m) => this.create(b, m),
      "endpoints.update": (b) => this.update(b),
      "endpoints.get": (b) => this.get(b),
      "endpoints.list": () => this.list(),
      "endpoints.delete": (b) => this.delete(b),
      "endpoints.rate_limits": (b) => this.putRateLimits(b),
      "schedules.create": (b) => this.createSchedule(b),
      "schedules.get": (b) => this.getSchedule(b),
      "schedules.list": () => this.listSchedules(),
      "schedules.delete": (b) => this.deleteSchedule(b),
      "rollout.start": (b) => this.canary.start(this.nameOf(b), b),
      "rollout.status": (b) => this.canary.status(this.nameOf(b)),
      "rollout.pause": (b) => this.canary.pause(this.nameOf(b)),
      "rollout.resume": (b) => this.canary.resume(this.nameOf(b)),
      "rollout.abort": (b) => this.canary.abort(this.nameOf(b)),
      ...(streams
        ? {
            "streams.create": (b) => streams.create(b),
            "streams.get": (b) => streams.getView(streamNameOf(b)),
            "streams.list": () => streams.list(),
            "streams.stop": (b) => streams.stop(streamNameOf(b)),
            "streams.start": (b) => streams.start(streamNameOf(b)),
            "streams.delete": (b) => streams.delete(streamNameOf(b)),
          }
        : {}),
      ...(batch
        ? {
            "batch.submit": (b) => batch.submit(b),
            "batch.get": (b) => batch.getView(jobIdOf(b)),
            "batch.list": () => batch.list(),
            "batch.cancel": (b) => batch.cancel(jobIdOf(b)),
          }
        : {}),
    };
    for (const [op, handler] of Object.entries(ops) as Array<[ApiOp, NonNullable<(typeof ops)[ApiOp]>]>) {
      const sub = this.o.nc.subscribe(this.o.names.subjects.api(op), {
        queue: QUEUE_GROUPS.api,
        callback: (err, msg) => {
          if (err) return;
          void this.serve(op, msg, handler);
        },
      });
      this.subs.push(sub);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.drain().catch(() => undefined)));
  }

  private async serve(
    op: ApiOp,
    msg: Msg,
    handler: (body: Record<string, unknown>, msg: Msg) => Promise<unknown>,
  ): Promise<void> {
    try {
      let body: unknown;
      try {
        body = msg.data.length ? JSON.parse(new TextDecoder().decode(msg.data)) : {};
      } catch {
        throw new SwitchyardError("BAD_REQUEST", "request body is not valid JSON");
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new SwitchyardError("BAD_REQUEST", "request body must be a JSON object");
      }
      msg.respond(JSON.stringify(await handler(body as Record<string, unknown>, msg)));
    } catch (err) {
      const e = clusterUnsettled(err) ?? SwitchyardError.from(err);
      if (e.code === "INTERNAL_ERROR") this.o.log.error({ err: e.cause ?? err, op }, "management API error");
      else if (e.code === "TEMPORARILY_UNAVAILABLE")
        this.o.log.warn({ err: e.message, op }, "management API unavailable");
      const h = natsHeaders();
      h.set(H.errorCode, e.code);
      h.set(H.contentType, "application/json");
      msg.respond(JSON.stringify(e.toBody()), { headers: h });
    }
  }

  private nameOf(body: Record<string, unknown>): string {
    const name = body.name;
    if (typeof name !== "string" || !isResourceName(name)) {
      throw new SwitchyardError(
        "INVALID_PARAMETER_VALUE",
        `name: expected an endpoint name of 1-63 letters, digits, '_' or '-', got ${JSON.stringify(name ?? null)}`,
      );
    }
    return name;
  }

  async create(body: Record<string, unknown>, msg?: Msg): Promise<EndpointView> {
    const problems: ConfigProblem[] = [];
    const parsed = CreateEndpointRequest.safeParse(body);
    if (!parsed.success) {
      for (const i of parsed.error.issues) {
        if (i.path[0] === "config") continue; // validateConfig lists these with their fields
        problems.push({ field: i.path.map(String).join(".") || "body", message: i.message });
      }
    }
    const name = body.name;
    if (typeof name === "string" && !isResourceName(name)) {
      problems.push({ field: "name", message: `'${name}' is not an endpoint name ([A-Za-z0-9_-]{1,63})` });
    }
    const lookup = new ModelLookup(this.o.registry);
    const checked = await validateConfig(lookup, body.config ?? {}, "config");
    problems.push(...checked.problems);
    if (problems.length || !checked.config || typeof name !== "string") throw configError(problems);

    const now = Date.now();
    const { name: _n, config: _c, ...extra } = body;
    // Stored with defaults filled in (a limit without `key` counts for the whole endpoint), as GET shows them.
    if (parsed.data?.rate_limits) extra.rate_limits = parsed.data.rate_limits;
    const record: EndpointRecord = {
      name,
      id: randomUUID().replaceAll("-", ""),
      creator: msg?.headers?.get(H.user) || "switchyard",
      creation_timestamp: now,
      last_updated_timestamp: now,
      extra,
      config: null,
      config_version: 0,
      pending_config: checked.config,
      pending_config_version: 1,
      pending_start_time: now,
      state: { ready: "NOT_READY", config_update: "IN_PROGRESS", message: "" },
      resolved: {},
      rejected: {},
      deleted: false,
    };
    try {
      await this.o.stores.endpoints.create(keys.endpoint(name), JSON.stringify(record));
    } catch (err) {
      if (await readRecord(this.o.stores, name).catch(() => undefined)) {
        throw new SwitchyardError("RESOURCE_ALREADY_EXISTS", `endpoint '${name}' already exists`);
      }
      throw err;
    }
    this.o.log.info({ endpoint: name }, "endpoint created");
    return this.view(record, lookup);
  }

  async update(body: Record<string, unknown>): Promise<EndpointView> {
    const name = this.nameOf(body);
    const { name: _n, ...rest } = body;
    // `{"name", "config": {...}}`, or the PUT .../config body itself next to the name.
    const input = "config" in rest && Object.keys(rest).length === 1 ? rest.config : rest;
    await this.existing(name);
    const canary = await activeCanaryConflict(this.o.stores, name);
    if (canary) throw canary;
    const lookup = new ModelLookup(this.o.registry);
    const checked = await validateConfig(lookup, input, "config");
    if (!checked.config) throw configError(checked.problems);
    const { value: next } = await casUpdate(
      this.o.stores.endpoints,
      keys.endpoint(name),
      EndpointRecordSchema,
      (record): EndpointRecord => {
        if (!record || record.deleted) throw notFound(`endpoint '${name}' does not exist`);
        if (record.state.config_update === "IN_PROGRESS") {
          throw new SwitchyardError(
            "RESOURCE_CONFLICT",
            `endpoint '${name}' has an update in progress (config version ${record.pending_config_version}); ` +
              "wait until it completes or fails",
          );
        }
        const now = Date.now();
        const capture = updatedAutoCapture(
          name,
          record.config?.auto_capture_config,
          checked.config.auto_capture_config,
        );
        return {
          ...record,
          last_updated_timestamp: now,
          pending_config: { ...checked.config, ...(capture ? { auto_capture_config: capture } : {}) },
          pending_config_version: record.config_version + 1,
          pending_start_time: now,
          state: { ...record.state, config_update: "IN_PROGRESS", message: "" },
        };
      },
      { what: `endpoint '${name}'` },
    );
    this.o.log.info(
      { endpoint: name, configVersion: next.pending_config_version },
      "endpoint update accepted",
    );
    return this.view(next, lookup);
  }

  /**
   * Databricks' `PUT /serving-endpoints/{name}/rate-limits`: replaces the endpoint's `rate_limits` (an empty
   * list removes them). Routers see the change through their watch of the endpoints bucket; it never starts
   * a rollout, so it is allowed while one runs.
   */
  async putRateLimits(body: Record<string, unknown>): Promise<{ rate_limits: unknown[] }> {
    const name = this.nameOf(body);
    if (!Array.isArray(body.rate_limits)) {
      throw invalid(
        `rate_limits: expected a list of {"calls","key","renewal_period"}, got ${kindOf(body.rate_limits)}`,
      );
    }
    const checked = parseRateLimits(body.rate_limits);
    if (!checked.limits) {
      throw invalid(checked.problems.map((p) => `${p.field}: ${p.message}`).join("; "));
    }
    const limits = checked.limits;
    await this.existing(name);
    await casUpdate(
      this.o.stores.endpoints,
      keys.endpoint(name),
      EndpointRecordSchema,
      (record): EndpointRecord => {
        if (!record || record.deleted) throw notFound(`endpoint '${name}' does not exist`);
        const { rate_limits: _old, ...extra } = record.extra;
        return {
          ...record,
          last_updated_timestamp: Date.now(),
          extra: limits.length ? { ...extra, rate_limits: limits } : extra,
        };
      },
      { what: `endpoint '${name}'` },
    );
    this.o.log.info({ endpoint: name, rateLimits: limits }, "endpoint rate limits set");
    return { rate_limits: limits };
  }

  async get(body: Record<string, unknown>): Promise<EndpointView> {
    const { record } = await this.existing(this.nameOf(body));
    return this.view(record, new ModelLookup(this.o.registry));
  }

  async list(): Promise<{ endpoints: EndpointView[] }> {
    const all = await readAll(this.o.stores.endpoints, ">", EndpointRecordSchema, "endpoint record");
    const lookup = new ModelLookup(this.o.registry);
    const live = all.filter((r) => !r.value.deleted).sort((a, b) => (a.value.name < b.value.name ? -1 : 1));
    return { endpoints: await Promise.all(live.map((r) => this.view(r.value, lookup))) };
  }

  async delete(body: Record<string, unknown>): Promise<Record<string, never>> {
    const name = this.nameOf(body);
    await casUpdate(
      this.o.stores.endpoints,
      keys.endpoint(name),
      EndpointRecordSchema,
      (record) => {
        if (!record || record.deleted) throw notFound(`endpoint '${name}' does not exist`);
        return { ...record, deleted: true, last_updated_timestamp: Date.now() };
      },
      { what: `endpoint '${name}'` },
    );
    // Best effort here; the leader finishes the job if this process dies midway.
    await cleanupEndpoint(this.o.stores, name).catch((err: unknown) =>
      this.o.log.warn({ err, endpoint: name }, "endpoint cleanup left for the leader"),
    );
    this.o.log.info({ endpoint: name }, "endpoint deleted");
    return {};
  }

  async createSchedule(body: Record<string, unknown>): Promise<ScheduleView> {
    const now = Date.now();
    const record = newSchedule(body, now);
    try {
      await this.o.stores.jobs.create(jobKeys.schedule(record.name), JSON.stringify(record));
    } catch (err) {
      if (await this.readSchedule(record.name).catch(() => undefined)) {
        throw new SwitchyardError("RESOURCE_ALREADY_EXISTS", `schedule '${record.name}' already exists`);
      }
      throw err;
    }
    this.o.log.info({ schedule: record.name, cron: record.cron, tz: record.tz }, "schedule created");
    return scheduleView(record, now);
  }

  async getSchedule(body: Record<string, unknown>): Promise<ScheduleView> {
    return scheduleView(await this.existingSchedule(body), Date.now());
  }

  async listSchedules(): Promise<{ schedules: ScheduleView[] }> {
    const all = await readAll(this.o.stores.jobs, jobKeys.allSchedules, BatchSchedule, "batch schedule");
    const now = Date.now();
    const sorted = all.map((s) => s.value).sort((a, b) => (a.name < b.name ? -1 : 1));
    return { schedules: sorted.map((s) => scheduleView(s, now)) };
  }

  /** Deletes the schedule; jobs it submitted are ordinary jobs and stay. */
  async deleteSchedule(body: Record<string, unknown>): Promise<Record<string, never>> {
    const { name } = await this.existingSchedule(body);
    await this.o.stores.jobs.delete(jobKeys.schedule(name));
    this.o.log.info({ schedule: name }, "schedule deleted");
    return {};
  }

  private async readSchedule(name: string): Promise<BatchSchedule | undefined> {
    const found = await readValue(
      this.o.stores.jobs,
      jobKeys.schedule(name),
      BatchSchedule,
      `schedule '${name}'`,
    );
    return found?.value;
  }

  private async existingSchedule(body: Record<string, unknown>): Promise<BatchSchedule> {
    const name = body.name;
    if (typeof name !== "string") throw invalid("name: expected a schedule name");
    assertResourceName(name, "name");
    const found = await this.readSchedule(name);
    if (!found) throw notFound(`schedule '${name}' does not exist`);
    return found;
  }

  private async existing(name: string) {
    const found = await readRecord(this.o.stores, name);
    if (!found || found.record.deleted) {
      throw new SwitchyardError("RESOURCE_DOES_NOT_EXIST", `endpoint '${name}' does not exist`);
    }
    return found;
  }

  /** The GET body: the record plus what is observed of its replicas (versions served, deployment states). */
  private async view(record: EndpointRecord, lookup: ModelLookup): Promise<EndpointView> {
    const [assignments, statusList, nodes, routesEntry, scales, canary] = await Promise.all([
      readAssignments(this.o.stores),
      readAll(this.o.stores.cluster, "replica.*", ReplicaStatus, "replica status"),
      readAll(this.o.stores.liveness, keys.nodes, NodeHeartbeat, "node heartbeat"),
      this.o.stores.cluster.get(keys.routes(record.name)),
      readScales(this.o.stores, record.name),
      canaryOf(this.o.stores, record.name),
    ]);
    const observed = {
      assignments,
      statuses: new Map(statusList.map((s) => [s.value.replica_id, s.value])),
      liveNodes: new Set(nodes.map((n) => n.value.node_id)),
    };
    const routes =
      routesEntry?.operation === "PUT" ? EndpointRoutes.safeParse(routesEntry.json()).data : undefined;
    const obs: EndpointObservation = { config: {}, pending: {} };
    const serving = new Set<string>();
    for (const t of liveTargets(record, routes)) {
      serving.add(t.group);
      const decision = scales.get(keys.scale(record.name, t.served_model));
      obs.config[t.served_model] = servedObservation(
        scaledTarget(t, decision?.desired, true),
        deploymentOf(observed, t),
        decision,
      );
    }
    if (record.pending_config && record.state.config_update === "IN_PROGRESS") {
      try {
        const versions = await resolveVersions(lookup, record.pending_config);
        for (const t of targetsOf(this.o.names, record.name, record.pending_config, versions)) {
          const decision = scales.get(keys.scale(record.name, t.served_model));
          obs.pending[t.served_model] = servedObservation(
            scaledTarget(t, decision?.desired, serving.has(t.group)),
            deploymentOf(observed, t),
            decision,
          );
        }
      } catch (err) {
        for (const s of record.pending_config.served_models) {
          obs.pending[s.name] = {
            deployment: "DEPLOYMENT_FAILED",
            message: String((err as Error).message ?? err),
          };
        }
      }
    }
    return { ...endpointView(record, obs), ...(canary ? { canary } : {}) };
  }
}

/**
 * What the GET body says of one served model: its deployment, replicas ready of desired, and the autoscaler's
 * last decision. A served model scaled to zero is READY: the next request starts a replica (the router holds it
 * meanwhile, up to its deadline).
 */
function servedObservation(
  t: ServedTarget,
  d: ReturnType<typeof deploymentOf>,
  decision: ScaleDecision | undefined,
): ServedObservation {
  const atZero = t.replicas === 0 && d.total === 0;
  return {
    version: t.model_version,
    deployment: atZero ? "DEPLOYMENT_READY" : d.deployment,
    message: atZero ? "scaled to zero: the next request starts a replica" : d.message,
    replicas: { ready: d.ready, desired: t.replicas },
    ...(decision ? { autoscaler: decision } : {}),
  };
}

function jobIdOf(body: Record<string, unknown>): string {
  const id = body.id;
  if (typeof id !== "string" || !/^[A-Za-z0-9_-]{1,63}$/.test(id)) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      `id: expected a batch job id, got ${JSON.stringify(id ?? null)}`,
    );
  }
  return id;
}

function streamNameOf(body: Record<string, unknown>): string {
  const name = body.name;
  if (typeof name !== "string" || !STREAM_NAME.test(name)) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      `name: expected a stream job name (1-64 letters, digits, '_' or '-'), got ${JSON.stringify(name ?? null)}`,
    );
  }
  return name;
}

/** What a JSON value is, for messages that must not echo a client's (possibly huge) input. */
function kindOf(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}
