// `POST /api/2.0/switchyard/endpoints/{name}/feedback`: labels for requests an endpoint served, body
// `[{"request_id", "label"}, …]` or `{"records": [...]}`, stored for the coordinators' join; answers
// `{"accepted": n}`. Unknown request ids are accepted (the join counts them): a caller never learns of them here.
import type { NatsConnection } from "@nats-io/transport-node";
import { type EndpointsApi, FeedbackApi } from "@switchyard/client";
import type { ClusterNames } from "@switchyard/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";

export function registerFeedbackRoutes(
  app: FastifyInstance,
  o: { nc: NatsConnection; names: ClusterNames; api: EndpointsApi; body: (req: FastifyRequest) => unknown },
): void {
  const feedback = new FeedbackApi(o.nc, o.names, o.api);
  app.post<{ Params: { name: string } }>("/api/2.0/switchyard/endpoints/:name/feedback", (req) =>
    feedback.send(req.params.name, o.body(req)),
  );
}
