// The one call the NATS contender measures, shared by the load generator and the bench's correctness check.
import type { NatsConnection } from "@nats-io/transport-node";
import { clusterNames, DEFAULT_TIMEOUT_MS, H } from "@switchyard/protocol";

export interface Reply {
  ok: boolean;
  /** The reply body, decoded on demand (the load loop never pays for it). */
  json(): unknown;
}

export type Invoke = (body: string) => Promise<Reply>;

/**
 * Today: a raw request with the MLflow JSON body on `<cluster>.invoke.<endpoint>` (the NATS API for
 * clients that are not ours); the reply is `{"predictions": …}`, errors carry x-switchyard-error-code.
 * Swap for the SDK here: `const r = await client.invoke(endpoint, JSON.parse(body))` with SwitchyardClient.
 */
export function makeInvoke(nc: NatsConnection, cluster: string, endpoint: string): Invoke {
  const subject = clusterNames(cluster).subjects.invoke(endpoint);
  return async (body) => {
    const reply = await nc.request(subject, body, { timeout: DEFAULT_TIMEOUT_MS });
    return { ok: !reply.headers?.has(H.errorCode), json: () => reply.json() };
  };
}
