// A plan: one entry per declared (or, with --prune, undeclared) object, what apply does to it, and the step
// that does it. Planners only read the cluster; the executor runs the steps.
import type { NatsConnection } from "@nats-io/transport-node";
import type { TokenStore } from "@switchyard/bridge";
import type { BatchApi, EndpointsApi, StreamsApi } from "@switchyard/client";
import type { ApplyKind, ClusterNames } from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import type { ManagedCluster } from "../commands/users.js";

export type Action = "create" | "update" | "unchanged" | "delete";

export interface PlanEntry {
  kind: ApplyKind;
  name: string;
  action: Action;
  /** What an update changes, one `field: before → after` line each. */
  diff?: string[];
  /** A created token's or NATS user's secret, set when the step has run: the only time it is shown. */
  token?: string;
  password?: string;
}

export interface Step extends PlanEntry {
  /** Absent for `unchanged`. */
  run?: () => Promise<void>;
}

/** What planners read and steps write through. */
export interface ApplyContext {
  nc: NatsConnection;
  names: ClusterNames;
  registry: Registry;
  endpoints: EndpointsApi;
  streams: StreamsApi;
  batch: BatchApi;
  tokens: TokenStore;
  /** The local cluster whose data dir holds the NATS users; absent when the cluster is not local. */
  natsUsers?: ManagedCluster;
  /** The config file's directory: model paths are relative to it. */
  baseDir: string;
  prune: boolean;
}

export const entryOf = ({ kind, name, action, diff, token, password }: Step): PlanEntry => ({
  kind,
  name,
  action,
  ...(diff?.length ? { diff } : {}),
  ...(token !== undefined ? { token } : {}),
  ...(password !== undefined ? { password } : {}),
});
