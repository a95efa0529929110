// A staged canary in KV: `canary.<endpoint>` in the cluster bucket holds its rollout (frozen at start), state and
// the leader's last readings; the endpoint record's serving routes follow the state. Both the management API
// and the leader's canary loop write through here, always with compare-and-set.
import { casUpdate, readValue, type Stored } from "@switchyard/nats";
import {
  EndpointRecord,
  keys,
  notFound,
  StoredCanary,
  SwitchyardError,
  type TrafficRoute,
} from "@switchyard/protocol";
import { routesOfCanary } from "./canary.js";
import type { Stores } from "./state.js";

export function readCanary(stores: Stores, endpoint: string): Promise<Stored<StoredCanary> | null> {
  return readValue(stores.cluster, keys.canary(endpoint), StoredCanary, `canary of '${endpoint}'`);
}

/**
 * Changes a stored canary with compare-and-set. `change` sees the current value (null: none) and throws to give
 * up (the API's conflicts, the loop's "someone changed it since I read it").
 */
export function updateCanary(
  stores: Stores,
  endpoint: string,
  change: (current: StoredCanary | null) => StoredCanary,
): Promise<Stored<StoredCanary>> {
  return casUpdate(stores.cluster, keys.canary(endpoint), StoredCanary, change, {
    what: `canary of '${endpoint}'`,
  });
}

const sameRoutes = (a: readonly TrafficRoute[], b: readonly TrafficRoute[]) => {
  const text = (r: readonly TrafficRoute[]) =>
    r
      .map((x) => `${x.served_model_name} ${x.traffic_percentage}`)
      .sort()
      .join();
  return text(a) === text(b);
};

/**
 * Sets the endpoint's serving routes to what its canary's state says, when they differ (compare-and-set on the
 * endpoint record). Only routes change: the generations stay, so the reconciler flips routers to the new split
 * at once, without new replicas. Refused while a config update is in progress (it would replace them).
 * Returns whether it wrote.
 */
export async function syncCanaryRoutes(
  stores: Stores,
  endpoint: string,
  canary: StoredCanary,
): Promise<boolean> {
  const routes = routesOfCanary(canary.spec, canary.state);
  // Read first: the loop calls this every second, and a write nobody needs would wake every reconciler.
  const now = await readValue(
    stores.endpoints,
    keys.endpoint(endpoint),
    EndpointRecord,
    `endpoint '${endpoint}'`,
  );
  const config = now?.value.config;
  if (config && !now.value.deleted && sameRoutes(config.routes, routes)) return false;
  let wrote = false;
  await casUpdate(
    stores.endpoints,
    keys.endpoint(endpoint),
    EndpointRecord,
    (record) => {
      wrote = false;
      if (!record || record.deleted) throw notFound(`endpoint '${endpoint}' does not exist`);
      if (!record.config)
        throw new SwitchyardError("RESOURCE_CONFLICT", `endpoint '${endpoint}' serves no config yet`);
      if (record.state.config_update === "IN_PROGRESS") {
        throw new SwitchyardError(
          "RESOURCE_CONFLICT",
          `endpoint '${endpoint}' has an update in progress (config version ${record.pending_config_version}); ` +
            "wait until it completes or fails",
        );
      }
      if (sameRoutes(record.config.routes, routes)) return record;
      wrote = true;
      return { ...record, config: { ...record.config, routes }, last_updated_timestamp: Date.now() };
    },
    { what: `endpoint '${endpoint}'` },
  );
  return wrote;
}
