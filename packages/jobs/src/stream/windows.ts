// Keyed window state and the watermark behind a stream job's window features. Pure: time is the events'
// own, the sequence is the caller's; it never counts an event twice, and a late event changes nothing.
//
// Sequences: the state remembers which source sequences it applied — all up to `floor`, and a set above it —
// because after a scorer dies its unacked messages come back after newer ones have been delivered. The
// caller raises the floor with `settle(ackFloor)` (the consumer's ack floor: everything at or below it was
// acked, so applied), which keeps the set to the messages in flight.
//
// Sliding windows keep the key's recent events sorted by event time, so an out-of-order event still sees
// every earlier-arrived event in (t − size, t]; tumbling windows keep one running tally per open bucket.
// State is bounded: once per smallest window size of event time, every key drops what no event at or after
// the watermark can use (idle keys go entirely). Held events are always newer than
// watermark − (largest sliding size + smallest window size); held buckets end after watermark − that size.

import type { FeatureSpec, WindowAgg } from "@switchyard/protocol";
import { z } from "zod";
import { describe, PoisonEventError } from "./features.js";

/** One event as the windows see it: `time` in epoch milliseconds (see `eventTimeMs`). */
export interface WindowEvent {
  key: string;
  time: number;
  fields: Record<string, unknown>;
}

export type WindowOutcome =
  | { kind: "features"; features: Record<string, number | null> }
  /** Older than the watermark: route it to `<sink>.late`. */
  | { kind: "late" }
  /** Its sequence is already in this state (a redelivery after a restore): its outcome was published. */
  | { kind: "replayed" };

interface Tally {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** An event kept for sliding windows: its time and the window fields' values, in `fields` order. */
interface Moment {
  time: number;
  values: number[];
}

interface KeyState {
  moments: Moment[];
  /** Per tumbling window (in `tumbling` order): bucket start → tally. */
  buckets: Map<number, Tally>[];
}

interface Window {
  name: string;
  size: number;
  agg: WindowAgg;
  /** Index into the event's window field values; -1 for count. */
  field: number;
  /** Index into `buckets` for tumbling windows; -1 for sliding. */
  tumbling: number;
}

const TallyJson = z.object({ count: z.number(), sum: z.number(), min: z.number(), max: z.number() }).strict();

/** A window state as plain JSON, with the source sequence it reflects. */
export const WindowSnapshot = z
  .object({
    windows: z.array(z.string()),
    /** Every sequence at or below it is applied, and so is each of `applied`. */
    floor: z.number(),
    applied: z.array(z.number()),
    maxEventTime: z.number().nullable(),
    nextSweep: z.number().nullable(),
    keys: z.array(
      z
        .object({
          key: z.string(),
          moments: z.array(z.object({ time: z.number(), values: z.array(z.number()) }).strict()),
          buckets: z.array(z.array(z.object({ start: z.number(), tally: TallyJson }).strict())),
        })
        .strict(),
    ),
  })
  .strict();
export type WindowSnapshot = z.output<typeof WindowSnapshot>;

export class WindowState {
  readonly #lateness: number;
  readonly #windows: Window[];
  /** The distinct event fields the windows aggregate. */
  readonly #fields: string[];
  readonly #tumblingCount: number;
  readonly #slidingSpan: number;
  readonly #sweepEvery: number;
  #keys = new Map<string, KeyState>();
  #floor = 0;
  #applied = new Set<number>();
  #maxEventTime = Number.NEGATIVE_INFINITY;
  #nextSweep = Number.NEGATIVE_INFINITY;

