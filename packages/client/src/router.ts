// The router: picks a served model of an endpoint by its live traffic split and sends the request bytes to
// that served model's queue group, with a deadline, one retry on a retryable error, a wait while nothing
// answers yet, and a re-send of what was in flight on a served model when a node agent reports one of its replicas
// dead or a replica reports it lost its NATS server, and of everything in flight when the router's own connection
// moves to another server. It never parses request or reply bodies: this runs once per request in the bridge.
import { randomUUID } from "node:crypto";
import type { KV, KvEntry } from "@nats-io/kv";
import {
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
  type QueuedIterator,
  type Subscription,
} from "@nats-io/transport-node";
import { onReconnect, openBucket } from "@switchyard/nats";
import {
  type ClusterNames,
  clusterNames,
  DEFAULT_TIMEOUT_MS,
  EndpointRoutes,
  ERROR_CATALOG,
  H,
  headerBlockBytes,
  isErrorCode,
  isResourceName,
  keys,
  type LiveRoute,
  notFound,
  type RateLimit,
  RateLimits,
  ReplicaDown,
  SwitchyardError,
  subjectToken,
} from "@switchyard/protocol";
import { Coalescer, NoResponders, ReplyTimeout } from "./coalescer.js";
import { RateLimiter } from "./rate-limiter.js";
import { RouterStats, type RouterStatsOptions } from "./router-stats.js";
import { ShadowMirror } from "./shadow.js";
import { buildSplit, pickRoute, routeKeyPoint, type TrafficSplit } from "./split.js";

export interface InvokeOptions {
  /** Absolute deadline, epoch milliseconds (default: now + 30 s). Sent to the replica as `x-switchyard-deadline`. */
  deadlineMs?: number;
  /** Sticky routing: the same key lands on the same served model while the routes do not change. */
  routeKey?: string;
  /** Query this served model only, bypassing the split (it may have traffic_percentage 0). */
  servedModel?: string;
  /** Query the served model serving this model version (Open Inference Protocol `/versions/{v}`). */
  modelVersion?: number;
}

export interface InvokeResult {
  /** The reply body as the replica sent it (JSON, or msgpack for msgpack requests). */
  data: Uint8Array;
  /** The reply headers (`x-served-model`, `x-model-name`, `x-model-version`, …). */
  headers: MsgHdrs | undefined;
  /** The catalog code when the reply is an error (body `{"error_code","message"}`); undefined on success. */
  errorCode: string | undefined;
  requestId: string;
  /** The route the request went to. */
  route: LiveRoute;
}

export interface RouterLogger {
  warn(obj: object, msg: string): void;
  /** Requests sent again after a replica or a NATS server was lost (a pino logger has it). */
  info?(obj: object, msg: string): void;
}

/** What became of one invocation, for observers (metrics, inference tables). */
export interface InvokeOutcome {
  endpoint: string;
  requestId: string;
  /** The served model the request went to; undefined when the router failed it before choosing one. */
  route: LiveRoute | undefined;
  /** Epoch ms the router received the request. */
  startedAt: number;
  /** From receiving the request to its reply or error, in µs. */
  durationUs: number;
  /** Catalog code of an error reply or of an error the router decided; undefined on success. */
  errorCode: string | undefined;
  /** The error's message when the router decided it (the reply body carries it otherwise). */
  errorMessage: string | undefined;
  request: Uint8Array;
  requestHeaders: MsgHdrs;
  reply: Uint8Array | undefined;
  replyHeaders: MsgHdrs | undefined;
  /** Whether the request had to wait for a replica (none answering: starting, or scaled to zero). */
  held: boolean;
}

/**
 * Sees every invocation of a router once it finished, and requests while they wait for a replica. Called on
 * the hot path: an observer must not block (queue work and return).
 */
