// The HTTP bridge: Databricks/MLflow-compatible invocations, the management API and Open Inference Protocol v2
// on Fastify, with bearer-token auth. Invocation bodies stay bytes: it never parses them (the replica does).
import type { IncomingMessage } from "node:http";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  BatchApi,
  EndpointsApi,
  type InvokeOptions,
  parseTimeoutMs,
  type Router,
  StreamsApi,
  startCapturingRouter,
} from "@switchyard/client";
import {
  ANONYMOUS_PRINCIPAL,
  CSV_TYPE,
  clusterNames,
  deeperThan,
  H,
  JSON_TYPE,
  MAX_BODY_DEPTH,
  SwitchyardError,
} from "@switchyard/protocol";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { type Logger, pino } from "pino";
import { accessOf, callerIdOf, installAuthz, openRules, ROUTE_RULES, requireRules } from "./authz.js";
import { DEFAULT_BODY_TIMEOUT_MS, registerBodyDeadline } from "./body-deadline.js";
import { registerCanaryRoutes } from "./canary.js";
import { DASHBOARD_PATHS, registerDashboard } from "./dashboard/serve.js";
import {
  errorHeaders,
  RETRY_AFTER_SECONDS,
  statusOf,
  toClientError,
  unsupportedMediaType,
} from "./errors.js";
import { registerFeedbackRoutes } from "./feedback.js";
import { GrantStore } from "./grants.js";
import { registerMetricsRoutes } from "./metrics.js";
import { OipMetadata, parseOipVersion } from "./oip.js";
import { registerPermissionRoutes } from "./permissions.js";
import { registerReadApi } from "./read-api.js";
import { registerRequestLog, requestIdOf } from "./request-log.js";
import { TokenStore } from "./tokens.js";

export interface BridgeOptions {
  nc: NatsConnection;
  /** Cluster name (default `sy`). */
  cluster?: string;
  /** Require `Authorization: Bearer <token>` on every route but `/v2/health/*` and the dashboard's files. */
  auth: boolean;
  /** Largest request body in bytes (default 16 MiB); larger → 413 REQUEST_TOO_LARGE. */
  bodyLimit?: number;
  /** How long a client may take to send a request body (default 30 s); slower → 408 and the socket closed. */
  bodyTimeoutMs?: number;
  /** Where errors and requests are logged, one JSON line each (default: pino at level warn: failures only). */
  logger?: Logger;
  /** A router to share (e.g. with the invoke actor in the same process); by default the bridge starts its own. */
  router?: Router;
  /**
   * Requests this bridge holds at once (default 4096); beyond it a request gets an immediate 503
   * TEMPORARILY_UNAVAILABLE with Retry-After, before its body is read, instead of queueing without bound.
   */
  maxInFlight?: number;
}

export const DEFAULT_BODY_LIMIT = 16 * 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 4096;

/** Reply headers copied from the replica's reply to the HTTP response (the first four have fallbacks). */
const FORWARDED_REPLY_HEADERS: ReadonlySet<string> = new Set([
  H.requestId,
  H.servedModel,
  H.modelName,
  H.modelVersion,
  H.queueUs,
  H.computeUs,
  H.batchSize,
]);

type NameParams = { name: string };
type IdParams = { id: string };
type ServedParams = { name: string; served: string };
type VersionParams = { name: string; version: string };

function mediaType(req: FastifyRequest): string {
  const ct = req.headers["content-type"];
  if (!ct) return "";
  if (ct === JSON_TYPE) return ct; // what nearly every client sends: nothing to trim
  const semi = ct.indexOf(";");
  return (semi < 0 ? ct : ct.slice(0, semi)).trim().toLowerCase();
}

/** True when the first non-blank byte is `{`: the cheap test that a JSON body is an object. */
function startsWithBrace(body: Buffer): boolean {
  for (let i = 0; i < body.length; i++) {
    const b = body[i];
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b;
  }
  return false;
}

