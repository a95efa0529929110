// Admission by an endpoint's `rate_limits`, counted in KV `<cluster>_ratelimits` so that every bridge and invoke
// actor of the cluster shares one count per window. Requests of one process for the same counter share one
// pending compare-and-set (a burst costs a few round trips, not one per request). Never called for an endpoint
// without limits, so those cost no KV access.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { isCasConflict, openBucket, readValue } from "@switchyard/nats";
import {
  type ClusterNames,
  RATE_LIMIT_WINDOW_MS,
  RateCounter,
  type RateLimit,
  RateLimitExceeded,
  rateCounterKey,
  rateWindow,
  SwitchyardError,
} from "@switchyard/protocol";

/** Compare-and-set attempts on one counter before giving up; two bridges in a burst clear within a few. */
const CAS_ATTEMPTS = 50;

interface Waiter {
  calls: number;
  resolve(admitted: boolean): void;
  reject(err: unknown): void;
}

export class RateLimiter {
  private kv: Promise<KV> | undefined;
  /** Requests waiting for the next update of a counter, by key. */
  private readonly queued = new Map<string, Waiter[]>();
  /** Counters with an update in flight: arrivals queue for the next one. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
    private readonly now: () => number = Date.now,
  ) {}

  /** Resolves when every limit admits one more call by `principal`; RateLimitExceeded otherwise. */
  async admit(endpoint: string, limits: readonly RateLimit[], principal: string): Promise<void> {
    const now = this.now();
    const window = rateWindow(now, RATE_LIMIT_WINDOW_MS);
    for (const limit of limits) {
      const admitted = await this.take(rateCounterKey(endpoint, limit, principal, window.index), limit.calls);
      if (!admitted) {
        const seconds = Math.min(60, Math.max(1, Math.ceil((window.endsAt - this.now()) / 1000)));
        throw new RateLimitExceeded(endpoint, limit, seconds);
      }
    }
  }

  private take(key: string, calls: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let q = this.queued.get(key);
      if (!q) {
        q = [];
        this.queued.set(key, q);
      }
      q.push({ calls, resolve, reject });
      if (!this.busy.has(key)) void this.drain(key);
    });
  }

  /** Applies the queued requests of a counter, one batch per compare-and-set, until none wait. */
  private async drain(key: string): Promise<void> {
    this.busy.add(key);
    try {
      for (let batch = this.queued.get(key); batch?.length; batch = this.queued.get(key)) {
        this.queued.delete(key);
        // The limit as the latest request saw it (a PUT of rate_limits changes it between batches).
        const calls = batch[batch.length - 1]!.calls;
        try {
          const granted = await this.increment(key, batch.length, calls);
          for (const [i, w] of batch.entries()) w.resolve(i < granted);
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.busy.delete(key);
    }
  }

  /** Adds up to `wanted` calls to the counter without passing `calls`; returns how many it added. */
  private async increment(key: string, wanted: number, calls: number): Promise<number> {
    const kv = await this.bucket();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await readValue(kv, key, RateCounter, "rate-limit counter");
      const used = current?.value.calls ?? 0;
      const granted = Math.min(wanted, Math.max(0, calls - used));
      if (granted === 0) return 0;
      const next = JSON.stringify({ calls: used + granted } satisfies RateCounter);
      try {
        if (current) await kv.update(key, next, current.revision);
        else await kv.create(key, next);
        return granted;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(20, 1 + attempt)));
      }
    }
    throw new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      `the rate-limit counter ${key} is contended; retry shortly`,
    );
  }

  /** Opened on the first limited request, so a cluster without rate limits never creates the bucket. */
  private bucket(): Promise<KV> {
    if (!this.kv) {
      this.kv = openBucket(this.nc, this.names, "ratelimits");
      this.kv.catch(() => {
        this.kv = undefined;
      });
    }
    return this.kv;
  }
}
