// The contract every benchmark follows: it measures a contender against the baseline its issue names,
// in the same run, and reports rows (printed as a table) plus the config it ran with.

export interface BenchContext {
  /** Run briefly: CI checks every bench completes, and asserts nothing about speed. */
  smoke: boolean;
  log(msg: string): void;
}

export type Cell = string | number;

export interface BenchReport {
  /** Everything that shapes the figures: sizes, durations, concurrency, versions. */
  config: Record<string, unknown>;
  columns: string[];
  rows: Record<string, Cell>[];
  notes?: string[];
  /** Goals of the bench's issue, one line each: "target …: measured X (goal Y) met|MISSED". */
  targets?: string[];
}

export interface Bench {
  name: string;
  description: string;
  /** What the figures are compared with, measured in the same run. */
  baseline: string;
  run(ctx: BenchContext): Promise<BenchReport>;
}

/** Calls fn repeatedly for about `ms` milliseconds (after a warm-up) and returns operations per second. */
export async function opsPerSecond(fn: () => unknown, ms: number): Promise<{ ops: number; perOpUs: number }> {
  const warmEnd = performance.now() + Math.min(200, ms / 5);
  while (performance.now() < warmEnd) fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 64; i++) fn();
    n += 64;
    now = performance.now();
  }
  const seconds = (now - start) / 1000;
  return { ops: n / seconds, perOpUs: (seconds * 1e6) / n };
}

export const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "-");
