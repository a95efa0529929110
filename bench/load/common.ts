// Shared by the load generators (each runs as its own process) and the realtime bench that reads their
// output: the result they print as one JSON line, the latency recorder, and the body pool file format.
import { readFileSync } from "node:fs";

/** What a load generator prints (one JSON line on stdout). Latencies are of 2xx / successful replies. */
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
}

export interface Recorder {
  /** Records one latency in milliseconds. */
  record(ms: number): void;
  readonly count: number;
  /** Latency at percentile p (0-100), in milliseconds. */
  percentile(p: number): number;
  mean(): number;
}

interface HdrHistogram {
  recordValue(v: number): void;
  getValueAtPercentile(p: number): number;
  readonly totalCount: number;
  readonly mean: number;
}
interface HdrModule {
  build(o: Record<string, unknown>): HdrHistogram;
}

// A variable, not a literal: hdr-histogram-js is optional (it comes with autocannon) and not typed here.
const HDR_MODULE: string = "hdr-histogram-js";

/** An HDR histogram in microseconds (3 significant digits) when hdr-histogram-js is installed, else a sorted array. */
export async function createRecorder(): Promise<Recorder> {
  try {
    const mod = (await import(HDR_MODULE)) as HdrModule & { default?: HdrModule };
    const hdr = mod.default ?? mod;
    const h = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 120_000_000,
      numberOfSignificantValueDigits: 3,
      autoResize: true,
    });
    return {
      record: (ms) => h.recordValue(Math.max(1, Math.round(ms * 1000))),
      get count() {
        return h.totalCount;
      },
      percentile: (p) => (h.totalCount ? h.getValueAtPercentile(p) / 1000 : Number.NaN),
      mean: () => (h.totalCount ? h.mean / 1000 : Number.NaN),
    };
  } catch {
    return arrayRecorder();
  }
}

export function arrayRecorder(): Recorder {
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
  o: { connections: number; durationS: number; errors: number; non2xx: number; clientCpuS: number },
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
