// Request ids and the request log: every HTTP request gets an `x-request-id` (the client's, or a new UUID)
// that travels to the replica and comes back on every reply, errors included; each request is one JSON line
// with requestId, endpoint, servedModel, status and duration, never bodies: at warn when it failed, at debug
// otherwise. Not at info: pino serialising and writing a line costs ~0.2 ms of CPU, which cut the bridge's
// throughput for a small model by a third (`npm run bench -- realtime`, LR at 32 connections: 2.7k against 4.1k
// req/s); `--log-level debug` turns the per-request lines on.
import { randomUUID } from "node:crypto";
import { H, isUsableRequestId } from "@switchyard/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Logger } from "pino";

/** Fastify's `genReqId`: the client's `x-request-id` when it is usable, else a new UUID. */
export function requestIdOf(req: { headers: Record<string, string | string[] | undefined> }): string {
  const v = req.headers[H.requestId];
  return typeof v === "string" && isUsableRequestId(v) ? v : randomUUID();
}

/** Routes whose `:name` is an endpoint. */
const ENDPOINT_ROUTE =
  /^\/(serving-endpoints|api\/2\.0\/serving-endpoints|api\/2\.0\/switchyard\/metrics\/endpoints|v2\/models)\/:name/;

function endpointOf(req: FastifyRequest): string | undefined {
  const route = req.routeOptions.url;
  if (!route || !ENDPOINT_ROUTE.test(route)) return undefined;
  return (req.params as { name?: string }).name;
}

export function registerRequestLog(app: FastifyInstance, log: Logger): void {
  // Both hooks run on every request: callback-style, so they cost no promise, and the log line is built only
  // when it will be written.
  app.addHook("onSend", (req, reply, payload, done) => {
    if (!reply.hasHeader(H.requestId)) void reply.header(H.requestId, req.id);
    done(null, payload);
  });
  app.addHook("onResponse", (req, reply, done) => {
    const status = reply.statusCode;
    if (status < 400 && !log.isLevelEnabled("debug")) return done();
    const servedModel = reply.getHeader(H.servedModel);
    const errorCode = reply.getHeader(H.errorCode);
    const line = {
      requestId: String(reply.getHeader(H.requestId) ?? req.id),
      method: req.method,
      route: req.routeOptions.url ?? req.url.split("?", 1)[0] ?? req.url,
      endpoint: endpointOf(req),
      servedModel: servedModel === undefined ? undefined : String(servedModel),
      status,
      errorCode: errorCode === undefined ? undefined : String(errorCode),
      durationMs: Math.round(reply.elapsedTime * 1000) / 1000,
    };
    if (status >= 400) log.warn(line, "request failed");
    else log.debug(line, "request");
    done();
  });
}
