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
 * Sets the endpoint's serving routes to what its stored canary's state says, when they differ (compare-and-set on
 * the endpoint record). Only routes change: the generations stay, so the reconciler flips routers to the new
 * split at once, without new replicas. Refused while a config update is in progress (it would replace them) and
 * when the config no longer has the canary's served models. The canary is read here, not taken from the caller,
 * and read again after the write: when the API (abort, pause) and the leader's loop both sync, whoever writes
 * last has seen the canary the other one wrote. Returns whether it wrote.
 */
export async function syncCanaryRoutes(stores: Stores, endpoint: string): Promise<boolean> {
  let wrote = false;
  for (let attempt = 0; attempt < 5; attempt++) {
    const canary = await readCanary(stores, endpoint);
    if (!canary) return wrote;
    wrote =
      (await writeRoutes(stores, endpoint, routesOfCanary(canary.value.spec, canary.value.state))) || wrote;
    if ((await readCanary(stores, endpoint))?.revision === canary.revision) return wrote;
  }
  return wrote;
}

async function writeRoutes(stores: Stores, endpoint: string, routes: TrafficRoute[]): Promise<boolean> {
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
      const served = new Set(record.config.served_models.map((m) => m.name));
      const missing = routes.filter((r) => !served.has(r.served_model_name)).map((r) => r.served_model_name);
      if (missing.length) {
        throw new SwitchyardError(
          "RESOURCE_CONFLICT",
          `endpoint '${endpoint}' no longer serves ${missing.join(", ")}: the canary's routes cannot be set`,
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
