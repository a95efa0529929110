// Where an ONNX model's next batch runs: on the calling thread ("inline") or in a worker thread ("pool"). A pure
// policy over measured costs and an injected clock; it never runs anything. For a model that computes in a few µs
// the hop to a worker (post, wake-up, reply) costs more than the model, so running inline saves the hop; a model
// whose batches cost more than the hop keeps the workers, which run in parallel and leave the event loop free.

export type BatchSite = "inline" | "pool";

export interface PlacementOptions {
  /** Move inline when the recent compute per batch is below this fraction of the hop's cost. */
  enterBelow: number;
  /** Move back to the pool when the recent compute per batch is above this fraction of the hop's cost. The gap
   * between the two is the hysteresis that keeps a model near the boundary from flapping. */
  leaveAbove: number;
  /** While inline, one batch goes through the pool when the last pool batch is older than this (ms), so the hop's
   * cost stays current and heavy batches are compared with a fresh figure. */
  probeEveryMs: number;
  /** The hop's cost is the lowest of the last this-many pool batches: its floor, without the queueing and
   * event-loop lag that a busy moment adds to some hops. */
  hopWindow: number;
  /** Pool batches measured before the first move inline. */
  minPoolBatches: number;
  /** The compute per batch is the median of the last this-many batches (wherever they ran): one slow batch (a cold
   * start, a GC pause) moves nothing, a run of heavy ones moves the model within half the window. */
  computeWindow: number;
}

export const PLACEMENT_DEFAULTS: Readonly<PlacementOptions> = Object.freeze({
  enterBelow: 0.5,
  leaveAbove: 1,
  probeEveryMs: 250,
  hopWindow: 16,
  minPoolBatches: 8,
  computeWindow: 9,
});

export class BatchPlacement {
  private current: BatchSite = "pool";
  private readonly hops: number[] = [];
  private poolBatches = 0;
  private readonly computes: number[] = [];
  private lastPoolAt = Number.NEGATIVE_INFINITY;
  private readonly o: PlacementOptions;

  constructor(options: Partial<PlacementOptions> = {}) {
    this.o = { ...PLACEMENT_DEFAULTS, ...options };
    const { enterBelow, leaveAbove, hopWindow, minPoolBatches, computeWindow } = this.o;
    if (!(enterBelow > 0 && leaveAbove >= enterBelow)) {
      throw new RangeError(
        `options.leaveAbove (${leaveAbove}) must be at least options.enterBelow (${enterBelow}) > 0`,
      );
    }
    for (const [name, n] of Object.entries({ hopWindow, minPoolBatches, computeWindow })) {
      if (!Number.isInteger(n) || n < 1)
        throw new RangeError(`options.${name} must be a positive integer, got ${n}`);
    }
  }

  /** Where batches run now (a probe through the pool aside). */
  get site(): BatchSite {
    return this.current;
  }

  /** The figures the decision is made on: recent compute per batch and the hop's floor, µs (NaN: none yet). */
  costs(): { computeUs: number; hopUs: number } {
    return { computeUs: median(this.computes), hopUs: this.hopFloor() };
  }

  /** Where the batch starting at `nowMs` runs. While inline, one batch per `probeEveryMs` is a probe through the pool. */
  next(nowMs: number): BatchSite {
    if (this.current === "pool") return "pool";
    // Stamping the probe's start spaces probes out even when one fails and never records.
    if (nowMs - this.lastPoolAt >= this.o.probeEveryMs) {
      this.lastPoolAt = nowMs;
      return "pool";
    }
    return "inline";
  }

  /**
   * Records a finished batch: its compute µs, and for a pool batch the hop's µs (round trip minus compute).
   * Returns the new site when this batch moved it, else null.
   */
  record(site: BatchSite, computeUs: number, hopUs: number | null, nowMs: number): BatchSite | null {
    this.computes.push(computeUs);
    if (this.computes.length > this.o.computeWindow) this.computes.shift();
    if (site === "pool" && hopUs !== null) {
      this.hops.push(Math.max(0, hopUs));
      if (this.hops.length > this.o.hopWindow) this.hops.shift();
      this.poolBatches++;
      this.lastPoolAt = nowMs;
    }
    const { computeUs: compute, hopUs: hop } = this.costs();
    if (this.current === "pool") {
      if (this.poolBatches >= this.o.minPoolBatches && compute < this.o.enterBelow * hop) {
        this.current = "inline";
        return "inline";
      }
    } else if (compute > this.o.leaveAbove * hop) {
      this.current = "pool";
      return "pool";
    }
    return null;
  }

  private hopFloor(): number {
    return this.hops.length === 0 ? Number.NaN : Math.min(...this.hops);
  }
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
