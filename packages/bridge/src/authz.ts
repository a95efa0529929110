// Who may call which HTTP route: ONE table, keyed by method and Fastify route path, checked in an onRequest hook
// before the body is read. A route registered without a rule fails at registration (so the bridge does not start),
// and test/tokens.test.ts asserts the table and the registered routes match exactly.
//
// Answers: 401 UNAUTHENTICATED for a missing, malformed, revoked or expired token, or one in the query string;
// 403 "Invalid access token." for a well-formed token the cluster never issued (as Databricks);
// 403 PERMISSION_DENIED for a valid token without the scope; and for an endpoint the token may not even view,
// exactly the 404 of an endpoint that does not exist, so no answer reveals which endpoints exist.
import {
  type AccessNeed,
  allows,
  type EndpointGrant,
  endpointLevel,
  notFound,
  SwitchyardError,
} from "@switchyard/protocol";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { GrantStore } from "./grants.js";
import { isTokenShaped, type TokenStore } from "./tokens.js";

type FixedNeed = Exclude<AccessNeed, { endpoint: string }>["kind"];

/** What a route requires. */
export type RouteRule =
  /** No token: health probes and the dashboard's static files (they hold no data). */
  | { open: true }
  /** A valid token holding one of `any` (none listed: any valid token); `filter` trims the answer to what it may view. */
  | { any: FixedNeed[]; filter?: "endpoints" | "prometheus" }
  /** The endpoint named by the `:name` param, at a level; `also`: a scope needed besides. */
  | { endpoint: "view" | "query" | "manage"; also?: FixedNeed };

const open = { open: true } as const;
const anyToken: RouteRule = { any: [] };
const view: RouteRule = { endpoint: "view" };
const query: RouteRule = { endpoint: "query" };
const manage: RouteRule = { endpoint: "manage" };
const jobs: RouteRule = { any: ["jobs"] };
const jobsOrRead: RouteRule = { any: ["jobs", "read"] };
const read: RouteRule = { any: ["read"] };

/** Every route of the bridge: `METHOD path` → rule. HEAD routes follow their GET. */
export const ROUTE_RULES: Readonly<Record<string, RouteRule>> = {
  // Invocations (Databricks / MLflow) and feedback labels for them.
  "POST /serving-endpoints/:name/invocations": query,
  "POST /serving-endpoints/:name/served-models/:served/invocations": query,
  "POST /api/2.0/switchyard/endpoints/:name/feedback": query,
  // Management (Databricks).
  "POST /api/2.0/serving-endpoints": { any: ["manage:endpoints"] },
  "GET /api/2.0/serving-endpoints": { any: [], filter: "endpoints" },
  "GET /api/2.0/serving-endpoints/:name": view,
  "DELETE /api/2.0/serving-endpoints/:name": manage,
  "PUT /api/2.0/serving-endpoints/:name/config": manage,
  "PUT /api/2.0/serving-endpoints/:name/rate-limits": manage,
  "GET /api/2.0/permissions/serving-endpoints/:name": manage,
  "PUT /api/2.0/permissions/serving-endpoints/:name": manage,
  "PATCH /api/2.0/permissions/serving-endpoints/:name": manage,
  "GET /api/2.0/permissions/serving-endpoints/:name/permissionLevels": view,
  // Staged canaries.
  "POST /api/2.0/switchyard/endpoints/:name/rollout": manage,
  "GET /api/2.0/switchyard/endpoints/:name/rollout": view,
  "POST /api/2.0/switchyard/endpoints/:name/rollout/pause": manage,
  "POST /api/2.0/switchyard/endpoints/:name/rollout/resume": manage,
  "POST /api/2.0/switchyard/endpoints/:name/rollout/abort": manage,
  // Batch jobs and streams: `jobs` runs them; `read` (the dashboard) may look.
  "POST /api/2.0/switchyard/batch/jobs": jobs,
  "GET /api/2.0/switchyard/batch/jobs": jobsOrRead,
  "GET /api/2.0/switchyard/batch/jobs/:id": jobsOrRead,
  "POST /api/2.0/switchyard/batch/jobs/:id/cancel": jobs,
  "POST /api/2.0/switchyard/streams": jobs,
  "GET /api/2.0/switchyard/streams": jobsOrRead,
  "GET /api/2.0/switchyard/streams/:name": jobsOrRead,
  "POST /api/2.0/switchyard/streams/:name/stop": jobs,
  "POST /api/2.0/switchyard/streams/:name/start": jobs,
  "DELETE /api/2.0/switchyard/streams/:name": jobs,
  // Metrics and read APIs: `read`, per-endpoint data only for endpoints the token may view.
  "GET /metrics": { any: ["read"], filter: "prometheus" },
  "GET /api/2.0/serving-endpoints/:name/metrics": view,
  "GET /api/2.0/switchyard/metrics": { any: ["read"], filter: "endpoints" },
  "GET /api/2.0/switchyard/metrics/endpoints/:name": { endpoint: "view", also: "read" },
  "GET /api/2.0/switchyard/models": { any: ["read", "manage:models"] },
  "GET /api/2.0/switchyard/models/:name": { any: ["read", "manage:models"] },
  "GET /api/2.0/switchyard/nodes": read,
  // Open Inference Protocol v2: a model is an endpoint.
  "GET /v2/health/live": open,
  "GET /v2/health/ready": open,
  "GET /v2/models/:name": view,
  "GET /v2/models/:name/versions/:version": view,
  "GET /v2/models/:name/ready": view,
  "GET /v2/models/:name/versions/:version/ready": view,
  "POST /v2/models/:name/infer": query,
  "POST /v2/models/:name/versions/:version/infer": query,
};

