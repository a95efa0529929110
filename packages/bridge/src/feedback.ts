// `POST /api/2.0/switchyard/endpoints/{name}/feedback`: labels for requests an endpoint served, body
// `[{"request_id", "label"}, …]` or `{"records": [...]}`, stored for the coordinators' join; answers
// `{"accepted": n}`. Unknown request ids are accepted (the join counts them): a caller never learns of them here.
import type { NatsConnection } from "@nats-io/transport-node";
import { type EndpointsApi, FeedbackApi } from "@switchyard/client";
import { type ClusterNames, SwitchyardError } from "@switchyard/protocol";
import type { FastifyInstance } from "fastify";

export function registerFeedbackRoutes(
  app: FastifyInstance,
  o: { nc: NatsConnection; names: ClusterNames; api: EndpointsApi },
): void {
  const feedback = new FeedbackApi(o.nc, o.names, o.api);
  app.post<{ Params: { name: string } }>("/api/2.0/switchyard/endpoints/:name/feedback", async (req) => {
    const body = req.body as Buffer | undefined;
    if (!body || body.length === 0) throw new SwitchyardError("BAD_REQUEST", "the request body is empty");
    let value: unknown;
    try {
      value = JSON.parse(body.toString("utf8"));
    } catch (err) {
      throw new SwitchyardError(
        "BAD_REQUEST",
        `the request body is not valid JSON: ${(err as Error).message}`,
      );
    }
    return feedback.send(req.params.name, value);
  });
}
