// A plan: one entry per declared (or, with --prune, undeclared) object, what apply does to it, and the step
// that does it. Planners only read the cluster; the executor runs the steps.
import type { NatsConnection } from "@nats-io/transport-node";
import type { BatchApi, EndpointsApi, StreamsApi } from "@switchyard/client";
import type { ApplyKind, ClusterNames } from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";

export type Action = "create" | "update" | "unchanged" | "delete";

export interface PlanEntry {
  kind: ApplyKind;
  name: string;
  action: Action;
  /** What an update changes, one `field: before → after` line each. */
  diff?: string[];
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
  /** The config file's directory: model paths are relative to it. */
  baseDir: string;
  prune: boolean;
}

export const entryOf = ({ kind, name, action, diff }: Step): PlanEntry => ({
  kind,
  name,
  action,
  ...(diff?.length ? { diff } : {}),
});
