// A scorer's figures for `stream status`: events per second over the last ten seconds, and end-to-end latency
// as a histogram over the last minute (LATENCY_BOUNDS_MS buckets, so the coordinator can merge scorers).
import { LATENCY_BOUNDS_MS } from "@switchyard/protocol";

const SLOT_MS = 10_000;
const LATENCY_SLOTS = 6;

export class ScorerStats {
  events = 0;
  /** Per 1 s slot: events done, for the rate. */
  private readonly ticks: Array<{ at: number; events: number }> = [];
  /** Per 10 s slot: a latency histogram; the newest last. */
  private readonly slots: Array<{ start: number; counts: number[] }> = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** One outcome published, `latencyMs` after its source message was. */
  record(latencyMs: number): void {
    this.events++;
    const t = this.now();
    const start = t - (t % SLOT_MS);
    let slot = this.slots.at(-1);
    if (!slot || slot.start !== start) {
      slot = { start, counts: new Array(LATENCY_BOUNDS_MS.length + 1).fill(0) };
      this.slots.push(slot);
      if (this.slots.length > LATENCY_SLOTS) this.slots.shift();
    }
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && latencyMs > LATENCY_BOUNDS_MS[i]!) i++;
    slot.counts[i]!++;
  }

  /** Events per second over the last ten seconds (sampled at each report). */
  rate(): number {
    const t = this.now();
    this.ticks.push({ at: t, events: this.events });
    while (this.ticks.length > 1 && t - this.ticks[0]!.at > SLOT_MS) this.ticks.shift();
    const first = this.ticks[0]!;
    const secs = (t - first.at) / 1_000;
    return secs > 0 ? (this.events - first.events) / secs : 0;
  }

  /** The last minute's latency counts per bucket. */
  latencyCounts(): number[] {
    const t = this.now();
    const counts = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0);
    for (const s of this.slots) {
      if (t - s.start > LATENCY_SLOTS * SLOT_MS) continue;
      s.counts.forEach((c, i) => {
        counts[i] += c;
      });
    }
    return counts;
  }
}