/** A request URL without its query string. */
function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** A request's body parsed as JSON (any value), whatever its Content-Type. */
function jsonValue(req: FastifyRequest): unknown {
  const body = req.body as Buffer | undefined;
  if (!body || body.length === 0) throw new SwitchyardError("BAD_REQUEST", "the request body is empty");
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new SwitchyardError("BAD_REQUEST", `the request body is not valid JSON: ${(err as Error).message}`);
  }
  // The APIs behind these routes validate and copy bodies recursively: bound the nesting before they run.
  if (deeperThan(value, MAX_BODY_DEPTH)) {
    throw new SwitchyardError(
      "BAD_REQUEST",
      `the request body nests deeper than ${MAX_BODY_DEPTH} levels, the most a management request may`,
    );
  }
  return value;
}

/**
 * A management request's JSON body, whatever its Content-Type: Databricks' REST API reads JSON either way,
 * and users' `curl -d '{…}'` snippets send application/x-www-form-urlencoded.
 */
function jsonBody(req: FastifyRequest): Record<string, unknown> {
  const value = jsonValue(req);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new SwitchyardError("BAD_REQUEST", "the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

const routesByApp = new WeakMap<FastifyInstance, string[]>();

/** `METHOD path` of every route a bridge registered (HEAD aside): what authz.ts's table must cover exactly. */
export function registeredRoutes(app: FastifyInstance): string[] {
  return routesByApp.get(app) ?? [];
}

/** Creates the bridge (not listening yet); closing it stops what it started, never the NATS connection. */
export async function createBridge(opts: BridgeOptions): Promise<FastifyInstance> {
  const { nc } = opts;
  const names = clusterNames(opts.cluster);
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!Number.isSafeInteger(bodyLimit) || bodyLimit <= 0) {
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", "bodyLimit must be a positive integer of bytes");
  }
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight <= 0) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      "maxInFlight must be a positive integer of requests",
    );
  }
  const bodyTimeoutMs = opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  if (!Number.isSafeInteger(bodyTimeoutMs) || bodyTimeoutMs <= 0) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      "bodyTimeoutMs must be a positive integer of milliseconds",
    );
  }
  const log = opts.logger ?? pino({ level: "warn", name: "switchyard-bridge" });
  const router =
    opts.router ??
    (await startCapturingRouter(nc, { cluster: names.cluster, logger: log, stats: { role: "bridge" } }))
      .router;
  const tokens = opts.auth ? await TokenStore.open(nc, { cluster: names.cluster }) : undefined;
  const grants = opts.auth ? await GrantStore.open(nc, { cluster: names.cluster }) : undefined;
  const api = new EndpointsApi(nc, names);
  const batch = new BatchApi(nc, names);
  const streams = new StreamsApi(nc, names);
  const oip = new OipMetadata(nc, names.cluster);

  let natsUp = !nc.isClosed();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") natsUp = false;
      else if (s.type === "reconnect") natsUp = true;
    }
  })().catch(() => {});

  const app = Fastify({ logger: false, bodyLimit, return503OnClosing: true, genReqId: requestIdOf });
  registerRequestLog(app, log);
  // Every route needs a rule in authz.ts: one registered without is refused here, so the bridge does not start.
  const rules = { ...ROUTE_RULES, ...openRules(DASHBOARD_PATHS) };
  routesByApp.set(app, requireRules(app, rules));
  registerBodyDeadline(app, bodyTimeoutMs);

  app.addHook("onClose", async () => {
    tokens?.close();
    grants?.close();
    if (!opts.router) await router.close();
  });

  // Bodies stay Buffers: invocations forward them as they came; management routes parse their own.
  app.removeAllContentTypeParsers();
  // Every media type is read as bytes here; each route decides what it accepts (invocations: JSON or CSV).
  const asBytes = (_req: FastifyRequest, body: Buffer, done: (err: null, body: Buffer) => void) => {
    done(null, body);
  };
  // Named for the invocations' two types too: Fastify caches the parser of a named type per Content-Type
  // value, while the catch-all is looked for again (the header parsed) on every request.
  app.addContentTypeParser([JSON_TYPE, CSV_TYPE], { parseAs: "buffer" }, asBytes);
  app.addContentTypeParser("*", { parseAs: "buffer" }, asBytes);

  app.setErrorHandler(async (err, req, reply) => {
    const { error, unexpected } = toClientError(err, { bodyLimit });
    if (unexpected) log.error({ err, method: req.method, url: req.url }, "request failed");
    // A client still uploading would see its connection closed (EPIPE in fetch or requests) instead of our
    // 413: read and discard the rest of the body first, up to a bound, so the answer reaches it.
    if (error.status === 413) await discardBody(req.raw, DISCARD_LIMIT_FACTOR * bodyLimit);
    return reply.code(error.status).headers(errorHeaders(error)).send(JSON.stringify(error.toBody()));
  });

  // The overload guard runs first of all hooks: a bridge at its bound answers in microseconds, reading nothing.
  // Health probes are exempt, so an orchestrator does not restart a bridge for being busy.
  let inFlight = 0;
  // One function for every request, not a closure each.
  const release = () => {
    inFlight--;
  };
  app.addHook("onRequest", (req, reply, done) => {
    if (req.url.startsWith("/v2/health/")) return done();
    if (inFlight >= maxInFlight) {
      return done(
        new SwitchyardError(
          "TEMPORARILY_UNAVAILABLE",
          `this bridge holds ${maxInFlight} requests already; retry shortly`,
        ),
      );
    }
    inFlight++;
    // The response's `close` comes once, whether it was sent or the client went away first.
    reply.raw.once("close", release);
    done();
  });

  app.setNotFoundHandler((req) => {
    throw new SwitchyardError("RESOURCE_DOES_NOT_EXIST", `no such API: ${req.method} ${pathOf(req.url)}`);
  });

  if (tokens && grants) installAuthz(app, { tokens, grants, rules });

  /** Who a `key: user` rate limit counts: the verified token's id, or one shared principal with auth off. */
  function principalOf(req: FastifyRequest): string {
    return callerIdOf(req) ?? ANONYMOUS_PRINCIPAL;
  }

  async function invoke(
    req: FastifyRequest,
    reply: FastifyReply,
    endpoint: string,
    route: Omit<InvokeOptions, "deadlineMs" | "routeKey">,
    oipFormat: boolean,
  ): Promise<FastifyReply> {
    const type = mediaType(req);
    const body = req.body as Buffer | undefined;
    if (!body || body.length === 0) throw new SwitchyardError("BAD_REQUEST", "the request body is empty");
    const json = type === JSON_TYPE;
    if (!json && (oipFormat || type !== CSV_TYPE)) throw unsupportedMediaType(header(req, "content-type"));
    if (json && !startsWithBrace(body)) {
      throw new SwitchyardError(
        "BAD_REQUEST",
        "Invalid input. The input must be a JSON object (a dictionary with exactly one of " +
          "'dataframe_split', 'dataframe_records', 'instances', 'inputs'" +
          (oipFormat ? ", or an Open Inference Protocol request with 'inputs'" : "") +
          ").",
      );
    }
    const h = natsHeaders();
    h.append(H.contentType, json ? JSON_TYPE : CSV_TYPE);
    h.append(H.requestId, req.id);
    if (oipFormat) h.append(H.format, "oip");
    const timeoutMs = parseTimeoutMs(header(req, H.timeoutMs));
    await router.admit(endpoint, principalOf(req));
    const result = await router.invoke(endpoint, body, h, {
      deadlineMs: Date.now() + timeoutMs,
      routeKey: header(req, H.routeKey),
      servedModel: route.servedModel,
      modelVersion: route.modelVersion,
    });
    const out: Record<string, string> = { "content-type": JSON_TYPE };
    // One pass over the reply's headers (each `get` of nats.js lists and filters every key again).
    if (result.headers) {
      for (const [name, values] of result.headers) {
        const v = values[0];
        if (v && FORWARDED_REPLY_HEADERS.has(name)) out[name] = v;
      }
    }
    out[H.requestId] ??= result.requestId;
    out[H.servedModel] ??= result.route.served_model_name;
    out[H.modelName] ??= result.route.model_name;
    out[H.modelVersion] ??= String(result.route.model_version);
    let status = 200;
    if (result.errorCode) {
      status = statusOf(result.errorCode);
      out[H.errorCode] = result.errorCode;
      if (status === 503) out["retry-after"] = RETRY_AFTER_SECONDS;
    }
    const data = result.data;
    return reply
      .code(status)
      .headers(out)
      .send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  // --- Invocations (Databricks / MLflow) ---
  app.post<{ Params: NameParams }>("/serving-endpoints/:name/invocations", (req, reply) =>
    invoke(req, reply, req.params.name, {}, false),
  );
  app.post<{ Params: ServedParams }>(
    "/serving-endpoints/:name/served-models/:served/invocations",
    (req, reply) => invoke(req, reply, req.params.name, { servedModel: req.params.served }, false),
  );

  // --- Management (Databricks paths and bodies), forwarded to the coordinators' NATS API ---
  app.post("/api/2.0/serving-endpoints", async (req) => {
    const body = jsonBody(req);
    const caller = accessOf(req);
    return api.create(body, caller ? { user: `token:${caller.id}` } : {});
  });
  // authz.ts trims the list to the endpoints the token may view.
  app.get("/api/2.0/serving-endpoints", async () => ({ endpoints: await api.list() }));
  app.get<{ Params: NameParams }>("/api/2.0/serving-endpoints/:name", async (req) =>
    api.get(req.params.name),
  );
  app.delete<{ Params: NameParams }>("/api/2.0/serving-endpoints/:name", async (req) => {
    await api.delete(req.params.name);
    // The coordinator drops them too (any delete path); here so this bridge's answer leaves nothing behind.
    await grants?.delete(req.params.name);
    return {};
  });
  app.put<{ Params: NameParams }>("/api/2.0/serving-endpoints/:name/config", async (req) =>
    api.update(req.params.name, jsonBody(req)),
  );

  // --- Databricks permissions of serving endpoints (grants naming tokens) ---
  if (grants) registerPermissionRoutes(app, { api, grants, jsonBody });
  app.put<{ Params: NameParams }>("/api/2.0/serving-endpoints/:name/rate-limits", async (req) =>
    api.putRateLimits(req.params.name, jsonBody(req).rate_limits),
  );

  // --- Switchyard's own resources: batch jobs (the bodies of `switchyard batch submit`) ---
  app.post("/api/2.0/switchyard/batch/jobs", async (req) => batch.submit(jsonBody(req) as never));
  app.get("/api/2.0/switchyard/batch/jobs", async () => ({ jobs: await batch.list() }));
  app.get<{ Params: IdParams }>("/api/2.0/switchyard/batch/jobs/:id", async (req) =>
    batch.get(req.params.id),
  );
  app.post<{ Params: IdParams }>("/api/2.0/switchyard/batch/jobs/:id/cancel", async (req) =>
    batch.cancel(req.params.id),
  );

  // --- Stream jobs (the bodies of `switchyard stream create`) ---
  app.post("/api/2.0/switchyard/streams", async (req) => streams.create(jsonBody(req) as never));
  app.get("/api/2.0/switchyard/streams", async () => ({ streams: await streams.list() }));
  app.get<{ Params: NameParams }>("/api/2.0/switchyard/streams/:name", async (req) =>
    streams.get(req.params.name),
  );
  app.post<{ Params: NameParams }>("/api/2.0/switchyard/streams/:name/stop", async (req) =>
    streams.stop(req.params.name),
  );
  app.post<{ Params: NameParams }>("/api/2.0/switchyard/streams/:name/start", async (req) =>
    streams.start(req.params.name),
  );
  app.delete<{ Params: NameParams }>("/api/2.0/switchyard/streams/:name", async (req) => {
    await streams.delete(req.params.name);
    return {};
  });

  // --- Staged canaries: /api/2.0/switchyard/endpoints/{name}/rollout ---
  registerCanaryRoutes(app, { nc, names, jsonBody });
  // --- Feedback labels, joined by the coordinators to captured predictions (live accuracy) ---
  registerFeedbackRoutes(app, { nc, names, api, body: jsonValue });

  // --- Metrics: Prometheus text and the JSON summary ---
  registerMetricsRoutes(app, { nc, names, api, batch, streams, log });

  // --- Read APIs and the dashboard at `/` ---
  await registerReadApi(app, { nc, names });
  registerDashboard(app);

  // --- Open Inference Protocol v2 ---
  app.get("/v2/health/live", async () => ({ live: true }));
  app.get("/v2/health/ready", async (_req, reply) => {
    const ready = natsUp && !nc.isClosed();
    if (!ready) void reply.code(503).header("retry-after", RETRY_AFTER_SECONDS);
    return { ready };
  });

  const metadata = async (endpoint: string, version: string | undefined) => {
    const v = version === undefined ? undefined : parseOipVersion(endpoint, version);
    const routes = await router.lookup(endpoint);
    if (!routes || routes.routes.length === 0) {
      throw new SwitchyardError(
        "TEMPORARILY_UNAVAILABLE",
        `endpoint '${endpoint}' has no ready served model yet`,
      );
    }
    return oip.metadata(routes, v);
  };
  const modelReady = async (endpoint: string, version: string | undefined, reply: FastifyReply) => {
    const v = version === undefined ? undefined : parseOipVersion(endpoint, version);
    const routes = await router.lookup(endpoint);
    const ready = routes?.routes.some((r) => v === undefined || r.model_version === v) ?? false;
    if (!ready) void reply.code(503).header("retry-after", RETRY_AFTER_SECONDS);
    return { name: endpoint, ready };
  };
  app.get<{ Params: NameParams }>("/v2/models/:name", (req) => metadata(req.params.name, undefined));
  app.get<{ Params: VersionParams }>("/v2/models/:name/versions/:version", (req) =>
    metadata(req.params.name, req.params.version),
  );
  app.get<{ Params: NameParams }>("/v2/models/:name/ready", (req, reply) =>
    modelReady(req.params.name, undefined, reply),
  );
  app.get<{ Params: VersionParams }>("/v2/models/:name/versions/:version/ready", (req, reply) =>
    modelReady(req.params.name, req.params.version, reply),
  );
  app.post<{ Params: NameParams }>("/v2/models/:name/infer", (req, reply) =>
    invoke(req, reply, req.params.name, {}, true),
  );
  app.post<{ Params: VersionParams }>("/v2/models/:name/versions/:version/infer", (req, reply) =>
    invoke(
      req,
      reply,
      req.params.name,
      { modelVersion: parseOipVersion(req.params.name, req.params.version) },
      true,
    ),
  );

  return app;
}

export interface RunningBridge {
  app: FastifyInstance;
  /** `http://host:port` the bridge listens on. */
  url: string;
  close(): Promise<void>;
}

/** Creates the bridge and listens (port 0 picks a free port). */
export async function listenBridge(
  opts: BridgeOptions & { port?: number; host?: string },
): Promise<RunningBridge> {
  const app = await createBridge(opts);
  const host = opts.host ?? "127.0.0.1";
  try {
    await app.listen({ port: opts.port ?? 0, host });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : (opts.port ?? 0);
  const shownHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  return { app, url: `http://${shownHost}:${port}`, close: () => app.close() };
}

/** How much of a too-large body the bridge reads (and drops) so the client can read its 413. */
const DISCARD_LIMIT_FACTOR = 4;

function discardBody(raw: IncomingMessage, limit: number): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const finish = () => {
      raw.off("data", onData);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > limit) finish();
    };
    raw.on("data", onData);
    raw.once("end", finish);
    raw.once("error", finish);
    raw.once("close", finish);
    raw.resume();
  });
}
