// Requests to an in-process bridge (Fastify's inject: no socket), JSON in and out.
import type { FastifyInstance } from "fastify";

export interface Reply {
  status: number;
  /** Whatever JSON the route answered (tests read it freely). */
  json: any;
  headers: Record<string, unknown>;
}

export async function injectJson(
  bridge: FastifyInstance,
  method: "GET" | "POST" | "PUT" | "DELETE",
  url: string,
  body?: unknown,
): Promise<Reply> {
  const r = await bridge.inject({
    method,
    url,
    ...(body !== undefined
      ? { payload: JSON.stringify(body), headers: { "content-type": "application/json" } }
      : {}),
  });
  return { status: r.statusCode, json: r.body ? JSON.parse(r.body) : undefined, headers: r.headers };
}