export interface InvokeObserver {
  observe(outcome: InvokeOutcome): void;
  /**
   * A shadow served model's reply to a mirror of a request (`route` the shadow's), told after the primary's own
   * `observe`. Its `requestHeaders` are the primary outcome's object, so an observer can follow what it decided
   * for the primary (the inference table captures a mirror only when it captured the primary).
   */
  observeShadow?(outcome: InvokeOutcome): void;
  /** A request started waiting because no replica of `route` answers. */
  holding?(endpoint: string, route: LiveRoute): void;
  /** …and stopped waiting (answered, failed, or sent elsewhere). */
  released?(endpoint: string, route: LiveRoute): void;
}

export interface RouterOptions {
  /** Cluster name (default `sy`). */
  cluster?: string;
  logger?: RouterLogger;
  /** Told of every invocation (the bridge's metrics and inference tables). */
  observers?: InvokeObserver[];
  /** Publish this router's counts on `<c>.stats.router.<id>` (stopped when the router closes). */
  stats?: RouterStatsOptions;
}

/** First wait after "no responders" or "no routes yet"; doubles up to MAX_BACKOFF_MS, cut short by a routes change. */
export const INITIAL_BACKOFF_MS = 20;
export const MAX_BACKOFF_MS = 500;
/**
 * Longest wait between tries while a route has no replica answering (starting, or scaled to zero): a replica
 * that just subscribed is found within this, which is most of what a cold start costs beyond the start itself.
 */
export const HELD_RETRY_MS = 50;
/** A router asks the autoscaler for a replica of a held route at most this often. */
export const WAKE_INTERVAL_MS = 250;

interface EndpointState {
  readonly record: EndpointRoutes;
  readonly split: TrafficSplit;
  readonly revision: number;
}

const ROUTES_PREFIX = "routes.";
const utf8 = new TextDecoder();

function isRetryable(code: string): boolean {
  return isErrorCode(code) && ERROR_CATALOG[code].retryable;
}

const deadlineExceeded = (message: string) => new SwitchyardError("DEADLINE_EXCEEDED", message);

