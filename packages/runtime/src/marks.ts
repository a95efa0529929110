// The instants of a process's start-up (a replica's cold start: imported, connected, launched, loaded, warm,
// subscribed, ready), so its READY log line says where the time went. It only records; it never waits.

/** Now as epoch milliseconds with sub-millisecond precision, comparable across the processes of one host. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export class StartupMarks {
  private readonly at: [step: string, epochMs: number][] = [];

  /** The process's own start (the origin of its clock) is the first instant. */
  constructor(start = performance.timeOrigin) {
    this.at.push(["process", start]);
  }

  /** Records that `step` finished at `at` (default: now). Steps are kept in the order they finished. */
  mark(step: string, at = epochMs()): void {
    let i = this.at.length;
    while (i > 0 && this.at[i - 1]![1] > at) i--;
    this.at.splice(i, 0, [step, at]);
  }

  /** Epoch ms of every step, in order. */
  instants(): Record<string, number> {
    return Object.fromEntries(this.at.map(([step, t]) => [step, round(t)]));
  }

  /** Milliseconds each step took after the one before it, in order (the process start has none). */
  durations(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 1; i < this.at.length; i++) out[this.at[i]![0]] = round(this.at[i]![1] - this.at[i - 1]![1]);
    return out;
  }

  /** Milliseconds from `from` (a recorded step) to the last mark. */
  since(from: string): number {
    const start = this.at.find(([step]) => step === from)?.[1] ?? this.at[0]![1];
    return round(this.at.at(-1)![1] - start);
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
