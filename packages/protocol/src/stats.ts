// What the data plane reports about itself over NATS, about once a second: replica snapshots on
// `<c>.stats.replica.<id>` and router snapshots on `<c>.stats.router.<id>`. Every counter and histogram is
// cumulative since the process started, so a reader gets any window by subtracting two snapshots of the same
// source, and merges sources by adding bucket counts (percentiles are never averaged across processes).
import type { ErrorCode } from "./errors.js";

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
}

/** What a router (in a bridge, an invoke actor or an SDK client) publishes on `<c>.stats.router.<id>`. */
export interface RouterStatsSnapshot {
  router_id: string;
  /** `bridge`, `invoke` or `sdk`. */
  role: string;
  host: string;
  pid: number;
  at: number;
  /** endpoint → served model → counts. */
  endpoints: Record<string, Record<string, RouterServedStats>>;
}
