// Staged canaries from the SDK: the management API's `rollout.*` operations, with the same bodies as
// `POST /api/2.0/switchyard/endpoints/{name}/rollout` and `switchyard endpoints rollout`. The coordinator
// validates and answers; its leader walks the stages.
import type { NatsConnection } from "@nats-io/transport-node";
import type { CanaryRolloutInput, CanaryView, ClusterNames } from "@switchyard/protocol";
import { callApi } from "./management.js";

/** What `start` may override of the endpoint's `rollout` section (all of it, each field optional). */
export type RolloutOverrides = Partial<CanaryRolloutInput>;

export class RolloutApi {
  constructor(
    private readonly nc: NatsConnection,
    readonly names: ClusterNames,
  ) {}

  /** Starts a canary on `endpoint`; a bad override is INVALID_PARAMETER_VALUE naming its field. */
  start(endpoint: string, overrides: RolloutOverrides = {}): Promise<CanaryView> {
    return callApi(this.nc, this.names, "rollout.start", {
      ...overrides,
      name: endpoint,
    }) as Promise<CanaryView>;
  }

  status(endpoint: string): Promise<CanaryView> {
    return callApi(this.nc, this.names, "rollout.status", { name: endpoint }) as Promise<CanaryView>;
  }

  pause(endpoint: string): Promise<CanaryView> {
    return callApi(this.nc, this.names, "rollout.pause", { name: endpoint }) as Promise<CanaryView>;
  }

  resume(endpoint: string): Promise<CanaryView> {
    return callApi(this.nc, this.names, "rollout.resume", { name: endpoint }) as Promise<CanaryView>;
  }

  /** Ends the canary; the champion takes all traffic back. */
  abort(endpoint: string): Promise<CanaryView> {
    return callApi(this.nc, this.names, "rollout.abort", { name: endpoint }) as Promise<CanaryView>;
  }
}
