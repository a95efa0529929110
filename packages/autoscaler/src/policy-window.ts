// The load the policy scales on: per served model, the average requests in flight plus queued over a short
// window, from the growth of each replica's cumulative `busy_us` between two of its snapshots (Δbusy_us / Δt),
// summed over the served model's replicas. Keeps a few seconds of snapshots per replica; no I/O, no clock of its
// own (times come with each snapshot and each question).
import type { ReplicaStatsSnapshot } from "@switchyard/protocol";

interface Sample {
  /** When this process received it (windows and staleness are judged by the reader's clock). */
  receivedAt: number;
  /** The replica's own clock: Δt between two snapshots of one replica never mixes hosts' clocks. */
  at: number;
  busyUs: number;
  requests: number;
  /** In flight + queued at the snapshot. */
  level: number;
}

interface ReplicaSamples {
  endpoint: string;
  served: string;
  samples: Sample[];
}

export interface ServedLoad {
  /** Average requests in flight plus queued over the window, summed over replicas. */
  concurrency: number;
  /** Requests received over the window. */
  requests: number;
  /** Replicas reporting. */
  replicas: number;
}

export class ConcurrencyWindow {
  private readonly replicas = new Map<string, ReplicaSamples>();

  /**
   * @param windowMs how far back the average reaches
   * @param staleMs a replica not heard from for this long is gone (its process stopped)
   */
  constructor(
    readonly windowMs: number,
    readonly staleMs = 5_000,
  ) {}

  add(s: ReplicaStatsSnapshot, receivedAt: number): void {
    let r = this.replicas.get(s.replica_id);
    if (!r) {
      r = { endpoint: s.endpoint, served: s.served_model, samples: [] };
      this.replicas.set(s.replica_id, r);
    }
    const last = r.samples[r.samples.length - 1];
    // A restarted process starts its counters again: its history before that is not comparable.
    if (last && (s.at <= last.at || s.busy_us < last.busyUs || s.requests < last.requests)) r.samples = [];
    r.samples.push({
      receivedAt,
      at: s.at,
      busyUs: s.busy_us,
      requests: s.requests,
      level: s.in_flight + s.queued,
    });
    // Keep one sample at or before the window's start, as the base of the difference.
    while (r.samples.length > 2 && r.samples[1]!.receivedAt <= receivedAt - this.windowMs) r.samples.shift();
  }

  /** The load of one served model of an endpoint, as of `now`. */
  load(endpoint: string, served: string, now: number): ServedLoad {
    let concurrency = 0;
    let requests = 0;
    let replicas = 0;
    for (const [id, r] of this.replicas) {
      const newest = r.samples[r.samples.length - 1];
      if (!newest || newest.receivedAt < now - this.staleMs) {
        this.replicas.delete(id);
        continue;
      }
      if (r.endpoint !== endpoint || r.served !== served) continue;
      replicas++;
      // `add` keeps the oldest sample at or just before the window's start.
      const base = r.samples[0]!;
      if (base === newest) {
        // One report only (a replica that just started, or a coordinator that just took the lease): its level now.
        concurrency += newest.level;
        continue;
      }
      concurrency += (newest.busyUs - base.busyUs) / ((newest.at - base.at) * 1_000);
      requests += newest.requests - base.requests;
    }
    return { concurrency, requests, replicas };
  }
}
