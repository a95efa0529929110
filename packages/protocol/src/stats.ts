// What the data plane reports about itself over NATS, about once a second: replica snapshots on
// `<c>.stats.replica.<id>` and router snapshots on `<c>.stats.router.<id>`. Every counter and histogram is
// cumulative since the process started, so a reader gets any window by subtracting two snapshots of the same
// source, and merges sources by adding bucket counts (percentiles are never averaged across processes).
import type { ErrorCode } from "./errors.js";
import type { EndpointAccuracy } from "./feedback.js";
import type { ShadowModelMetrics, ShadowServedStats } from "./shadow.js";

/**
 * Upper bounds (µs) of every latency histogram's buckets, the last bucket being everything above: 50 µs to
 * 30 s, so sub-millisecond replicas and requests held through a cold start both land in a real bucket.
 */
export const LATENCY_BUCKETS_US = [
  50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
  2_500_000, 5_000_000, 10_000_000, 30_000_000,
] as const;

export interface TimeSummary {
  count: number;
  sum_us: number;
  /** Bucket upper bounds (µs), the last `null` for everything above. */
  le_us: (number | null)[];
  /** Per-bucket counts (not cumulative across buckets), cumulative over the process's life. */
  counts: number[];
  /** Estimated from the buckets (the bucket's upper bound; the largest seen for the last bucket). */
  p50_us: number;
  p99_us: number;
  max_us: number;
}

export interface ReplicaStatsSnapshot {
  replica_id: string;
  endpoint: string;
  served_model: string;
  model_name: string;
  model_version: number;
  generation: string;
  node_id: string;
  pid: number;
  state: "READY" | "DRAINING";
  threads: number;
  config: { max_batch_size: number; max_delay_us: number; max_queue: number };
  /** Epoch ms of this snapshot, and since the replica started serving. */
  at: number;
  uptime_ms: number;
  /** Requests received (admitted or not), replies with predictions, rows run. */
  requests: number;
  succeeded: number;
  rows: number;
  errors: Partial<Record<ErrorCode, number>>;
  in_flight: number;
  queued: number;
  /**
   * The integral of (in flight + queued) over time, in request-microseconds, since the replica started: the
   * average concurrency over a window is Δbusy_us / Δt(µs). What the autoscaler scales on.
   */
  busy_us: number;
  batches: number;
  /** Batches run by their size in rows: `{"1": 10, "7": 3}`. */
  batch_sizes: Record<string, number>;
  avg_batch_size: number;
  queue_us: TimeSummary;
  compute_us: TimeSummary;
  /** Round trip to the worker thread minus compute: the cost of the hop. */
  hop_us: TimeSummary;
  /** Batches run on the replica's own thread (cheap ONNX models) and in its worker threads, and where the next
   * one goes (docs/realtime.md "Where a batch runs"). Absent from replicas older than it. */
  batch_sites?: { inline: number; pool: number; site: "inline" | "pool" };
}

/** One router's counts for one served model of an endpoint (served `""`: requests no served model took). */
export interface RouterServedStats {
  requests: number;
  /** Error replies and router-decided errors by catalog code. */
  errors: Partial<Record<ErrorCode, number>>;
  /** From the router receiving the request to the reply (or error): what the caller waited. */
  total_us: TimeSummary;
  /** Requests waiting now because no replica of the served model answers (starting, or scaled to zero). */
  held: number;
  /** Requests that ever had to wait for a replica. */
  held_total: number;
  /**
   * `total_us` of the requests among them (a part of `total_us`): what is left after subtracting it is the
   * latency of requests that found a replica at once — what a canary compares, so that a challenger's cold start
   * or scale-up is not read as a slow model.
   */
  held_us?: TimeSummary;
}

/** What a router (in a bridge, an invoke actor or an SDK client) publishes on `<c>.stats.router.<id>`. */
export interface RouterStatsSnapshot {
  router_id: string;
  /** `bridge`, `invoke` or `sdk`. */
  role: string;
  host: string;
  pid: number;
  at: number;
  /** Since the router started counting: a reader knows its counters began inside a window when this is short. */
  uptime_ms?: number;
  /** endpoint → served model → counts. */
  endpoints: Record<string, Record<string, RouterServedStats>>;
  /** Inference-table captures of this router per endpoint: acknowledged by the capture stream, and dropped. */
  capture?: Record<string, { captured: number; dropped: number }>;
  /** Shadow traffic of this router: endpoint → shadow served model → mirrors. */
  shadow?: Record<string, Record<string, ShadowServedStats>>;
}

/**
 * A latency histogram over LATENCY_BUCKETS_US, cumulative (what replicas and routers report). Recording
 * allocates nothing: it runs once per request or batch.
 */
export class TimeHistogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS_US.length + 1).fill(0);
  private count = 0;
  private sum = 0;
  private max = 0;

  record(us: number, times = 1): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_US.length && us > LATENCY_BUCKETS_US[i]!) i++;
    this.counts[i]! += times;
    this.count += times;
    this.sum += us * times;
    if (us > this.max) this.max = us;
  }

  summary(): TimeSummary {
    return {
      count: this.count,
      sum_us: Math.round(this.sum),
      le_us: [...LATENCY_BUCKETS_US, null],
      counts: [...this.counts],
      p50_us: this.quantile(0.5),
      p99_us: this.quantile(0.99),
      max_us: Math.round(this.max),
    };
  }

  private quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank)
        return i < LATENCY_BUCKETS_US.length
          ? Math.min(LATENCY_BUCKETS_US[i]!, Math.round(this.max))
          : Math.round(this.max);
    }
    return Math.round(this.max);
  }
}

/** p50/p95/p99 in milliseconds, interpolated within the bucket of merged bucket counts (0 with no samples). */
export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

/** One window (1 min, 5 min) of an endpoint or served model: the JSON summary the dashboard and CLI read. */
export interface MetricsWindow {
  requests: number;
  errors: Partial<Record<ErrorCode, number>>;
  error_rate: number;
  rps: number;
  /** What callers waited (routers). */
  latency_ms: Percentiles;
  /** Waiting for a batch, and running it (replicas). */
  queue_ms: Percentiles;
  compute_ms: Percentiles;
  avg_batch_size: number;
}

export const METRICS_WINDOWS = { "1m": 60_000, "5m": 300_000 } as const;
export type MetricsWindowName = keyof typeof METRICS_WINDOWS;

export interface ServedModelMetrics {
  name: string;
  model_name: string;
  model_version: number;
  /** Replicas reporting stats now. */
  replicas: { ready: number };
  in_flight: number;
  held: number;
  windows: Record<MetricsWindowName, MetricsWindow>;
}

/** `GET /api/2.0/switchyard/metrics/endpoints/{name}`. */
export interface EndpointMetrics {
  name: string;
  served_models: ServedModelMetrics[];
  /** The whole endpoint: served models merged, and requests no served model took (unknown served model…). */
  windows: Record<MetricsWindowName, MetricsWindow>;
  /** Served models getting mirrored requests (shadow traffic), one entry each. */
  shadow: ShadowModelMetrics[];
  /** Feedback labels joined to captured predictions: accuracy, MAE, RMSE per served model (absent without). */
  accuracy?: EndpointAccuracy;
}

/** `GET /api/2.0/switchyard/metrics`. */
export interface MetricsSummary {
  at: number;
  endpoints: EndpointMetrics[];
}
