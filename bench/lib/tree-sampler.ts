// Watches a process tree while a cluster contender works: CPU of every process in it, and the peak RSS
// (VmHWM) of the new processes picked by their command line (the batch workers a node agent spawns for a
// job). Workers may exit inside one measurement, so the tree is sampled on an interval and each process's
// last reading is kept: a process that exits loses at most one interval of CPU, and none of its peak.
import { readFileSync } from "node:fs";
import { clockTicks, treeCpuTicks } from "./cpu.js";

export interface SampledProcess {
  pid: number;
  /** CPU seconds it used since the sampler started (all of them, if it started later). */
  cpuS: number;
  /** Its peak resident set (VmHWM) at the last sample, MiB. */
  peakRssMiB: number;
  /** When a sample first saw it (epoch ms). */
  seenAt: number;
}

export interface TreeSample {
  /** CPU seconds of the whole tree since the sampler started. */
  cpuS: number;
  /** The picked processes, in the order they were first seen. */
  picked: SampledProcess[];
}

export class TreeSampler {
  readonly #before: Map<number, number>;
  readonly #last = new Map<number, number>();
  /** Picked pid → its largest VmHWM (KiB) and when it was first seen. */
  readonly #picked = new Map<number, { kib: number; seenAt: number }>();
  readonly #timer: NodeJS.Timeout;

  /** Starts sampling the tree under `root` every `everyMs`; `pick` chooses by command line (NULs as spaces). */
  constructor(
    private readonly root: number,
    private readonly pick: (cmdline: string) => boolean,
    everyMs = 100,
  ) {
    this.#before = treeCpuTicks([root]);
    this.#timer = setInterval(() => this.sample(), everyMs);
  }

  /** Takes a last sample and stops. */
  stop(): TreeSample {
    clearInterval(this.#timer);
    this.sample();
    let ticks = 0;
    for (const [pid, cpu] of this.#last) ticks += cpu - (this.#before.get(pid) ?? 0);
    const cpuOf = (pid: number) => ((this.#last.get(pid) ?? 0) - (this.#before.get(pid) ?? 0)) / clockTicks();
    return {
      cpuS: ticks / clockTicks(),
      picked: [...this.#picked].map(([pid, { kib, seenAt }]) => ({
        pid,
        cpuS: cpuOf(pid),
        peakRssMiB: kib / 1024,
        seenAt,
      })),
    };
  }

  private sample(): void {
    for (const [pid, cpu] of treeCpuTicks([this.root])) {
      this.#last.set(pid, cpu);
      // Processes older than the sampler are not picked (workers of an earlier job, still stopping). The command
      // line is read every time: between fork and exec a child still shows its parent's.
      if (!this.#picked.has(pid) && (this.#before.has(pid) || !this.pick(cmdline(pid)))) continue;
      const kib = peakRssKiB(pid);
      if (kib === undefined) continue;
      const known = this.#picked.get(pid);
      if (known) known.kib = Math.max(known.kib, kib);
      else this.#picked.set(pid, { kib, seenAt: Date.now() });
    }
  }
}

/** The command line of `pid`, NULs as spaces ("" once it is gone). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return ""; // exited meanwhile
  }
}

/** VmHWM of /proc/<pid>/status in KiB, or undefined once the process is gone. */
function peakRssKiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
