// Shared by the load generators (nats.ts, its own process; wrk.ts, driving wrk) and the benches that read
// their results: the result, the latency recorder, and the body pool file format.
import { readFileSync } from "node:fs";

/**
 * What a load generator returns. Latencies: of successful replies (NATS, in-process), of every reply (wrk: all
 * HTTP replies; the benches report error replies next to them).
 */
export interface LoadResult {
  connections: number;
  durationS: number;
  /** Successful (2xx / non-error) replies. */
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Transport errors and timeouts. */
  errors: number;
  /** Replies that were errors: HTTP non-2xx, or NATS replies with the x-switchyard-error-code header. */
  non2xx: number;
  /** CPU seconds the load generator process used in all, start-up included. */
  clientCpuS: number;
  /** CPU seconds it used while it sent load (start-up excluded). */
  runCpuS: number;
}

export interface Recorder {
  /** Records one latency in milliseconds. */
  record(ms: number): void;
  readonly count: number;
  /** Latency at percentile p (0-100), in milliseconds. */
  percentile(p: number): number;
  mean(): number;
}

/** Keeps every latency; percentiles are exact. */
export function createRecorder(): Recorder {
  let values = new Float64Array(1 << 16);
  let n = 0;
  let sorted = true;
  return {
    record(ms) {
      if (n === values.length) {
        const bigger = new Float64Array(values.length * 2);
        bigger.set(values);
        values = bigger;
      }
      values[n++] = ms;
      sorted = false;
    },
    get count() {
      return n;
    },
    percentile(p) {
      if (n === 0) return Number.NaN;
      if (!sorted) {
        values.subarray(0, n).sort();
        sorted = true;
      }
      return values[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!;
    },
    mean() {
      let s = 0;
      for (let i = 0; i < n; i++) s += values[i]!;
      return n ? s / n : Number.NaN;
    },
  };
}

/** The body pool: a JSON Lines file, one request body per line. */
export function readBodies(file: string): string[] {
  const bodies = readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
  if (bodies.length === 0) throw new Error(`${file}: no bodies`);
  return bodies;
}

export function summarize(
  rec: Recorder,
  o: {
    connections: number;
    durationS: number;
    errors: number;
    non2xx: number;
    clientCpuS: number;
    runCpuS: number;
  },
): LoadResult {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    connections: o.connections,
    durationS: round(o.durationS),
    requests: rec.count,
    rps: Math.round((rec.count / o.durationS) * 10) / 10,
    p50Ms: round(rec.percentile(50)),
    p99Ms: round(rec.percentile(99)),
    meanMs: round(rec.mean()),
    errors: o.errors,
    non2xx: o.non2xx,
    clientCpuS: round(o.clientCpuS),
    runCpuS: round(o.runCpuS),
  };
}

/** CPU seconds (user + system, all threads) this process has used since it started. */
export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export function positiveNumber(value: string | undefined, flag: string): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n) || n <= 0)
    throw new Error(`${flag}: expected a positive number`);
  return n;
}
