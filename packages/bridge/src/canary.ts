// Staged canaries over HTTP: start (the body overrides the endpoint's `rollout` section), status, pause, resume
// and abort of `/api/2.0/switchyard/endpoints/{name}/rollout`, forwarded to the coordinators' `rollout.*` ops.
// Auth is the bridge's, as for every other route.
import type { NatsConnection } from "@nats-io/transport-node";
import { RolloutApi } from "@switchyard/client";
import { type ClusterNames, SwitchyardError } from "@switchyard/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";

type NameParams = { name: string };
/** The bridge's reading of a management body (a JSON object, whatever the Content-Type). */
type JsonBody = (req: FastifyRequest) => Record<string, unknown>;

/** A start body: empty (the config's section as it is) or a JSON object of overrides, read with `json`. */
function overridesOf(req: FastifyRequest, json: JsonBody): Record<string, unknown> {
  const body = req.body as Buffer | undefined;
  if (!body || body.length === 0) return {};
  const value = json(req);
  if ("name" in value) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      "name: the endpoint is named by the path, not the body",
    );
  }
  return value;
}

export function registerCanaryRoutes(
  app: FastifyInstance,
  o: { nc: NatsConnection; names: ClusterNames; jsonBody: JsonBody },
): void {
  const api = new RolloutApi(o.nc, o.names);
  const base = "/api/2.0/switchyard/endpoints/:name/rollout";
  app.post<{ Params: NameParams }>(base, async (req) =>
    api.start(req.params.name, overridesOf(req, o.jsonBody)),
  );
  app.get<{ Params: NameParams }>(base, async (req) => api.status(req.params.name));
  app.post<{ Params: NameParams }>(`${base}/pause`, async (req) => api.pause(req.params.name));
  app.post<{ Params: NameParams }>(`${base}/resume`, async (req) => api.resume(req.params.name));
  app.post<{ Params: NameParams }>(`${base}/abort`, async (req) => api.abort(req.params.name));
}