/** Rules of the dashboard's static files, added by the dashboard module with its exact paths. */
export function openRules(paths: Iterable<string>): Record<string, RouteRule> {
  return Object.fromEntries([...paths].map((p) => [`GET ${p}`, open]));
}

/** What other modules may know of the caller (rate limiting keys on `id`). */
export interface Access {
  id: string;
  name?: string;
  scopes: string[];
}

interface Resolved extends Access {
  grants: EndpointGrant[];
}

// The caller, kept on the request itself (a request decoration, declared up front so every request has the
// same shape): a WeakMap keyed by request cost a hash-table insert and ephemeron work in GC on every request.
const ACCESS = Symbol("switchyard.access");
type WithAccess = { [ACCESS]?: Resolved | null };
const resolvedOf = (req: FastifyRequest) => (req as unknown as WithAccess)[ACCESS] ?? undefined;

/** The authenticated caller of a request; undefined on open routes and on a bridge without auth. */
export function accessOf(req: FastifyRequest): Access | undefined {
  const a = resolvedOf(req);
  return a && { id: a.id, ...(a.name === undefined ? {} : { name: a.name }), scopes: a.scopes };
}

/** The id of a request's authenticated caller (what rate limits key on), without copying its access. */
export function callerIdOf(req: FastifyRequest): string | undefined {
  return resolvedOf(req)?.id;
}

const routeKey = (method: string, url: string) => `${method === "HEAD" ? "GET" : method} ${url}`;

/** The table by method, then route path: two lookups by strings that already exist, no key built per request. */
function ruleLookup(rules: Readonly<Record<string, RouteRule>>) {
  const byMethod = new Map<string, Map<string, RouteRule>>();
  for (const [key, rule] of Object.entries(rules)) {
    const space = key.indexOf(" ");
    const method = key.slice(0, space);
    const paths = byMethod.get(method) ?? new Map<string, RouteRule>();
    paths.set(key.slice(space + 1), rule);
    byMethod.set(method, paths);
  }
  return (method: string, url: string) => byMethod.get(method === "HEAD" ? "GET" : method)?.get(url);
}

/** Rejects, at registration, any route without a rule; returns the `METHOD path` of every route registered. */
export function requireRules(app: FastifyInstance, rules: Readonly<Record<string, RouteRule>>): string[] {
  const registered: string[] = [];
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) {
      if (m === "HEAD") continue;
      const key = routeKey(m, route.url);
      if (!rules[key]) throw new Error(`bridge route ${key} has no authorization rule in authz.ts`);
      registered.push(key);
    }
  });
  return registered;
}

const TOKEN_PARAMS = /[?&](token|access_token)=/i;
const unauthenticated = (why: string) => new SwitchyardError("UNAUTHENTICATED", why);
const hidden = (name: string) => notFound(`endpoint '${name}' does not exist`);
const denied = () => new SwitchyardError("PERMISSION_DENIED", "The token does not allow this operation.");

