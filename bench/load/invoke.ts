// The one call the NATS contender measures, shared by the load generator and the bench's correctness check:
// the TypeScript SDK, which routes in-process and sends msgpack frames straight to the replicas' subject.
import type { NatsConnection } from "@nats-io/transport-node";
import { SwitchyardClient } from "@switchyard/client";
import type { Frame, Payload } from "@switchyard/data";
import { parseJsonBody, parseRequestBody, predictionsBody } from "@switchyard/formats";

export interface Reply {
  ok: boolean;
  /** The reply body, decoded on demand (the load loop never pays for it). */
  json(): unknown;
}

export type Invoke = (body: string) => Promise<Reply>;

/**
 * `client.invoke(endpoint, frame)`: what an SDK user holding a Frame does. Each pool body is parsed into a
 * Frame once (the pool has 1,000 rows), so the loop measures the SDK and the cluster, not JSON parsing.
 */
export function makeInvoke(nc: NatsConnection, cluster: string, endpoint: string): Invoke {
  const client = SwitchyardClient.fromConnection(nc, { cluster });
  const frames = new Map<string, Frame>();
  return async (body) => {
    let frame = frames.get(body);
    if (!frame) {
      frame = parseRequestBody(parseJsonBody(body)).input as Frame;
      frames.set(body, frame);
    }
    try {
      const output: Payload = await client.invoke(endpoint, frame);
      return { ok: true, json: () => predictionsBody(output) };
    } catch {
      return { ok: false, json: () => undefined };
    }
  };
}
