// A router's own counts — per endpoint and served model: requests, errors by code, what callers waited, requests
// held for a replica — published as a RouterStatsSnapshot on `<c>.stats.router.<id>` every second. Recording is
// a few counter bumps on the hot path; it never blocks an invocation, and a failed publish is only skipped.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type ClusterNames,
  type ErrorCode,
  type RouterStatsSnapshot,
  TimeHistogram,
} from "@switchyard/protocol";
import type { InvokeObserver, InvokeOutcome } from "./router.js";

/** How often a router publishes its snapshot: the feed drops a source silent for five of these. */
export const ROUTER_STATS_INTERVAL_MS = 1_000;

/** The served model of requests the router failed before choosing one (unknown endpoint, no routes). */
export const NO_SERVED_MODEL = "";

/** Distinct endpoint names a router counts for requests that reached no served model, before lumping them. */
export const MAX_UNROUTED_ENDPOINTS = 100;
/** Where requests to further unknown endpoint names are counted. */
export const OTHER_ENDPOINTS = "*";

/** The counts of an endpoint and served model in a two-level map, made on first use. */
export function countsOf<T>(
  counts: Map<string, Map<string, T>>,
  endpoint: string,
  served: string,
  make: () => T,
): T {
  let byServed = counts.get(endpoint);
  if (!byServed) {
    byServed = new Map();
    counts.set(endpoint, byServed);
  }
  let c = byServed.get(served);
  if (c === undefined) {
    c = make();
    byServed.set(served, c);
  }
  return c;
}

class ServedCounts {
  requests = 0;
  readonly errors = new Map<string, number>();
  readonly total = new TimeHistogram();
  held = 0;
  heldTotal = 0;
  readonly heldLatency = new TimeHistogram();
}

export interface RouterStatsOptions {
  /** Who routes: `bridge` (the HTTP bridge and the invoke actor beside it), `invoke` or `sdk`. */
  role: string;
  /** Publish period (default ROUTER_STATS_INTERVAL_MS). */
  intervalMs?: number;
  /** This router's capture counts per endpoint, published with its own (the capture observer's `counts()`). */
  capture?: () => Record<string, { captured: number; dropped: number }>;
  /** This router's shadow traffic counts (the router's own ShadowMirror), published with its own. */
  shadow?: () => NonNullable<RouterStatsSnapshot["shadow"]>;
}

export class RouterStats implements InvokeObserver {
  readonly id = randomUUID();
  private readonly counts = new Map<string, Map<string, ServedCounts>>();
  /** Endpoint entries created by requests that reached no served model. */
  private unrouted = 0;
  private readonly startedAt = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
    private readonly opts: RouterStatsOptions,
  ) {
    this.timer = setInterval(() => this.publish(), opts.intervalMs ?? ROUTER_STATS_INTERVAL_MS);
    // Never what keeps a process (a script using the SDK) alive.
    this.timer.unref();
  }

  private served(endpoint: string, served: string): ServedCounts {
    return countsOf(this.counts, endpoint, served, () => new ServedCounts());
  }

  observe(o: InvokeOutcome): void {
    let endpoint = o.endpoint;
    if (!o.route && !this.counts.has(endpoint)) {
      // Names callers make up (unknown endpoints) are counted by name up to a bound, then together: a client
      // sending random names must not grow this router's memory, its reports and /metrics without limit.
      if (this.unrouted >= MAX_UNROUTED_ENDPOINTS) endpoint = OTHER_ENDPOINTS;
      else this.unrouted++;
    }
    const c = this.served(endpoint, o.route?.served_model_name ?? NO_SERVED_MODEL);
    c.requests++;
    if (o.errorCode) c.errors.set(o.errorCode, (c.errors.get(o.errorCode) ?? 0) + 1);
    c.total.record(o.durationUs);
    if (o.held) {
      c.heldTotal++;
      c.heldLatency.record(o.durationUs);
    }
  }

  holding(endpoint: string, route: { served_model_name: string }): void {
    this.served(endpoint, route.served_model_name).held++;
  }

  released(endpoint: string, route: { served_model_name: string }): void {
    this.served(endpoint, route.served_model_name).held--;
  }

  snapshot(): RouterStatsSnapshot {
    const endpoints: RouterStatsSnapshot["endpoints"] = {};
    for (const [endpoint, byServed] of this.counts) {
      const out: RouterStatsSnapshot["endpoints"][string] = {};
      for (const [served, c] of byServed) {
        out[served] = {
          requests: c.requests,
          errors: Object.fromEntries(c.errors) as Partial<Record<ErrorCode, number>>,
          total_us: c.total.summary(),
          held: c.held,
          held_total: c.heldTotal,
          ...(c.heldTotal > 0 ? { held_us: c.heldLatency.summary() } : {}),
        };
      }
      endpoints[endpoint] = out;
    }
    return {
      router_id: this.id,
      role: this.opts.role,
      host: hostname(),
      pid: process.pid,
      at: Date.now(),
      uptime_ms: Math.round(performance.now() - this.startedAt),
      endpoints,
      ...(this.opts.capture ? { capture: this.opts.capture() } : {}),
      ...(this.opts.shadow ? { shadow: this.opts.shadow() } : {}),
    };
  }

  private publish(): void {
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(this.names.subjects.routerStats(this.id), JSON.stringify(this.snapshot()));
    } catch {
      // A connection closing under us: the next tick (or none) decides; stats are never worth an error.
    }
  }

  /** Publishes the final counts and stops (the router calls it when it closes). */
  close(): void {
    clearInterval(this.timer);
    this.publish();
  }
}