/** Installs the check of every request and the trimming of list answers. */
export function installAuthz(
  app: FastifyInstance,
  o: { tokens: TokenStore; grants: GrantStore; rules: Readonly<Record<string, RouteRule>> },
): void {
  const ruleOf = ruleLookup(o.rules);
  app.decorateRequest(ACCESS, null);
  app.addHook("onRequest", (req, _reply, done) => {
    try {
      check(req);
      done();
    } catch (err) {
      done(err as Error);
    }
  });

  function check(req: FastifyRequest): void {
    const url = req.routeOptions.url;
    const rule = url === undefined ? anyToken : ruleOf(req.method, url);
    if (rule && "open" in rule) return;
    // A token in a URL ends up in logs and browser history: refused outright, whatever the header says.
    if (TOKEN_PARAMS.test(req.url)) {
      throw unauthenticated(
        "Tokens are not accepted in the query string: send 'Authorization: Bearer <token>'",
      );
    }
    const auth = req.headers.authorization;
    if (!auth?.startsWith("Bearer ") || auth.length <= 7) {
      throw unauthenticated(
        "Credential was not sent or was of an unsupported type for this API: send 'Authorization: Bearer <token>'",
      );
    }
    const token = auth.slice(7).trim();
    if (!isTokenShaped(token))
      throw unauthenticated("The bearer token is malformed: expected 'syt_' and 43 characters");
    const found = o.tokens.check(token);
    if (found.status === "expired") throw unauthenticated("The token has expired.");
    if (found.status === "revoked") throw unauthenticated("The token has been revoked.");
    // As Databricks: a well-formed token the cluster never issued is 403 "Invalid access token."
    if (found.status === "unknown") throw new SwitchyardError("PERMISSION_DENIED", "Invalid access token.");
    const { record } = found;
    const access: Resolved = { id: record.id, scopes: record.scopes, grants: o.grants.grantsOf(record.name) };
    if (record.name !== undefined) access.name = record.name;
    (req as unknown as WithAccess)[ACCESS] = access;
    if (!rule) return; // no such route: the not-found handler answers
    if ("any" in rule) {
      if (rule.any.length > 0 && !rule.any.some((kind) => allows(access.scopes, { kind }, access.grants))) {
        throw denied();
      }
      return;
    }
    const name = (req.params as { name?: string }).name ?? "";
    const level = endpointLevel(access.scopes, name, access.grants);
    if (rule.also && !allows(access.scopes, { kind: rule.also }, access.grants)) throw denied();
    if (level === 0) throw hidden(name);
    if (!allows(access.scopes, { kind: rule.endpoint, endpoint: name }, access.grants)) throw denied();
  }

  const mayView = (req: FastifyRequest, name: unknown) => {
    const a = resolvedOf(req);
    return a !== undefined && typeof name === "string" && endpointLevel(a.scopes, name, a.grants) > 0;
  };

  // Trimming list answers concerns a few read routes: their hooks are attached to those routes alone, so the
  // invocation routes run no hook for it.
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const rule = ruleOf(methods[0] ?? "GET", route.url);
    if (!rule || !("filter" in rule)) return;
    if (rule.filter === "endpoints") {
      route.preSerialization = [...hooksOf(route.preSerialization), trimEndpoints];
    } else {
      route.onSend = [...hooksOf(route.onSend), trimPrometheus];
    }
  });

  async function trimEndpoints(req: FastifyRequest, _reply: FastifyReply, payload: unknown) {
    const body = payload as { endpoints?: unknown };
    if (!body || !Array.isArray(body.endpoints)) return payload;
    return { ...body, endpoints: body.endpoints.filter((e: { name?: unknown }) => mayView(req, e?.name)) };
  }

  async function trimPrometheus(req: FastifyRequest, _reply: FastifyReply, payload: unknown) {
    if (typeof payload !== "string") return payload;
    // Series of endpoints the token may not view are dropped; HELP/TYPE lines and cluster-wide series stay.
    return payload
      .split("\n")
      .filter((line) => {
        const m = /[{,]endpoint="((?:[^"\\]|\\.)*)"/.exec(line);
        return !m || line.startsWith("#") || mayView(req, m[1]);
      })
      .join("\n");
  }
}

/** A route option's hooks as a list (Fastify takes one function or an array). */
function hooksOf<F>(hooks: F | F[] | undefined): F[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
}