export class Router {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly waiters = new Set<() => void>();
  /** When this router last asked for a replica of a route (by subject). */
  private readonly wakes = new Map<string, number>();
  /** The `rate_limits` of endpoints that have any, by name, as the endpoints watch last saw them. */
  private readonly rateLimits = new Map<string, readonly RateLimit[]>();
  private readonly limiter: RateLimiter;
  private readonly coalescer: Coalescer;
  /**
   * Notices of replicas that died (from their node agent) or lost their NATS server (from the replica): what was
   * in flight on their route subject goes again.
   */
  private readonly downs: Subscription;
  /** Stops re-sending on this router's own reconnects. */
  private readonly stopReconnects: () => void;
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    readonly names: ClusterNames,
    private readonly clusterKv: KV,
    private readonly endpointsKv: KV,
    private readonly watch: QueuedIterator<KvEntry>,
    private readonly endpointsWatch: QueuedIterator<KvEntry>,
    private readonly logger: RouterLogger | undefined,
    private readonly observers: InvokeObserver[],
    private readonly stats: RouterStats | undefined,
    private readonly shadow: ShadowMirror,
  ) {
    this.limiter = new RateLimiter(nc, names);
    this.coalescer = new Coalescer(nc);
    this.downs = nc.subscribe(names.subjects.allReplicaDown, {
      callback: (err, msg) => {
        if (!err) this.onReplicaDown(msg.data);
      },
    });
    this.stopReconnects = onReconnect(nc, (server) => this.onReconnect(server));
    void this.follow();
    void this.followLimits().catch((err: unknown) =>
      this.logger?.warn({ err }, "stopped following endpoint rate limits"),
    );
  }

  private onReplicaDown(data: Uint8Array): void {
    let down: ReplicaDown;
    try {
      down = ReplicaDown.parse(JSON.parse(utf8.decode(data)));
    } catch (err) {
      this.logger?.warn({ err }, "ignoring a replica-down notice that does not parse");
      return;
    }
    const count = this.coalescer.resend(down.subject);
    if (count > 0) {
      this.logger?.info?.(
        {
          event: "resend",
          count,
          subject: down.subject,
          replicaId: down.replica_id,
          nodeId: down.node_id,
          reason: down.reason,
        },
        `sent ${count} request(s) in flight on served model '${down.served_model}' again: ` +
          `replica ${down.replica_id} on node ${down.node_id}: ${down.reason}`,
      );
    }
  }

  /**
   * This router's connection moved to another server: its reply subscription moved with it, so a reply routed
   * through the server it left is gone, as is a request that was passing through it. Everything in flight goes
   * again (requests published while disconnected were buffered and reached the new server, and go twice).
   */
  private onReconnect(server: string): void {
    const count = this.coalescer.resendAll();
    if (count > 0) {
      this.logger?.info?.(
        { event: "resend", count, server, reason: "reconnected" },
        `sent ${count} request(s) in flight again: the router reconnected to NATS (${server})`,
      );
    }
  }

  /** Opens the cluster's buckets and starts watching `routes.*`. */
  static async start(nc: NatsConnection, opts: RouterOptions = {}): Promise<Router> {
    const names = clusterNames(opts.cluster);
    // Opened with the coordinator's settings, in case the router is the first to create them.
    const [clusterKv, endpointsKv] = await Promise.all([
      openBucket(nc, names, "cluster"),
      openBucket(nc, names, "endpoints"),
    ]);
    const [watch, endpointsWatch] = await Promise.all([
      clusterKv.watch({ key: keys.allRoutes }),
      endpointsKv.watch(),
    ]);
    // Shadow traffic follows the routes this router is about to hold (the arrow reads them when it runs).
    let router: Router | undefined;
    const shadow = new ShadowMirror(
      nc,
      (e) => router?.routesOf(e),
      (e, r) => router?.wakeUp(e, r),
      opts.logger,
      (outcome) => router?.notifyShadow(outcome),
    );
    const stats = opts.stats
      ? new RouterStats(nc, names, { ...opts.stats, shadow: () => shadow.snapshot() })
      : undefined;
    const observers = [...(opts.observers ?? []), ...(stats ? [stats] : [])];
    router = new Router(
      nc,
      names,
      clusterKv,
      endpointsKv,
      watch,
      endpointsWatch,
      opts.logger,
      observers,
      stats,
      shadow,
    );
    return router;
  }

  private async follow(): Promise<void> {
    for await (const entry of this.watch) {
      try {
        this.apply(entry);
      } catch (err) {
        this.logger?.warn({ err, key: entry.key }, "ignoring a routes record that does not parse");
      }
    }
  }

  /** Keeps `rateLimits` current from the endpoint records (the API writes `rate_limits` there). */
  private async followLimits(): Promise<void> {
    for await (const entry of this.endpointsWatch) {
      const limits = entry.operation === "PUT" ? rateLimitsOf(entry.value) : undefined;
      if (limits?.length) this.rateLimits.set(entry.key, limits);
      else this.rateLimits.delete(entry.key);
    }
  }

  /**
   * Counts one call of `endpoint` by `principal` against the endpoint's `rate_limits`, shared by every router
   * of the cluster: resolves when admitted, throws REQUEST_LIMIT_EXCEEDED (RateLimitExceeded, with the seconds
   * to the next window) when not. An endpoint without limits, or one that does not exist, is admitted without
   * any I/O: `invoke` answers for it as it would have.
   */
  async admit(endpoint: string, principal: string): Promise<void> {
    // By exact name (record keys are endpoint names): a name that is not one is never limited, only 404'd.
    const limits = this.rateLimits.get(endpoint);
    if (limits) await this.limiter.admit(endpoint, limits, principal);
  }

  private apply(entry: KvEntry): EndpointState | undefined {
    const token = entry.key.slice(ROUTES_PREFIX.length);
    const current = this.endpoints.get(token);
    if (current && current.revision > entry.revision) return current;
    if (entry.operation !== "PUT") {
      this.endpoints.delete(token);
      this.wake();
      return undefined;
    }
    const record = EndpointRoutes.parse(JSON.parse(utf8.decode(entry.value)));
    const state: EndpointState = { record, split: buildSplit(record.routes), revision: entry.revision };
    this.endpoints.set(token, state);
    this.wake();
    return state;
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /** Sleeps `ms`, or less when any endpoint's routes change. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** The live routes of an endpoint as the watch last saw them (no I/O). */
  routesOf(endpoint: string): EndpointRoutes | undefined {
    return this.endpoints.get(subjectToken(endpoint))?.record;
  }

  /**
   * The live routes of an endpoint, reading KV when the watch has not seen any (e.g. right after start).
   * Undefined when the endpoint exists but has no routes yet; RESOURCE_DOES_NOT_EXIST when it does not exist.
   */
  async lookup(endpoint: string): Promise<EndpointRoutes | undefined> {
    return (this.endpoints.get(subjectToken(endpoint)) ?? (await this.slowLookup(endpoint)))?.record;
  }

  private async slowLookup(endpoint: string): Promise<EndpointState | undefined> {
    if (!isResourceName(endpoint)) throw notFound(`endpoint '${endpoint}' does not exist`);
    const entry = await this.clusterKv.get(keys.routes(endpoint));
    if (entry && entry.operation === "PUT") {
      const state = this.apply(entry);
      if (state) return state;
    }
    const record = await this.endpointsKv.get(keys.endpoint(endpoint));
    if (record?.operation !== "PUT" || isDeletedRecord(record.value)) {
      throw notFound(`endpoint '${endpoint}' does not exist`);
    }
    return undefined;
  }

  private choose(state: EndpointState, endpoint: string, point: number, opts: InvokeOptions) {
    const routes = state.record.routes;
    if (routes.length === 0) return undefined;
    if (opts.servedModel !== undefined) {
      for (const r of routes) if (r.served_model_name === opts.servedModel) return r;
      throw notFound(
        `served model '${opts.servedModel}' is not served by endpoint '${endpoint}' ` +
          `(served: ${routes.map((r) => r.served_model_name).join(", ")})`,
      );
    }
    if (opts.modelVersion !== undefined) {
      let best: LiveRoute | undefined;
      for (const r of routes) {
        if (
          r.model_version === opts.modelVersion &&
          (!best || r.traffic_percentage > best.traffic_percentage)
        ) {
          best = r;
        }
      }
      if (best) return best;
      throw notFound(
        `endpoint '${endpoint}' serves no model version ${opts.modelVersion} ` +
          `(serves: ${[...new Set(routes.map((r) => r.model_version))].join(", ")})`,
      );
    }
    return pickRoute(state.split, point >= 0 ? point : Math.random());
  }

  /**
   * Sends `body` to a served model of `endpoint` and returns its reply (an error reply too: `errorCode` set).
   * `headers` (content-type, x-request-id, x-switchyard-format, …) travel with it; the router adds
   * `x-switchyard-deadline` and an `x-request-id` when absent. Throws SwitchyardError for what the router
   * itself decides: RESOURCE_DOES_NOT_EXIST (unknown endpoint or served model), DEADLINE_EXCEEDED.
   */
  invoke(
    endpoint: string,
    body: Uint8Array,
    headers?: MsgHdrs,
    opts: InvokeOptions = {},
  ): Promise<InvokeResult> {
    const h = headers ?? natsHeaders();
    const result = this.observed(endpoint, body, h, opts);
    // Shadow traffic mirrors what the split routes to the primary, not requests aimed at one served model.
    if (!this.closed && opts.servedModel === undefined && opts.modelVersion === undefined) {
      this.shadow.mirror(endpoint, body, h, result);
    }
    return result;
  }

  private async observed(
    endpoint: string,
    body: Uint8Array,
    h: MsgHdrs,
    opts: InvokeOptions,
  ): Promise<InvokeResult> {
    if (this.observers.length === 0) return this.send(endpoint, body, h, opts, undefined);
    const startedAt = Date.now();
    const t0 = performance.now();
    const track: Tracking = { route: undefined, held: undefined, everHeld: false };
    let outcome: InvokeOutcome;
    try {
      const r = await this.send(endpoint, body, h, opts, track);
      outcome = {
        endpoint,
        requestId: r.requestId,
        route: r.route,
        startedAt,
        durationUs: (performance.now() - t0) * 1000,
        errorCode: r.errorCode,
        errorMessage: undefined,
        request: body,
        requestHeaders: h,
        reply: r.data,
        replyHeaders: r.headers,
        held: track.everHeld,
      };
      this.release(endpoint, track);
      this.notify(outcome);
      return r;
    } catch (err) {
      const e = SwitchyardError.from(err);
      this.release(endpoint, track);
      this.notify({
        endpoint,
        requestId: h.get(H.requestId),
        route: track.route,
        startedAt,
        durationUs: (performance.now() - t0) * 1000,
        errorCode: e.code,
        errorMessage: e.message,
        request: body,
        requestHeaders: h,
        reply: undefined,
        replyHeaders: undefined,
        held: track.everHeld,
      });
      throw err;
    }
  }

  private notify(outcome: InvokeOutcome): void {
    for (const o of this.observers) {
      try {
        o.observe(outcome);
      } catch (err) {
        this.logger?.warn({ err }, "an invocation observer failed");
      }
    }
  }

  private notifyShadow(outcome: InvokeOutcome): void {
    for (const o of this.observers) {
      try {
        o.observeShadow?.(outcome);
      } catch (err) {
        this.logger?.warn({ err }, "an invocation observer failed");
      }
    }
  }

  private hold(endpoint: string, route: LiveRoute, track: Tracking): void {
    track.everHeld = true;
    if (track.held === route) return;
    this.release(endpoint, track);
    track.held = route;
    for (const o of this.observers) o.holding?.(endpoint, route);
  }

  private release(endpoint: string, track: Tracking): void {
    const route = track.held;
    if (!route) return;
    track.held = undefined;
    for (const o of this.observers) o.released?.(endpoint, route);
  }

  private async send(
    endpoint: string,
    body: Uint8Array,
    h: MsgHdrs,
    opts: InvokeOptions,
    track: Tracking | undefined,
  ): Promise<InvokeResult> {
    const deadline = opts.deadlineMs ?? Date.now() + DEFAULT_TIMEOUT_MS;
    let requestId = h.get(H.requestId);
    if (!requestId) {
      requestId = randomUUID();
      h.append(H.requestId, requestId);
    }
    h.set(H.deadline, String(deadline));
    checkFitsOneMessage(this.nc, body, h);
    const point = opts.routeKey ? routeKeyPoint(opts.routeKey) : -1;
    const token = subjectToken(endpoint);
    let backoff = INITIAL_BACKOFF_MS;
    let retried = false;
    let pinned: LiveRoute | undefined;
    let waitedFor: string | undefined;

    for (;;) {
      if (this.closed) throw new SwitchyardError("TEMPORARILY_UNAVAILABLE", "the router is closed");
      let route = pinned;
      if (!route) {
        const state = this.endpoints.get(token) ?? (await this.slowLookup(endpoint));
        route = state ? this.choose(state, endpoint, point, opts) : undefined;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw deadlineExceeded(
          waitedFor
            ? `no replica of ${waitedFor} answered before the deadline`
            : `endpoint '${endpoint}' has no ready served model; none became ready before the deadline`,
        );
      }
      if (track) track.route = route;
      if (!route) {
        await this.pause(Math.min(backoff, left));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      try {
        // A retry goes alone: whatever failed it in a batch does not fail it again with others.
        const msg = await this.coalescer.request(route.subject, body, h, deadline, retried);
        const code = msg.headers?.get(H.errorCode) || undefined;
        if (code !== undefined && !retried && isRetryable(code) && deadline - Date.now() > 0) {
          // Once more on the same served model: the queue group hands it to any of its replicas.
          retried = true;
          pinned = route;
          continue;
        }
        return { data: msg.data, headers: msg.headers, errorCode: code, requestId, route };
      } catch (err) {
        if (err instanceof NoResponders) {
          // A replica that is starting, or none at all (scaled to zero): hold the request, ask the autoscaler
          // for a replica and try again soon.
          waitedFor = `served model '${route.served_model_name}' of endpoint '${endpoint}'`;
          if (track) this.hold(endpoint, route, track);
          this.wakeUp(endpoint, route);
          pinned = undefined;
          const wait = Math.min(backoff, HELD_RETRY_MS, deadline - Date.now());
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          if (wait > 0) await this.pause(wait);
          continue;
        }
        if (err instanceof ReplyTimeout) {
          throw deadlineExceeded(
            `served model '${route.served_model_name}' of endpoint '${endpoint}' did not answer before the deadline`,
          );
        }
        if (err instanceof SwitchyardError) throw err;
        throw new SwitchyardError(
          "TEMPORARILY_UNAVAILABLE",
          `NATS request failed: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    }
  }

  /** Asks the autoscaler for a replica of a route nothing answers (it may be scaled to zero). */
  private wakeUp(endpoint: string, route: LiveRoute): void {
    const now = Date.now();
    if (now - (this.wakes.get(route.subject) ?? 0) < WAKE_INTERVAL_MS) return;
    if (this.wakes.size > 1_000) this.wakes.clear(); // subjects of long-retired generations
    this.wakes.set(route.subject, now);
    try {
      this.nc.publish(
        this.names.subjects.scaleWake(endpoint),
        JSON.stringify({ endpoint, served_model: route.served_model_name }),
      );
    } catch (err) {
      // The request keeps waiting either way; the next try asks again.
      this.logger?.warn({ err, endpoint }, "could not publish a scale wake");
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stats?.close();
    this.downs.unsubscribe();
    this.stopReconnects();
    this.coalescer.close();
    this.watch.stop();
    this.endpointsWatch.stop();
    this.wake();
  }
}

/**
 * A request travels to a replica as one NATS message; one larger than the server's max_payload can never be
 * sent, so it is the client's error (413), not a retryable failure of the cluster.
 */
function checkFitsOneMessage(nc: NatsConnection, body: Uint8Array, h: MsgHdrs): void {
  const max = nc.info?.max_payload;
  if (max === undefined) return;
  const size = body.byteLength + headerBlockBytes(h);
  if (size > max) {
    throw new SwitchyardError(
      "REQUEST_TOO_LARGE",
      `the request (${body.byteLength} bytes of body and ${size - body.byteLength} of headers) is larger ` +
        `than the cluster's largest NATS message, max_payload = ${max} bytes`,
    );
  }
}

/** Per-invocation bookkeeping for observers. */
interface Tracking {
  route: LiveRoute | undefined;
  /** The route this request is waiting for now, if any. */
  held: LiveRoute | undefined;
  everHeld: boolean;
}

/** The `rate_limits` of an endpoint record (stored with the create body's other fields), if valid and live. */
function rateLimitsOf(value: Uint8Array): RateLimit[] | undefined {
  try {
    const record = JSON.parse(utf8.decode(value)) as { deleted?: unknown; extra?: { rate_limits?: unknown } };
    if (record.deleted === true) return undefined;
    return RateLimits.safeParse(record.extra?.rate_limits).data;
  } catch {
    return undefined;
  }
}

function isDeletedRecord(value: Uint8Array): boolean {
  try {
    return (JSON.parse(utf8.decode(value)) as { deleted?: unknown }).deleted === true;
  } catch {
    return false;
  }
}
