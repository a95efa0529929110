// A replica's counters: requests, errors by code, batch sizes, queue and compute time histograms. Read by
// the autoscaler and dashboard (published on `<c>.stats.replica.<id>`). Recording allocates nothing.
import { type ErrorCode, type ReplicaStatsSnapshot, TimeHistogram } from "@switchyard/protocol";

export class ReplicaStats {
  requests = 0;
  succeeded = 0;
  rows = 0;
  batches = 0;
  readonly errors = new Map<ErrorCode, number>();
  readonly batchSizes = new Map<number, number>();
  readonly queueUs = new TimeHistogram();
  readonly computeUs = new TimeHistogram();
  readonly hopUs = new TimeHistogram();
  /** ∫ unanswered requests dt (request-µs) up to `levelSince`, and when the level last changed. */
  private busy = 0;
  private levelSince = performance.now();

  /** Call with the number of unanswered requests just before it changes (and when reading `busy_us`). */
  level(unanswered: number): void {
    const now = performance.now();
    this.busy += unanswered * (now - this.levelSince) * 1000;
    this.levelSince = now;
  }

  get busyUs(): number {
    return Math.round(this.busy);
  }

  error(code: ErrorCode): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  batch(rows: number, computeUs: number, hopUs: number): void {
    this.batches++;
    this.rows += rows;
    this.batchSizes.set(rows, (this.batchSizes.get(rows) ?? 0) + 1);
    this.computeUs.record(computeUs);
    this.hopUs.record(hopUs);
  }

  /** The counters part of a snapshot (the replica adds who it is and its live queue). */
  counters(): Pick<
    ReplicaStatsSnapshot,
    | "requests"
    | "succeeded"
    | "rows"
    | "errors"
    | "batches"
    | "batch_sizes"
    | "avg_batch_size"
    | "queue_us"
    | "compute_us"
    | "hop_us"
  > {
    const sizes = [...this.batchSizes.entries()].sort((a, b) => a[0] - b[0]);
    return {
      requests: this.requests,
      succeeded: this.succeeded,
      rows: this.rows,
      errors: Object.fromEntries(this.errors),
      batches: this.batches,
      batch_sizes: Object.fromEntries(sizes.map(([k, v]) => [String(k), v])),
      avg_batch_size: this.batches === 0 ? 0 : Math.round((this.rows / this.batches) * 100) / 100,
      queue_us: this.queueUs.summary(),
      compute_us: this.computeUs.summary(),
      hop_us: this.hopUs.summary(),
    };
  }
}