  constructor(spec: FeatureSpec) {
    this.#lateness = spec.allowed_lateness;
    this.#fields = [...new Set(spec.windows.flatMap((w) => (w.field === undefined ? [] : [w.field])))];
    let tumbling = 0;
    this.#windows = spec.windows.map((w) => ({
      name: w.name,
      size: w.size,
      agg: w.agg,
      field: w.field === undefined ? -1 : this.#fields.indexOf(w.field),
      tumbling: w.type === "tumbling" ? tumbling++ : -1,
    }));
    this.#tumblingCount = tumbling;
    this.#slidingSpan = Math.max(0, ...this.#windows.filter((w) => w.tumbling < 0).map((w) => w.size));
    this.#sweepEvery = Math.min(...this.#windows.map((w) => w.size));
  }

  /** The maximum event time seen minus the allowed lateness; events older than it are late. */
  get watermark(): number {
    return this.#maxEventTime - this.#lateness;
  }

  /** Whether the event with source sequence `seq` is in this state. */
  has(seq: number): boolean {
    return seq <= this.#floor || this.#applied.has(seq);
  }

  /** Everything at or below `ackFloor` is applied (the consumer acked it): forget those sequences one by one. */
  settle(ackFloor: number): void {
    if (ackFloor <= this.#floor) return;
    this.#floor = ackFloor;
    for (const seq of this.#applied) if (seq <= ackFloor) this.#applied.delete(seq);
  }

  /**
   * Applies the event with source sequence `seq` and returns its window features; a sequence already applied
   * is `replayed` and changes nothing. A window field that is not a finite number throws PoisonEventError and
   * changes nothing. Without windows only the watermark is kept, and no sequence: there is no state an event
   * could be counted in twice, so a redelivery is judged afresh.
   */
  apply(event: WindowEvent, seq: number): WindowOutcome {
    const windowed = this.#windows.length > 0;
    if (windowed && this.has(seq)) return { kind: "replayed" };
    const values = this.#fields.map((f) => {
      const v = event.fields[f];
      if (typeof v === "number" && Number.isFinite(v)) return v;
      throw new PoisonEventError(`window field "${f}": expected a number, got ${describe(v)}`);
    });
    if (windowed) this.#applied.add(seq);
    const t = event.time;
    if (t < this.watermark) return { kind: "late" };
    this.#maxEventTime = Math.max(this.#maxEventTime, t);
    // Without windows there is nothing to keep per key (and no window size to sweep by).
    if (!windowed) return { kind: "features", features: {} };

    let state = this.#keys.get(event.key);
    if (!state) {
      state = { moments: [], buckets: Array.from({ length: this.#tumblingCount }, () => new Map()) };
      this.#keys.set(event.key, state);
    }
    if (this.#slidingSpan > 0) state.moments.splice(firstAfter(state.moments, t), 0, { time: t, values });
    const features: Record<string, number | null> = {};
    for (const w of this.#windows) {
      const value = w.field < 0 ? 0 : (values[w.field] as number);
      features[w.name] = aggregate(
        w.agg,
        w.tumbling < 0 ? slidingTally(state.moments, w, t) : addToBucket(state, w, t, value),
      );
    }

    // A sweep costs a pass over every key, so it runs once per smallest window size of event time.
    if (this.watermark >= this.#nextSweep) {
      for (const [key, s] of this.#keys) this.#evict(key, s);
      this.#nextSweep = this.watermark + this.#sweepEvery;
    }
    return { kind: "features", features };
  }

  snapshot(): WindowSnapshot {
    return {
      windows: this.#windows.map((w) => w.name),
      floor: this.#floor,
      applied: [...this.#applied].sort((a, b) => a - b),
      // JSON has no infinities: null is "nothing seen yet".
      maxEventTime: Number.isFinite(this.#maxEventTime) ? this.#maxEventTime : null,
      nextSweep: Number.isFinite(this.#nextSweep) ? this.#nextSweep : null,
      keys: [...this.#keys].map(([key, s]) => ({
        key,
        moments: s.moments.map((m) => ({ time: m.time, values: [...m.values] })),
        buckets: s.buckets.map((b) => [...b].map(([start, tally]) => ({ start, tally: { ...tally } }))),
      })),
    };
  }

  /** A state continuing from `snapshot`, which must come from a state of the same spec's windows. */
  static restore(spec: FeatureSpec, snapshot: unknown): WindowState {
    const snap = WindowSnapshot.parse(snapshot);
    const state = new WindowState(spec);
    const names = state.#windows.map((w) => w.name).join(",");
    if (snap.windows.join(",") !== names) {
      throw new Error(`window snapshot is of windows [${snap.windows.join(",")}], the spec has [${names}]`);
    }
    state.#floor = snap.floor;
    state.#applied = new Set(snap.applied);
    state.#maxEventTime = snap.maxEventTime ?? Number.NEGATIVE_INFINITY;
    state.#nextSweep = snap.nextSweep ?? Number.NEGATIVE_INFINITY;
    for (const k of snap.keys) {
      state.#keys.set(k.key, {
        moments: k.moments,
        buckets: k.buckets.map((b) => new Map(b.map(({ start, tally }) => [start, tally]))),
      });
    }
    return state;
  }

  /** Drops what no event at or after the watermark can use: moments at or before watermark − the largest
   * sliding size, and buckets that end at or before the watermark. */
  #evict(key: string, state: KeyState): void {
    const w = this.watermark;
    const keep = firstAfter(state.moments, w - this.#slidingSpan);
    if (keep > 0) state.moments.splice(0, keep);
    for (const win of this.#windows) {
      if (win.tumbling < 0) continue;
      const buckets = state.buckets[win.tumbling] as Map<number, Tally>;
      for (const start of buckets.keys()) if (start + win.size <= w) buckets.delete(start);
    }
    if (state.moments.length === 0 && state.buckets.every((b) => b.size === 0)) this.#keys.delete(key);
  }
}

/** The index of the first moment with time > t (moments are sorted by time). */
function firstAfter(moments: Moment[], t: number): number {
  let lo = 0;
  let hi = moments.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((moments[mid] as Moment).time <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function slidingTally(moments: Moment[], w: Window, t: number): Tally {
  const tally = emptyTally();
  for (let i = firstAfter(moments, t - w.size); i < moments.length; i++) {
    const m = moments[i] as Moment;
    if (m.time > t) break;
    add(tally, w.field < 0 ? 0 : (m.values[w.field] as number));
  }
  return tally;
}

function addToBucket(state: KeyState, w: Window, t: number, value: number): Tally {
  const buckets = state.buckets[w.tumbling] as Map<number, Tally>;
  const start = Math.floor(t / w.size) * w.size;
  let tally = buckets.get(start);
  if (!tally) {
    tally = emptyTally();
    buckets.set(start, tally);
  }
  add(tally, value);
  return tally;
}

function emptyTally(): Tally {
  return { count: 0, sum: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
}

function add(tally: Tally, value: number): void {
  tally.count++;
  tally.sum += value;
  tally.min = Math.min(tally.min, value);
  tally.max = Math.max(tally.max, value);
}

function aggregate(agg: WindowAgg, tally: Tally): number | null {
  if (agg === "count") return tally.count;
  if (agg === "sum") return tally.sum;
  if (tally.count === 0) return null;
  return agg === "mean" ? tally.sum / tally.count : agg === "min" ? tally.min : tally.max;
}
